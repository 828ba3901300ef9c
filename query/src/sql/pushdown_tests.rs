//! Unit tests of filter pushdown: SQL planned by a real session, filters read off the
//! table scan, folded into scan requests.

use std::sync::Arc;

use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::TableProviderFilterPushDown::{Exact, Inexact};
use proto::TenantId;

use super::*;
use crate::sql::session;
use crate::{Config, QueryContext};

/// Plans `sql` on tables without storage (planning never reads) and returns the
/// filters DataFusion handed to the scan of `table`, with their pushdown kinds.
async fn pushed(
    table: TableKind,
    sql: &str,
) -> (ScanRequest, Vec<(String, TableProviderFilterPushDown)>) {
    let context = QueryContext::new(
        Config::default(),
        Arc::new(|_: &axum::http::HeaderMap| Ok(TenantId::default())),
    );
    let session = session(&context, &TenantId::default()).unwrap();
    let plan = session
        .sql(sql)
        .await
        .unwrap()
        .into_optimized_plan()
        .unwrap();
    let mut found = None;
    plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && scan.table_name.table() == table.name()
        {
            found = Some(scan.filters.clone());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .unwrap();
    let filters = found.expect("table scanned");
    let kinds = filters
        .iter()
        .map(|f| (f.to_string(), support(table, f)))
        .collect();
    (ScanRequest::from_filters(table, &filters), kinds)
}

use datafusion::common::tree_node::TreeNode;

#[tokio::test]
async fn log_filters_reach_the_scan() {
    let (request, kinds) = pushed(
        TableKind::Logs,
        "SELECT body FROM logs WHERE ts >= '2026-11-24T10:00:00Z' AND ts < '2026-11-24T11:00:00Z' \
         AND service IN ('api', 'db') AND match(body, 'timeout') \
         AND trace_id = '0102030405060708090a0b0c0d0e0f10' AND severity = 'ERROR'",
    )
    .await;
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z").unwrap();
    let start_ns = start.timestamp_nanos_opt().unwrap();
    assert_eq!(request.start_ns, start_ns);
    assert_eq!(request.end_ns, start_ns + 3_600_000_000_000 - 1);
    assert_eq!(request.services, Some(vec!["api".into(), "db".into()]));
    assert_eq!(request.text, vec![TextQuery::Term("timeout".into())]);
    assert_eq!(
        request.trace_id.unwrap().to_string(),
        "0102030405060708090a0b0c0d0e0f10"
    );
    // severity is not pushed: it stays in DataFusion's filter above the scan.
    assert!(
        kinds
            .iter()
            .all(|(f, k)| !f.contains("severity") && *k == Exact)
    );
}

#[tokio::test]
async fn like_is_exact_for_one_fragment_inexact_for_several() {
    let (request, kinds) = pushed(
        TableKind::Logs,
        "SELECT * FROM logs WHERE body LIKE '%refused%'",
    )
    .await;
    assert_eq!(request.text, vec![TextQuery::Contains("refused".into())]);
    assert_eq!(kinds[0].1, Exact);
    let (request, kinds) = pushed(
        TableKind::Logs,
        "SELECT * FROM logs WHERE body LIKE '%conn%refused%'",
    )
    .await;
    assert_eq!(
        request.text,
        vec![TextQuery::And(vec![
            TextQuery::Contains("conn".into()),
            TextQuery::Contains("refused".into())
        ])]
    );
    assert_eq!(kinds[0].1, Inexact);
}

#[tokio::test]
async fn span_filters_and_contradictions() {
    let (request, _) = pushed(
        TableKind::Spans,
        "SELECT name FROM spans WHERE start BETWEEN TIMESTAMP '2026-01-01T00:00:00Z' \
         AND TIMESTAMP '2026-01-01T00:00:01Z' AND service = 'api' AND duration_ns > 5",
    )
    .await;
    assert_eq!(request.services, Some(vec!["api".into()]));
    assert_eq!(request.end_ns - request.start_ns, 1_000_000_000);
    let (request, _) = pushed(
        TableKind::Spans,
        "SELECT name FROM spans WHERE start > TIMESTAMP '2026-01-01T00:00:01Z' \
         AND start < TIMESTAMP '2026-01-01T00:00:00Z'",
    )
    .await;
    assert!(request.empty);
    // Uppercase hex never equals the lowercase column: not pushed.
    let (request, kinds) = pushed(
        TableKind::Spans,
        "SELECT name FROM spans WHERE trace_id = '0102030405060708090A0B0C0D0E0F10'",
    )
    .await;
    assert_eq!(request.trace_id, None);
    assert!(kinds.is_empty());
}

#[tokio::test]
async fn metric_filters_become_matchers_and_ms_ranges() {
    let (request, kinds) = pushed(
        TableKind::Metrics,
        "SELECT value FROM metrics WHERE metric = 'up' AND job = 'api' \
         AND labels['env'] = 'prod' AND ts > now() - INTERVAL '5 minutes'",
    )
    .await;
    let mut labels = request.labels.clone();
    labels.sort();
    assert_eq!(
        labels,
        vec![
            ("__name__".to_string(), "up".to_string()),
            ("env".to_string(), "prod".to_string()),
            ("job".to_string(), "api".to_string()),
        ]
    );
    assert!(request.start_ns > 0 && request.end_ns == i64::MAX);
    assert!(kinds.iter().all(|(_, k)| *k == Exact), "{kinds:?}");
    let request = ScanRequest {
        start_ns: 1_500_001,
        end_ns: 2_999_999,
        ..ScanRequest::default()
    };
    assert_eq!(request.range_ms(), (2, 2));
}
