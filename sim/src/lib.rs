//! Sim: a simulated fleet of 27 Spring-Cloud-style services with fault injection.
//!
//! ```text
//!   gateway ──► services (27 × 2 replicas) ──► OTLP spans, logs, metrics
//!      ▲              │  inject: errors, latency,        │
//!   synthetic         │  pool exhaustion, bad deploys    ▼
//!   traffic           └──────────────────────────► sightline (public protocols only)
//! ```
//!
//! This crate will own the simulated services, their call graph, the traffic they
//! carry and the faults injected into them, and it is the end-to-end test of the
//! failing-hop analysis: it knows which hop it broke. It talks to the server only over
//! the public protocols (OTLP, remote_write, Loki push), like a real fleet would, and
//! must not link the server's internals (`storage`, `ingest`, `query`).
//!
//! Nothing is here yet: the simulator and the `sightline demo` / `sightline sim`
//! commands arrive together.
