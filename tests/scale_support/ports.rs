//! Free loopback ports for the peers a test starts.

use std::net::{SocketAddr, TcpListener};

/// Ports that were free a moment ago; all bound at once so they differ from each other.
/// Drawn below Linux's ephemeral range, where other tests' `bind(0)` and outgoing
/// connections cannot take them before the process binds them.
pub fn free_ports<const N: usize>() -> [SocketAddr; N] {
    use rand::{Rng, SeedableRng};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(nanos ^ u64::from(std::process::id()));
    let mut listeners: Vec<TcpListener> = Vec::with_capacity(N);
    let mut tries = 0;
    while listeners.len() < N {
        tries += 1;
        let port: u16 = rng.random_range(20_000..32_000);
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(listener);
        }
        assert!(tries < 10_000, "no free port below 32000");
    }
    std::array::from_fn(|index| listeners[index].local_addr().expect("addr"))
}
