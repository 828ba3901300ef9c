//! The zero-copy 1.0 decoder against prost: random requests, mutated requests,
//! hand-made wire corner cases and label sets from the shared PromQL test data must all
//! give the same result (the same conversion, or both a 400) through
//! [`convert::convert_v1`] and [`convert::convert_v1_prost`].

use prost::Message;
use proto::prometheus::{Histogram, v1};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::cache::LabelCache;
use super::convert::{self, Converted, Limits};
use super::wire::{self, Fields, RECURSION_LIMIT, Value, WireError};
use crate::Config;

const NOW: i64 = 1_700_000_000_000;

fn limits() -> Limits {
    Limits::new(&Config::default(), NOW)
}

/// A comparable rendering of a conversion, with float values as bits (NaN payloads too).
fn render(converted: &Converted) -> String {
    let mut out = format!(
        "samples={} exemplars={} histograms={}\n",
        converted.samples, converted.exemplars, converted.skipped_histograms
    );
    for series in &converted.write.series {
        out += &format!("{:?}\n", series.labels);
        for sample in &series.samples {
            out += &format!("  s {} {:x}\n", sample.ts_ms, sample.value.to_bits());
        }
        for e in &series.exemplars {
            out += &format!(
                "  e {} {:x} {:?} {:?} {:?}\n",
                e.ts_ms,
                e.value.to_bits(),
                e.trace_id,
                e.span_id,
                e.labels
            );
        }
    }
    out += &format!("{:?}", converted.write.metadata);
    out
}

/// Both decoders agree on `body`; returns whether it was accepted.
fn agree(body: &[u8]) -> bool {
    let fast = convert::convert_v1(body, limits());
    let reference = convert::convert_v1_prost(body, limits());
    match (&fast, &reference) {
        (Ok(a), Ok(b)) => {
            assert_eq!(render(a), render(b), "body {body:02x?}");
            true
        }
        (Err(crate::Error::BadRequest(_)), Err(crate::Error::BadRequest(_))) => false,
        _ => panic!("decoders disagree on {body:02x?}:\n fast: {fast:?}\n prost: {reference:?}"),
    }
}

const NAMES: [&str; 9] = [
    "__name__", "job", "instance", "le", "status", "uri", "", "trace_id", "名前",
];
const VALUES: [&str; 9] = [
    "up",
    "http_requests_total",
    "api",
    "0.5",
    "",
    "/api/v1/query",
    "中文标签值",
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "x",
];

fn random_labels(rng: &mut SmallRng) -> Vec<v1::Label> {
    let count = rng.random_range(0..6);
    let mut labels: Vec<v1::Label> = (0..count)
        .map(|_| v1::Label {
            name: NAMES[rng.random_range(0..NAMES.len())].to_string(),
            value: if rng.random_bool(0.1) {
                "v".repeat(rng.random_range(0..3000))
            } else {
                VALUES[rng.random_range(0..VALUES.len())].to_string()
            },
        })
        .collect();
    if rng.random_bool(0.9) {
        labels.insert(
            rng.random_range(0..=labels.len()),
            v1::Label {
                name: "__name__".to_string(),
                value: VALUES[rng.random_range(0..3)].to_string(),
            },
        );
    }
    labels
}

fn random_value(rng: &mut SmallRng) -> f64 {
    match rng.random_range(0..5) {
        0 => f64::NAN,
        1 => f64::from_bits(0x7ff0_0000_0000_0002),
        2 => f64::INFINITY,
        3 => rng.random_range(0.0..1e6_f64).round(),
        _ => rng.random::<f64>(),
    }
}

fn random_request(rng: &mut SmallRng) -> v1::WriteRequest {
    let series = rng.random_range(0..8);
    v1::WriteRequest {
        timeseries: (0..series)
            .map(|_| v1::TimeSeries {
                labels: random_labels(rng),
                samples: (0..rng.random_range(0..4))
                    .map(|_| v1::Sample {
                        value: random_value(rng),
                        timestamp: if rng.random_bool(0.05) {
                            NOW + 2 * 3_600_000
                        } else {
                            NOW - rng.random_range(0..100_000)
                        },
                    })
                    .collect(),
                exemplars: (0..usize::from(rng.random_bool(0.2)))
                    .map(|_| v1::Exemplar {
                        labels: random_labels(rng),
                        value: random_value(rng),
                        timestamp: NOW - 5,
                    })
                    .collect(),
                histograms: (0..usize::from(rng.random_bool(0.1)))
                    .map(|_| Histogram {
                        sum: 3.5,
                        schema: 3,
                        timestamp: NOW,
                        ..Histogram::default()
                    })
                    .collect(),
            })
            .collect(),
        metadata: (0..usize::from(rng.random_bool(0.2)))
            .map(|_| v1::MetricMetadata {
                r#type: rng.random_range(0..9),
                metric_family_name: VALUES[rng.random_range(0..3)].to_string(),
                help: "help text".to_string(),
                unit: String::new(),
            })
            .collect(),
    }
}

fn mutate(rng: &mut SmallRng, body: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..6) {
            0 if !body.is_empty() => {
                let at = rng.random_range(0..body.len());
                body[at] ^= 1 << rng.random_range(0..8);
            }
            1 if !body.is_empty() => {
                let at = rng.random_range(0..body.len());
                body[at] = rng.random();
            }
            2 => body.truncate(rng.random_range(0..=body.len())),
            3 => {
                let at = rng.random_range(0..=body.len());
                let byte = [0x80, 0xff, 0x0b, 0x0c, 0x07, 0x01, 0x00][rng.random_range(0..7)];
                body.insert(at, byte);
            }
            4 if !body.is_empty() => {
                let at = rng.random_range(0..body.len());
                body.remove(at);
            }
            _ => {
                // Splice in an unknown field: a group, a fixed32 or a varint.
                let at = rng.random_range(0..=body.len());
                let field: &[u8] = [
                    &[0x7b, 0x08, 0x01, 0x7c][..],
                    &[0x7d, 1, 2, 3, 4][..],
                    &[0x78, 0x96, 0x01][..],
                    &[0x7b, 0x7c][..],
                ][rng.random_range(0..4)];
                drop(body.splice(at..at, field.iter().copied()));
            }
        }
    }
}

#[test]
fn random_requests_decode_as_prost_decodes_them() {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut accepted = 0;
    for _ in 0..3000 {
        let body = random_request(&mut rng).encode_to_vec();
        accepted += usize::from(agree(&body));
    }
    // Some are refused on purpose (no name, duplicate or empty names, long values…).
    assert!(accepted > 200, "only {accepted} accepted");
}

#[test]
fn mutated_requests_decode_as_prost_decodes_them() {
    let mut rng = SmallRng::seed_from_u64(11);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let mut body = random_request(&mut rng).encode_to_vec();
        mutate(&mut rng, &mut body);
        if agree(&body) {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(accepted > 200 && refused > 1000, "{accepted} / {refused}");
}

/// Builds a length-delimited field.
fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

fn label_bytes(name: &str, value: &str) -> Vec<u8> {
    [field(1, name.as_bytes()), field(2, value.as_bytes())].concat()
}

/// A one-series request whose first label carries `extra` after its fields.
fn request_with_label_tail(extra: &[u8]) -> Vec<u8> {
    let label = [label_bytes("__name__", "up"), extra.to_vec()].concat();
    let sample = [vec![0x09], 1.5f64.to_le_bytes().to_vec(), vec![0x10, 0x05]].concat();
    field(1, &[field(1, &label), field(2, &sample)].concat())
}

#[test]
fn wire_corner_cases_match_prost() {
    let nested = |depth: usize| {
        // `depth` groups of field 15 nested in each other, inside a label.
        let mut group = Vec::new();
        group.extend(std::iter::repeat_n(0x7b, depth));
        group.extend(std::iter::repeat_n(0x7c, depth));
        request_with_label_tail(&group)
    };
    let mut cases: Vec<(Vec<u8>, bool)> = vec![
        (request_with_label_tail(&[]), true),
        // unknown varint, fixed64, fixed32 and group fields are skipped
        (request_with_label_tail(&[0x78, 0x01]), true),
        (
            request_with_label_tail(&[0x79, 0, 0, 0, 0, 0, 0, 0, 0]),
            true,
        ),
        (request_with_label_tail(&[0x7d, 0, 0, 0, 0]), true),
        (request_with_label_tail(&[0x7b, 0x08, 0x01, 0x7c]), true),
        // an end group without its start, or for another field
        (request_with_label_tail(&[0x7c]), false),
        (request_with_label_tail(&[0x7b, 0x74]), false),
        // wire types 6 and 7
        (request_with_label_tail(&[0x7e]), false),
        (request_with_label_tail(&[0x7f]), false),
        // a 10-byte varint: the last byte may be 1, not 2
        (
            request_with_label_tail(&[
                0x78, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ]),
            true,
        ),
        (
            request_with_label_tail(&[
                0x78, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ]),
            false,
        ),
        // a key above u32::MAX
        (
            request_with_label_tail(&[0x80, 0x80, 0x80, 0x80, 0x10, 0x00]),
            false,
        ),
        // field number 0
        (request_with_label_tail(&[0x00, 0x00]), false),
        // a known string field given as a varint
        (request_with_label_tail(&[0x08, 0x01]), false),
        // the last value of a repeated scalar field wins
        (request_with_label_tail(&field(2, b"down")), true),
        // a top-level group, and a top-level end group
        (
            [request_with_label_tail(&[]), vec![0x7b, 0x7c]].concat(),
            true,
        ),
        ([request_with_label_tail(&[]), vec![0x7c]].concat(), false),
    ];
    // Nesting around prost's recursion limit (the label is read with budget 98).
    for depth in 95..=100 {
        cases.push((nested(depth), depth <= 98));
    }
    for (body, accepted) in cases {
        assert_eq!(agree(&body), accepted, "{body:02x?}");
    }
    let converted =
        convert::convert_v1(&request_with_label_tail(&field(2, b"down")), limits()).unwrap();
    assert_eq!(
        converted.write.series[0].labels.metric_name(),
        "down",
        "the last value wins"
    );
}

#[test]
fn reader_reports_errors_and_values() {
    let mut fields = Fields::new(
        &[0x08, 0x96, 0x01, 0x11, 1, 0, 0, 0, 0, 0, 0, 0],
        RECURSION_LIMIT,
    );
    assert_eq!(fields.next_field(), Ok(Some((1, Value::Varint(150)))));
    assert_eq!(fields.next_field(), Ok(Some((2, Value::Fixed64(1)))));
    assert_eq!(fields.next_field(), Ok(None));
    assert_eq!(
        Fields::new(&[0x0a, 0x05, b'a'], RECURSION_LIMIT).next_field(),
        Err(WireError::Truncated)
    );
    assert_eq!(
        Fields::new(&[0x08, 0x80], RECURSION_LIMIT).next_field(),
        Err(WireError::TruncatedVarint)
    );
    assert_eq!(
        wire::label(&field(1, &[0xff]), RECURSION_LIMIT),
        Err(WireError::NotUtf8)
    );
    assert_eq!(
        wire::sample(&[0x08, 0x01], RECURSION_LIMIT),
        Err(WireError::WrongWireType(1))
    );
}

/// Label sets of the `load` blocks in the shared PromQL test files, as a
/// source of real-world label names and values.
fn promqltest_label_sets() -> Vec<Vec<(String, String)>> {
    let package = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let dir = std::path::Path::new(&package).join("../../shared/testdata/promqltest/testdata");
    let mut sets = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{} not readable ({e}): shared test data missing",
            dir.display()
        )
    });
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let mut in_load = false;
        for line in text.lines() {
            if line.starts_with("load") {
                in_load = true;
                continue;
            }
            if !line.starts_with(' ') {
                in_load = false;
                continue;
            }
            let line = line.trim();
            let selector = match line.find('}') {
                Some(end) if line[..end].contains('{') => &line[..=end],
                _ => line.split_whitespace().next().unwrap_or(""),
            };
            if !in_load || selector.is_empty() {
                continue;
            }
            if let Some(set) = parse_selector(selector) {
                sets.push(set);
            }
        }
    }
    sets
}

/// `name{a="b",c="d"}` → pairs; None when it does not look like that.
fn parse_selector(text: &str) -> Option<Vec<(String, String)>> {
    let (name, rest) = match text.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (text, ""),
    };
    let mut pairs = vec![("__name__".to_string(), name.to_string())];
    for part in rest.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = part.split_once('=')?;
        pairs.push((
            key.trim().to_string(),
            value.trim().trim_matches('"').to_string(),
        ));
    }
    Some(pairs)
}

#[test]
fn shared_testdata_label_sets_decode_as_prost_decodes_them() {
    let sets = promqltest_label_sets();
    assert!(sets.len() > 100, "found only {} label sets", sets.len());
    let mut rng = SmallRng::seed_from_u64(3);
    for chunk in sets.chunks(50) {
        let request = v1::WriteRequest {
            timeseries: chunk
                .iter()
                .map(|pairs| v1::TimeSeries {
                    labels: pairs
                        .iter()
                        .map(|(name, value)| v1::Label {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                    samples: vec![v1::Sample {
                        value: random_value(&mut rng),
                        timestamp: NOW,
                    }],
                    ..v1::TimeSeries::default()
                })
                .collect(),
            metadata: Vec::new(),
        };
        let body = request.encode_to_vec();
        agree(&body);
        for _ in 0..20 {
            let mut mutated = body.clone();
            mutate(&mut rng, &mut mutated);
            agree(&mutated);
        }
    }
}

#[test]
fn cached_label_sets_give_the_same_conversion() {
    let cache = LabelCache::with_capacity(64);
    let mut rng = SmallRng::seed_from_u64(5);
    let pool: Vec<Vec<v1::Label>> = (0..40).map(|_| random_labels(&mut rng)).collect();
    let mut hits = 0;
    for round in 0..2000 {
        let request = v1::WriteRequest {
            timeseries: (0..rng.random_range(1..10))
                .map(|_| v1::TimeSeries {
                    labels: pool[rng.random_range(0..pool.len())].clone(),
                    samples: vec![v1::Sample {
                        value: random_value(&mut rng),
                        timestamp: NOW - round,
                    }],
                    ..v1::TimeSeries::default()
                })
                .collect(),
            metadata: Vec::new(),
        };
        let mut body = request.encode_to_vec();
        if rng.random_bool(0.2) {
            mutate(&mut rng, &mut body);
        }
        let before = cache.len();
        let fast = convert::convert_v1_cached(&body, limits(), Some(&cache));
        let reference = convert::convert_v1_prost(&body, limits());
        match (fast, reference) {
            (Ok(mut fast), Ok(reference)) => {
                assert_eq!(render(&fast), render(&reference), "body {body:02x?}");
                hits += usize::from(cache.len() < before);
                convert::give_back(&cache, &mut fast);
            }
            (Err(_), Err(_)) => {}
            (fast, reference) => {
                panic!("disagree on {body:02x?}:\n fast: {fast:?}\n prost: {reference:?}")
            }
        }
    }
    assert!(hits > 20, "the cache was used {hits} times");
    assert!(cache.len() <= 64 + 16);
}

#[test]
fn cached_label_sets_are_checked_against_the_current_limits() {
    let cache = LabelCache::default();
    let request = v1::WriteRequest {
        timeseries: vec![v1::TimeSeries {
            labels: vec![
                v1::Label {
                    name: "__name__".to_string(),
                    value: "up".to_string(),
                },
                v1::Label {
                    name: "job".to_string(),
                    value: "x".repeat(100),
                },
            ],
            samples: vec![v1::Sample {
                value: 1.0,
                timestamp: NOW,
            }],
            ..v1::TimeSeries::default()
        }],
        metadata: Vec::new(),
    };
    let body = request.encode_to_vec();
    let mut converted = convert::convert_v1_cached(&body, limits(), Some(&cache)).unwrap();
    convert::give_back(&cache, &mut converted);
    assert_eq!(cache.len(), 1);
    let strict = Limits {
        max_value_length: 50,
        ..limits()
    };
    assert!(convert::convert_v1_cached(&body, strict, Some(&cache)).is_err());
    // The cached set is still there for the old limits.
    let again = convert::convert_v1_cached(&body, limits(), Some(&cache)).unwrap();
    assert_eq!(cache.len(), 0, "lent out");
    assert_eq!(
        again.write.series[0].labels.get("job").map(str::len),
        Some(100)
    );
}
