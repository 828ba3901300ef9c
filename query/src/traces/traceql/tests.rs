//! Evaluation tests, one per construct, over a small trace:
//!
//! ```text
//! api  GET /checkout (server, 900ms)          root
//!  ├─ api  call cart (client, 500ms, peer cart)
//!  │   └─ cart  POST /cart (server, 400ms, error, http.status_code=500)
//!  │        └─ cart  SELECT (client, 50ms, db.system=postgres, event "retry")
//!  └─ api  render (internal, 10ms)
//! ```

use super::super::rows::tests::{batch, span};
use super::super::rows::{SpanBatch, SpanRef};
use super::*;

const MS: i64 = 1_000_000;

fn trace() -> SpanBatch {
    let root = span(1, 1, None, "api", "GET /checkout", 0, 900 * MS);
    let mut call = span(1, 2, Some(1), "api", "call cart", 10 * MS, 500 * MS);
    call.kind = "client".into();
    call.peer_service = Some("cart".into());
    let mut cart = span(1, 3, Some(2), "cart", "POST /cart", 20 * MS, 400 * MS);
    cart.status_code = 2;
    cart.status_message = Some("boom".into());
    cart.attributes
        .insert("http.status_code".into(), "500".into());
    cart.attributes
        .insert("http.url".into(), "/cart?id=1".into());
    let mut select = span(1, 4, Some(3), "cart", "SELECT", 30 * MS, 50 * MS);
    select.kind = "client".into();
    select
        .attributes
        .insert("db.system".into(), "postgres".into());
    select.attributes.insert("retry".into(), "true".into());
    select.events = Some(r#"[{"time_unix_nano":1,"name":"retry","attributes":{}}]"#.into());
    let mut render = span(1, 5, Some(1), "api", "render", 800 * MS, 10 * MS);
    render.kind = "internal".into();
    batch(&[root, call, cart, select, render])
}

fn names(query: &str) -> Vec<String> {
    let batch = trace();
    let spans: Vec<SpanRef<'_>> = (0..batch.len()).map(|i| batch.span(i)).collect();
    let query = Query::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let Some(sets) = query.evaluate(&spans, 10) else {
        return Vec::new();
    };
    let mut names: Vec<String> = sets
        .iter()
        .flat_map(|s| s.spans.iter().map(|m| m.name.clone()))
        .collect();
    names.sort();
    names
}

#[test]
fn empty_filter_matches_every_span() {
    assert_eq!(names("{}").len(), 5);
    assert_eq!(names("{ true }").len(), 5);
    assert!(names("{ false }").is_empty());
}

#[test]
fn intrinsics() {
    assert_eq!(names(r#"{ name = "SELECT" }"#), ["SELECT"]);
    assert_eq!(names("{ status = error }"), ["POST /cart"]);
    assert_eq!(names("{ span:status = error }"), ["POST /cart"]);
    assert_eq!(names("{ status != unset }"), ["POST /cart"]);
    assert_eq!(names(r#"{ statusMessage = "boom" }"#), ["POST /cart"]);
    assert_eq!(names("{ kind = internal }"), ["render"]);
    assert_eq!(
        names("{ duration > 450ms }"),
        ["GET /checkout", "call cart"]
    );
    assert_eq!(names("{ duration <= 10ms }"), ["render"]);
    assert_eq!(
        names("{ traceDuration > 800ms && kind = internal }"),
        ["render"]
    );
    assert_eq!(
        names(r#"{ rootServiceName = "api" && rootName = "GET /checkout" && name = "SELECT" }"#),
        ["SELECT"]
    );
    assert_eq!(
        names(r#"{ trace:rootService = "cart" }"#),
        Vec::<String>::new()
    );
    assert_eq!(names(r#"{ span:id = "0404040404040404" }"#), ["SELECT"]);
    assert_eq!(names(r#"{ event:name = "retry" }"#), ["SELECT"]);
}

#[test]
fn attributes_and_operators() {
    assert_eq!(
        names(r#"{ resource.service.name = "cart" }"#),
        ["POST /cart", "SELECT"]
    );
    assert_eq!(
        names(r#"{ .service.name = "cart" && span.db.system = "postgres" }"#),
        ["SELECT"]
    );
    assert_eq!(names("{ span.http.status_code >= 500 }"), ["POST /cart"]);
    assert_eq!(
        names("{ span.http.status_code < 500 }"),
        Vec::<String>::new()
    );
    assert_eq!(names("{ .http.status_code = 500 }"), ["POST /cart"]);
    assert_eq!(names(r#"{ span."http.url" =~ "/cart.*" }"#), ["POST /cart"]);
    assert_eq!(
        names(r#"{ span.http.url =~ "cart" }"#),
        Vec::<String>::new(),
        "anchored"
    );
    assert_eq!(names(r#"{ resource.service.name !~ "c.*" }"#).len(), 3);
    assert_eq!(names(r#"{ span.db.system != "mysql" }"#), ["SELECT"]);
    assert_eq!(names("{ span.retry = true }"), ["SELECT"]);
    assert_eq!(names("{ span.db.system != nil }"), ["SELECT"]);
    assert_eq!(names("{ span.db.system = nil }").len(), 4);
    assert_eq!(
        names(r#"{ name = "SELECT" || name = "render" }"#),
        ["SELECT", "render"]
    );
    assert_eq!(
        names(r#"{ !(resource.service.name = "api") }"#),
        ["POST /cart", "SELECT"]
    );
}

#[test]
fn spanset_operators() {
    assert_eq!(
        names(r#"{ name = "SELECT" } && { name = "render" }"#),
        ["SELECT", "render"]
    );
    assert!(names(r#"{ name = "SELECT" } && { name = "nope" }"#).is_empty());
    assert_eq!(
        names(r#"{ name = "SELECT" } || { name = "nope" }"#),
        ["SELECT"]
    );
    assert_eq!(
        names(r#"{ resource.service.name = "api" } > { resource.service.name = "cart" }"#),
        ["POST /cart"]
    );
    assert_eq!(
        names(r#"{ name = "GET /checkout" } >> { resource.service.name = "cart" }"#),
        ["POST /cart", "SELECT"]
    );
    assert!(names(r#"{ name = "GET /checkout" } > { resource.service.name = "cart" }"#).is_empty());
    assert_eq!(
        names(r#"{ name = "SELECT" } << { kind = server }"#),
        ["GET /checkout", "POST /cart"]
    );
    assert_eq!(names(r#"{ name = "SELECT" } < { }"#), ["POST /cart"]);
    assert_eq!(names(r#"{ name = "call cart" } ~ { }"#), ["render"]);
    assert_eq!(
        names(r#"({ name = "call cart" } ~ { }) || { name = "SELECT" }"#),
        ["SELECT", "render"]
    );
}

#[test]
fn pipelines() {
    assert_eq!(names("{ } | count() > 4").len(), 5);
    assert!(names("{ } | count() > 5").is_empty());
    assert_eq!(names("{ kind = client } | avg(duration) > 200ms").len(), 2);
    assert!(names("{ kind = client } | max(duration) < 100ms").is_empty());
    assert_eq!(
        names("{ } | by(resource.service.name) | count() = 2"),
        ["POST /cart", "SELECT"]
    );
    assert_eq!(
        names("{ } | by(resource.service.name) | coalesce()").len(),
        5
    );
    let batch = trace();
    let spans: Vec<SpanRef<'_>> = (0..batch.len()).map(|i| batch.span(i)).collect();
    let query =
        Query::parse(r#"{ status = error } | select(span.http.url, span.nothing)"#).unwrap();
    let sets = query.evaluate(&spans, 3).unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].matched, 1);
    let attributes = &sets[0].spans[0].attributes;
    assert!(attributes.contains(&("http.url".into(), Value::Str("/cart?id=1".into()))));
    assert!(attributes.contains(&("status".into(), Value::Str("error".into()))));
    assert!(attributes.contains(&("service.name".into(), Value::Str("cart".into()))));
    let grouped = Query::parse("{ } | by(resource.service.name)").unwrap();
    let sets = grouped.evaluate(&spans, 2).unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(
        sets[0].group,
        [(
            "resource.service.name".to_string(),
            Value::Str("api".into())
        )]
    );
    assert_eq!((sets[0].matched, sets[0].spans.len()), (3, 2));
}

#[test]
fn typed_values() {
    assert_eq!(typed(Value::Raw("200".into())), Value::Int(200));
    assert_eq!(typed(Value::Raw("007".into())), Value::Str("007".into()));
    assert_eq!(typed(Value::Raw("1.5".into())), Value::Float(1.5));
    assert_eq!(typed(Value::Raw("false".into())), Value::Bool(false));
}

#[test]
fn hostile_queries_are_refused_not_overflowed() {
    let deep = format!("{}{{}}{}", "(".repeat(100_000), ")".repeat(100_000));
    let error = Query::parse(&deep).unwrap_err().to_string();
    assert!(
        error.contains("tokens") || error.contains("nests"),
        "{error}"
    );
    let nested = format!("{}{{}}{}", "(".repeat(65), ")".repeat(65));
    assert!(
        Query::parse(&nested)
            .unwrap_err()
            .to_string()
            .contains("nests")
    );
    let long = vec!["{ .a = 1 }"; 2000].join(" && ");
    assert!(
        Query::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("tokens")
    );
    let fine = vec!["{ .a = 1 }"; 100].join(" && ");
    Query::parse(&fine).unwrap();
}
