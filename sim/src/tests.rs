//! Unit tests over generated data (no HTTP): determinism, ground truth that names the
//! fleet, and faults that visibly change the data of the faulty service or edge and
//! propagate to its callers.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::engine::{SimSpan, SpanKind};
use crate::fleet::{SERVICES, all_pods, service_index};
use crate::run::generate_in_memory;
use crate::{GroundTruth, RunConfig, catalogue, plan};

/// 2025-11-24T16:00:00Z, a weekday afternoon in UTC+8... evening; any fixed instant works.
const START_MS: i64 = 1_764_000_000_000;

fn config(scenario: Option<&str>) -> RunConfig {
    RunConfig {
        seed: 42,
        scenario: scenario.map(str::to_string),
        history: Duration::ZERO,
        warmup: Duration::from_secs(120),
        fault_duration: Duration::from_secs(150),
        start_ms: Some(START_MS),
        rps: 12.0,
        ..RunConfig::default()
    }
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let mut short = config(Some("errors-funding"));
    short.warmup = Duration::from_secs(20);
    short.fault_duration = Duration::from_secs(20);
    let first = generate_in_memory(&short);
    let second = generate_in_memory(&short);
    assert!(first.spans.len() > 1000, "{} spans", first.spans.len());
    let key = |span: &SimSpan| {
        (
            span.trace_id,
            span.span_id,
            span.name.clone(),
            span.start_us,
            span.duration_us,
            span.error.clone(),
        )
    };
    assert!(first.spans.iter().map(key).eq(second.spans.iter().map(key)));
    assert_eq!(first.logs.len(), second.logs.len());
    assert_eq!(first.series, second.series);

    short.seed = 43;
    let other = generate_in_memory(&short);
    assert_ne!(first.spans[0].trace_id, other.spans[0].trace_id);
}

#[test]
fn catalogue_has_twenty_distinct_scenarios_naming_the_fleet() {
    let scenarios = catalogue();
    let names: BTreeSet<_> = scenarios.iter().map(|s| s.name.clone()).collect();
    assert!(names.len() >= 20, "{} scenarios", names.len());
    assert_eq!(names.len(), scenarios.len(), "duplicate names");
    let pods: BTreeSet<String> = all_pods().into_iter().collect();
    let dependencies = ["mysql", "redis", "rabbitmq", "minio"];
    let known = |name: &str| service_index(name).is_some() || dependencies.contains(&name);
    let mut kinds = BTreeSet::new();
    for scenario in &scenarios {
        assert!(
            scenario
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        let truth = plan(&config(Some(&scenario.name))).unwrap().unwrap();
        assert!(known(&truth.service), "{truth:?}");
        assert!(known(&truth.callee), "{truth:?}");
        if let Some(caller) = &truth.caller {
            assert!(service_index(caller).is_some(), "{truth:?}");
        }
        if let Some(instance) = &truth.instance {
            assert!(pods.contains(instance), "{truth:?}");
            assert!(instance.starts_with(&truth.service), "{truth:?}");
        }
        assert_eq!(truth.start_ms, START_MS + 120_000);
        assert_eq!(truth.end_ms, START_MS + 270_000);
        kinds.insert(truth.kind.clone());
    }
    let expected: BTreeSet<String> = ["errors", "latency", "saturation", "unavailability", "stuck"]
        .map(String::from)
        .into();
    assert_eq!(kinds, expected);
    assert!(plan(&config(None)).unwrap().is_none());
    assert!(plan(&config(Some("no-such-fault"))).is_err());
}

#[test]
fn catalogue_spans_the_fleet() {
    let services: BTreeSet<_> = catalogue()
        .iter()
        .map(|s| plan(&config(Some(&s.name))).unwrap().unwrap().service)
        .collect();
    assert!(services.len() >= 20, "faulty services: {services:?}");
}

/// Error count and mean duration (ms) of the spans matching `keep` in the fault window.
fn stats(
    spans: &[SimSpan],
    truth: &GroundTruth,
    keep: impl Fn(&SimSpan) -> bool,
) -> (usize, usize, f64) {
    let (start, end) = (truth.start_ms * 1000, truth.end_ms * 1000);
    let chosen: Vec<&SimSpan> = spans
        .iter()
        .filter(|span| span.start_us >= start && span.start_us < end && keep(span))
        .collect();
    let errors = chosen.iter().filter(|span| span.error.is_some()).count();
    let mean = chosen
        .iter()
        .map(|span| span.duration_us as f64 / 1000.0)
        .sum::<f64>()
        / chosen.len().max(1) as f64;
    (chosen.len(), errors, mean)
}

/// The spans where the fault itself should show.
fn at_fault(span: &SimSpan, truth: &GroundTruth, pods: &[Vec<String>]) -> bool {
    let pod = &pods[span.service][span.replica];
    let own = SERVICES[span.service];
    match (&truth.caller, truth.callee.as_str()) {
        (Some(caller), callee) => {
            own == caller && span.kind == SpanKind::Client && span.peer.as_deref() == Some(callee)
        }
        (None, dep @ ("redis" | "minio")) => {
            span.kind == SpanKind::Client && span.peer.as_deref() == Some(dep)
        }
        (None, _) if truth.kind == "unavailability" => {
            // A crash-looping replica: the client spans aimed at it.
            span.kind == SpanKind::Client
                && span
                    .attributes
                    .iter()
                    .any(|(k, v)| *k == "server.address" && Some(v) == truth.instance.as_ref())
        }
        (None, _) => {
            own == truth.service
                && matches!(span.kind, SpanKind::Server | SpanKind::Consumer)
                && truth
                    .instance
                    .as_ref()
                    .is_none_or(|instance| instance == pod)
                && truth
                    .operation
                    .as_ref()
                    .is_none_or(|operation| *operation == span.name)
        }
    }
}

fn is_gateway_root(span: &SimSpan) -> bool {
    SERVICES[span.service] == "zuul-gateway"
        && span.parent_id.is_none()
        && span.kind == SpanKind::Server
}

#[test]
fn every_fault_changes_its_target_and_propagates_to_callers() {
    let healthy = generate_in_memory(&config(None));
    let mut failures = Vec::new();
    for scenario in catalogue() {
        let faulty_config = config(Some(&scenario.name));
        let truth = plan(&faulty_config).unwrap().unwrap();
        let faulty = generate_in_memory(&faulty_config);
        let (base_n, base_err, base_ms) = stats(&healthy.spans, &truth, |s| {
            at_fault(s, &truth, &healthy.pods)
        });
        let (n, err, ms) = stats(&faulty.spans, &truth, |s| at_fault(s, &truth, &faulty.pods));
        let base_rate = base_err as f64 / base_n.max(1) as f64;
        let rate = err as f64 / n.max(1) as f64;
        let target_changed = match truth.kind.as_str() {
            "errors" => rate > base_rate + 0.2,
            "latency" => ms > base_ms * 1.5 + 20.0,
            "saturation" => ms > base_ms * 1.5 + 5.0 || rate > base_rate + 0.2,
            "unavailability" => rate > base_rate + 0.2,
            "stuck" => base_n > 5 && n == 0,
            other => panic!("unknown kind {other}"),
        };
        let (_, base_gw_err, base_gw_ms) = stats(&healthy.spans, &truth, is_gateway_root);
        let (gw_n, gw_err, gw_ms) = stats(&faulty.spans, &truth, is_gateway_root);
        let propagated = match truth.kind.as_str() {
            // The consumer is stuck silently: no upstream errors.
            "stuck" => gw_err <= base_gw_err + gw_n / 50,
            // Ribbon retries the sibling replica: callers mostly recover.
            "unavailability" if truth.instance.is_some() => true,
            _ => gw_err > base_gw_err + 5 || gw_ms > base_gw_ms * 1.05,
        };
        if !target_changed || !propagated {
            failures.push(format!(
                "{}: target n {base_n}->{n} err {base_rate:.3}->{rate:.3} ms {base_ms:.1}->{ms:.1}; gateway err {base_gw_err}->{gw_err} ms {base_gw_ms:.1}->{gw_ms:.1}",
                scenario.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "faults without effect:\n{}",
        failures.join("\n")
    );
}

#[test]
fn one_replica_faults_leave_the_sibling_healthy_and_crash_loops_flap_up() {
    let faulty_config = config(Some("bad-deploy-sales-0"));
    let truth = plan(&faulty_config).unwrap().unwrap();
    let data = generate_in_memory(&faulty_config);
    let sales = service_index("sales").unwrap();
    let servers = |replica: usize| {
        stats(&data.spans, &truth, |s| {
            s.service == sales && s.replica == replica && s.kind == SpanKind::Server
        })
    };
    let (n0, e0, _) = servers(0);
    let (n1, e1, _) = servers(1);
    assert!(e0 * 3 > n0, "sales-0 errors {e0}/{n0}");
    assert!(e1 * 20 < n1.max(20), "sales-1 errors {e1}/{n1}");

    let crash_config = config(Some("crashloop-bank-transfer-1"));
    let truth = plan(&crash_config).unwrap().unwrap();
    let data = generate_in_memory(&crash_config);
    let instance = truth.instance.clone().unwrap();
    let up: Vec<f64> = data
        .series
        .iter()
        .filter(|(labels, _)| {
            labels.contains(&("__name__".to_string(), "up".to_string()))
                && labels.contains(&("instance".to_string(), instance.clone()))
        })
        .flat_map(|(_, samples)| {
            samples
                .iter()
                .filter(|(at, _)| *at >= truth.start_ms && *at < truth.end_ms)
                .map(|(_, v)| *v)
        })
        .collect();
    assert!(
        up.contains(&0.0) && up.contains(&1.0),
        "up of {instance}: {up:?}"
    );
}

#[test]
fn stuck_consumer_grows_its_queue_and_pool_exhaustion_shows_pending() {
    let series_max = |scenario: &str, name: &str, label: (&str, &str)| {
        let data = generate_in_memory(&config(Some(scenario)));
        data.series
            .iter()
            .filter(|(labels, _)| {
                labels.contains(&("__name__".to_string(), name.to_string()))
                    && labels.contains(&(label.0.to_string(), label.1.to_string()))
            })
            .flat_map(|(_, samples)| samples.iter().map(|(_, v)| *v))
            .fold(0.0_f64, f64::max)
    };
    assert!(
        series_max(
            "consumer-stuck-report",
            "rabbitmq_queue_messages_ready",
            ("queue", "report.generate")
        ) > 20.0
    );
    assert!(
        series_max(
            "pool-exhaustion-funding",
            "hikaricp_connections_pending",
            ("service", "funding")
        ) > 5.0
    );
    assert!(
        series_max(
            "cpu-saturation-valuation-0",
            "process_cpu_usage",
            ("instance", &crate::fleet::pod_name("valuation", 0))
        ) > 0.9
    );
}

#[test]
fn spans_and_logs_share_trace_ids_and_pod_names() {
    let mut short = config(Some("errors-invoicing"));
    short.warmup = Duration::from_secs(30);
    short.fault_duration = Duration::from_secs(30);
    let data = generate_in_memory(&short);
    let traces: BTreeSet<[u8; 16]> = data.spans.iter().map(|s| s.trace_id).collect();
    let logged = data
        .logs
        .iter()
        .filter_map(|log| log.trace_id)
        .filter(|id| traces.contains(id))
        .count();
    assert!(
        logged * 10 > data.logs.len() * 9,
        "{logged} of {} logs name a known trace",
        data.logs.len()
    );
    let errors = data
        .logs
        .iter()
        .filter(|log| log.exception.is_some())
        .count();
    assert!(errors > 10, "{errors} error logs");
    let line = crate::encode::logback_line(
        &data.logs[0],
        &data.pods[data.logs[0].service][data.logs[0].replica],
    );
    assert!(
        line.contains(&format!("[{},", SERVICES[data.logs[0].service])),
        "{line}"
    );
    let instances: BTreeSet<&String> = data
        .series
        .keys()
        .flat_map(|labels| {
            labels
                .iter()
                .filter(|(k, _)| k == "instance")
                .map(|(_, v)| v)
        })
        .collect();
    assert_eq!(instances.len(), 54);
}
