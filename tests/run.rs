//! `sightline::run` in-process: every listener on `127.0.0.1:0`, the bound addresses
//! come back from `Running`, and resolving the shutdown future ends `wait()` cleanly.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sightline::{Config, Listen};

const DEADLINE: Duration = Duration::from_secs(30);

fn loopback_config(data_dir: &std::path::Path) -> Config {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = Config::default();
    config.server.listen = any_port;
    config.server.grpc_listen = any_port;
    config.server.otlp_http_listen = Listen::On(any_port);
    config.server.jaeger_listen = Listen::Off;
    config.server.es_listen = Listen::Off;
    config.server.data_dir = data_dir.to_path_buf();
    config
}

#[tokio::test]
async fn run_reports_bound_addresses_and_shuts_down_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = sightline::run(loopback_config(dir.path()), async move {
        let _ = stopped.await;
    })
    .await
    .unwrap();

    assert_ne!(running.http_addr().port(), 0);
    assert_ne!(running.grpc_addr().port(), 0);
    let otlp_http = running.otlp_http_addr().unwrap();
    assert_ne!(otlp_http.port(), 0);
    assert_eq!(running.jaeger_addr(), None);
    assert_eq!(running.es_addr(), None);

    let start = Instant::now();
    while !running.is_ready() {
        assert!(start.elapsed() < DEADLINE, "storage did not open in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = reqwest::Client::new();
    for addr in [running.http_addr(), otlp_http] {
        let response = client
            .get(format!("http://{addr}/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{addr}");
    }

    stop.send(()).unwrap();
    tokio::time::timeout(DEADLINE, running.wait())
        .await
        .expect("shutdown took too long")
        .unwrap();
}

#[tokio::test]
async fn run_rejects_an_invalid_config_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = loopback_config(dir.path());
    config.query.max_samples = 0;
    let error = sightline::run(config, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("query.max_samples"),
        "{error:#}"
    );
}
