"""Writes the seed corpora of the fuzz targets (called by scripts/fuzz.sh).

usage: python3 seeds.py CORPUS_DIR TESTDATA_DIR

Takes the public fixtures from TESTDATA_DIR at run time (nothing of them is kept in the
repository), turns JSON fixtures into protobuf seeds with a small hand-written encoder,
and adds minimal hand-made inputs for every target.
"""

import base64
import json
import os
import struct
import sys
import zlib

CORPUS, TESTDATA = sys.argv[1], sys.argv[2]
MAX_SEED = 64 * 1024  # larger fixtures only slow every execution down


def put(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        return
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as out:
        out.write(data)


def fixtures(folder, suffix):
    root = os.path.join(TESTDATA, folder)
    for base, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            if name.endswith(suffix):
                with open(os.path.join(base, name), "rb") as f:
                    yield name, f.read()


# --- protobuf wire format -------------------------------------------------------------


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number, wire):
    return varint(number << 3 | wire)


def f_varint(number, n):
    return key(number, 0) + varint(int(n))


def f_sint(number, n):
    n = int(n)
    return f_varint(number, (n << 1) ^ (n >> 63))


def f_bytes(number, data):
    if isinstance(data, str):
        data = data.encode()
    return key(number, 2) + varint(len(data)) + data


def f_fixed64(number, n):
    return key(number, 1) + struct.pack("<Q", int(n) & ((1 << 64) - 1))


def f_sfixed64(number, n):
    return key(number, 1) + struct.pack("<q", int(n))


def f_double(number, x):
    return key(number, 1) + struct.pack("<d", float(x))


def f_packed(number, fmt, values):
    if fmt == "varint":
        body = b"".join(varint(int(v)) for v in values)
    else:
        body = b"".join(struct.pack(fmt, v) for v in values)
    return f_bytes(number, body)


# --- OTLP/JSON → protobuf (the fields the fixtures use, per the OTLP proto files) ---------

OTLP = {
    "traces": {"resourceSpans": (1, "ResourceSpans")},
    "logs": {"resourceLogs": (1, "ResourceLogs")},
    "metrics": {"resourceMetrics": (1, "ResourceMetrics")},
    "ResourceSpans": {"resource": (1, "Resource"), "scopeSpans": (2, "ScopeSpans"), "schemaUrl": (3, "str")},
    "ResourceLogs": {"resource": (1, "Resource"), "scopeLogs": (2, "ScopeLogs"), "schemaUrl": (3, "str")},
    "ResourceMetrics": {"resource": (1, "Resource"), "scopeMetrics": (2, "ScopeMetrics"), "schemaUrl": (3, "str")},
    "Resource": {"attributes": (1, "KeyValue"), "droppedAttributesCount": (2, "varint")},
    "Scope": {"name": (1, "str"), "version": (2, "str"), "attributes": (3, "KeyValue")},
    "ScopeSpans": {"scope": (1, "Scope"), "spans": (2, "Span"), "schemaUrl": (3, "str")},
    "ScopeLogs": {"scope": (1, "Scope"), "logRecords": (2, "LogRecord"), "schemaUrl": (3, "str")},
    "ScopeMetrics": {"scope": (1, "Scope"), "metrics": (2, "Metric"), "schemaUrl": (3, "str")},
    "KeyValue": {"key": (1, "str"), "value": (2, "AnyValue")},
    "AnyValue": {
        "stringValue": (1, "str"), "boolValue": (2, "varint"), "intValue": (3, "varint"),
        "doubleValue": (4, "double"), "arrayValue": (5, "ArrayValue"),
        "kvlistValue": (6, "KvList"), "bytesValue": (7, "b64"),
    },
    "ArrayValue": {"values": (1, "AnyValue")},
    "KvList": {"values": (1, "KeyValue")},
    "Span": {
        "traceId": (1, "hex"), "spanId": (2, "hex"), "traceState": (3, "str"),
        "parentSpanId": (4, "hex"), "flags": (16, "fixed32"), "name": (5, "str"), "kind": (6, "varint"),
        "startTimeUnixNano": (7, "fixed64"), "endTimeUnixNano": (8, "fixed64"),
        "attributes": (9, "KeyValue"), "events": (11, "Event"), "links": (13, "Link"),
        "status": (15, "Status"),
    },
    "Event": {"timeUnixNano": (1, "fixed64"), "name": (2, "str"), "attributes": (3, "KeyValue")},
    "Link": {"traceId": (1, "hex"), "spanId": (2, "hex"), "traceState": (3, "str"), "attributes": (4, "KeyValue")},
    "Status": {"message": (2, "str"), "code": (3, "varint")},
    "LogRecord": {
        "timeUnixNano": (1, "fixed64"), "observedTimeUnixNano": (11, "fixed64"),
        "severityNumber": (2, "varint"), "severityText": (3, "str"), "body": (5, "AnyValue"),
        "attributes": (6, "KeyValue"), "flags": (8, "fixed32"), "traceId": (9, "hex"),
        "spanId": (10, "hex"), "eventName": (12, "str"),
    },
    "Metric": {
        "name": (1, "str"), "description": (2, "str"), "unit": (3, "str"), "gauge": (5, "Gauge"),
        "sum": (7, "Sum"), "histogram": (9, "Histogram"),
        "exponentialHistogram": (10, "ExpHistogram"), "summary": (11, "Summary"),
    },
    "Gauge": {"dataPoints": (1, "NumberPoint")},
    "Sum": {"dataPoints": (1, "NumberPoint"), "aggregationTemporality": (2, "varint"), "isMonotonic": (3, "varint")},
    "Histogram": {"dataPoints": (1, "HistogramPoint"), "aggregationTemporality": (2, "varint")},
    "ExpHistogram": {"dataPoints": (1, "ExpPoint"), "aggregationTemporality": (2, "varint")},
    "Summary": {"dataPoints": (1, "SummaryPoint")},
    "NumberPoint": {
        "attributes": (7, "KeyValue"), "startTimeUnixNano": (2, "fixed64"), "timeUnixNano": (3, "fixed64"),
        "asDouble": (4, "double"), "asInt": (6, "sfixed64"), "flags": (8, "varint"),
    },
    "HistogramPoint": {
        "attributes": (9, "KeyValue"), "startTimeUnixNano": (2, "fixed64"), "timeUnixNano": (3, "fixed64"),
        "count": (4, "fixed64"), "sum": (5, "double"), "bucketCounts": (6, "packed_fixed64"),
        "explicitBounds": (7, "packed_double"), "flags": (10, "varint"), "min": (11, "double"), "max": (12, "double"),
    },
    "ExpPoint": {
        "attributes": (1, "KeyValue"), "startTimeUnixNano": (2, "fixed64"), "timeUnixNano": (3, "fixed64"),
        "count": (4, "fixed64"), "sum": (5, "double"), "scale": (6, "sint"), "zeroCount": (7, "fixed64"),
        "positive": (8, "Buckets"), "negative": (9, "Buckets"), "flags": (10, "varint"),
        "min": (12, "double"), "max": (13, "double"), "zeroThreshold": (14, "double"),
    },
    "Buckets": {"offset": (1, "sint"), "bucketCounts": (2, "packed_varint")},
    "SummaryPoint": {
        "attributes": (7, "KeyValue"), "startTimeUnixNano": (2, "fixed64"), "timeUnixNano": (3, "fixed64"),
        "count": (4, "fixed64"), "sum": (5, "double"), "quantileValues": (6, "Quantile"), "flags": (8, "varint"),
    },
    "Quantile": {"quantile": (1, "double"), "value": (2, "double")},
}


def scalar(number, kind, value):
    if kind == "str":
        return f_bytes(number, value)
    if kind == "hex":
        return f_bytes(number, bytes.fromhex(value))
    if kind == "b64":
        return f_bytes(number, base64.b64decode(value))
    if kind == "varint":
        return f_varint(number, int(value))
    if kind == "sint":
        return f_sint(number, value)
    if kind == "fixed64":
        return f_fixed64(number, value)
    if kind == "sfixed64":
        return f_sfixed64(number, value)
    if kind == "fixed32":
        return key(number, 5) + struct.pack("<I", int(value))
    if kind == "double":
        return f_double(number, value)
    if kind == "packed_fixed64":
        return f_packed(number, "<Q", [int(v) for v in value])
    if kind == "packed_double":
        return f_packed(number, "<d", [float(v) for v in value])
    if kind == "packed_varint":
        return f_packed(number, "varint", value)
    raise ValueError(kind)


def encode(message, value):
    out = b""
    for name, field in value.items():
        if name not in OTLP[message]:
            continue  # a field these seeds do not need
        number, kind = OTLP[message][name]
        if kind in OTLP:
            for item in field if isinstance(field, list) else [field]:
                out += f_bytes(number, encode(kind, item))
        elif isinstance(field, list) and not kind.startswith("packed"):
            out += b"".join(scalar(number, kind, item) for item in field)
        else:
            out += scalar(number, kind, field)
    return out


def otlp_seeds():
    for name, raw in fixtures("otlp", ".json"):
        document = json.loads(raw)
        for signal, top in [("traces", "resourceSpans"), ("logs", "resourceLogs"), ("metrics", "resourceMetrics")]:
            if top in document:
                put(f"otlp_{signal}_proto", name + ".pb", encode(signal, document))
                if signal == "traces":
                    put("otlp_traces_json", name, raw)
    trace_id, span_id = "5B8EFFF798038103D269B633813FC60C", "EEE19B7EC3C1B174"
    span = {"traceId": trace_id, "spanId": span_id, "name": "GET /", "kind": 2,
            "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225600001000000"}
    minimal = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "api"}}]}, "scopeSpans": [{"spans": [span]}]}]}
    put("otlp_traces_json", "minimal.json", json.dumps(minimal))
    put("otlp_traces_json", "empty.json", "{}")
    put("otlp_traces_proto", "minimal.pb", encode("traces", minimal))
    record = {"timeUnixNano": "1767225600000000000", "severityText": "ERROR",
              "body": {"stringValue": "boom [api,5b8efff798038103d269b633813fc60c,eee19b7ec3c1b174]"}}
    put("otlp_logs_proto", "minimal.pb", encode("logs", {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}))
    point = {"timeUnixNano": "1767225600000000000", "asDouble": 1.5,
             "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}}]}
    hist = {"timeUnixNano": "1767225600000000000", "count": "3", "sum": 2.5,
            "bucketCounts": ["1", "2"], "explicitBounds": [1.0]}
    exp = {"timeUnixNano": "1767225600000000000", "count": "3", "scale": 2, "zeroCount": "1",
           "positive": {"offset": -1, "bucketCounts": [1, 1]}}
    summary = {"timeUnixNano": "1767225600000000000", "count": "2", "sum": 3.0,
               "quantileValues": [{"quantile": 0.5, "value": 1.0}]}
    metrics = [
        {"name": "g", "gauge": {"dataPoints": [point]}},
        {"name": "c", "sum": {"dataPoints": [point], "aggregationTemporality": 2, "isMonotonic": True}},
        {"name": "h", "histogram": {"dataPoints": [hist], "aggregationTemporality": 2}},
        {"name": "e", "exponentialHistogram": {"dataPoints": [exp], "aggregationTemporality": 2}},
        {"name": "s", "summary": {"dataPoints": [summary]}},
    ]
    put("otlp_metrics_proto", "minimal.pb", encode("metrics", {"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeMetrics": [{"metrics": metrics}]}]}))


# --- remote_write 1.0 / 2.0 (prometheus/prompb, io.prometheus.write.v2) --------------------


def remote_write_seeds():
    def label(name, value):
        return f_bytes(1, name) + f_bytes(2, value)

    sample = f_double(1, 1.0) + f_varint(2, 1767225600000)
    exemplar = f_bytes(1, label("trace_id", "5b8efff798038103d269b633813fc60c")) + f_double(2, 1.0) + f_varint(3, 1767225600000)
    series = (f_bytes(1, label("__name__", "up")) + f_bytes(1, label("job", "api"))
              + f_bytes(2, sample) + f_bytes(3, exemplar))
    metadata = f_varint(1, 1) + f_bytes(2, "up") + f_bytes(4, "help")
    put("remote_write_v1", "minimal", f_bytes(1, series) + f_bytes(3, metadata))
    put("remote_write_v1", "two-series", f_bytes(1, series) + f_bytes(1, series))
    put("remote_write_v1", "no-name", f_bytes(1, f_bytes(1, label("job", "api")) + f_bytes(2, sample)))
    put("remote_write_v1", "empty", b"")
    # the zero-copy decoder against prost: the same seeds, plus groups and long varints
    for name, body in [("minimal", f_bytes(1, series) + f_bytes(3, metadata)),
                       ("two-series", f_bytes(1, series) + f_bytes(1, series)),
                       ("group", f_bytes(1, series + b"\x7b\x08\x01\x7c")),
                       ("varint10", f_bytes(1, series + b"\x78" + b"\xff" * 9 + b"\x01"))]:
        put("remote_write_v1_diff", name, body)

    symbols = ["", "__name__", "up", "job", "api", "trace_id", "5b8efff798038103d269b633813fc60c", "help"]
    v2_sample = f_double(1, 1.0) + f_varint(2, 1767225600000)
    v2_exemplar = f_packed(1, "varint", [5, 6]) + f_double(2, 1.0) + f_varint(3, 1767225600000)
    v2_metadata = f_varint(1, 2) + f_varint(3, 7)
    v2_series = (f_packed(1, "varint", [1, 2, 3, 4]) + f_bytes(2, v2_sample)
                 + f_bytes(4, v2_exemplar) + f_bytes(5, v2_metadata))
    body = b"".join(f_bytes(4, s) for s in symbols)
    put("remote_write_v2", "minimal", body + f_bytes(5, v2_series))
    put("remote_write_v2", "bad-ref", body + f_bytes(5, f_packed(1, "varint", [1, 99])))
    put("remote_write_v2", "empty", b"")


# --- Zipkin v2 JSON → proto3 (zipkin2/zipkin.proto) ----------------------------------------

KINDS = {"CLIENT": 1, "SERVER": 2, "PRODUCER": 3, "CONSUMER": 4}


def zipkin_endpoint(endpoint):
    out = b""
    if "serviceName" in endpoint:
        out += f_bytes(1, endpoint["serviceName"])
    if "ipv4" in endpoint:
        out += f_bytes(2, bytes(int(p) for p in endpoint["ipv4"].split(".")))
    if "port" in endpoint:
        out += f_varint(4, endpoint["port"])
    return out


def zipkin_span(span):
    def hex_id(text):
        return bytes.fromhex(text.rjust(16 if len(text) <= 16 else 32, "0"))

    out = f_bytes(1, hex_id(span["traceId"]))
    if "parentId" in span:
        out += f_bytes(2, hex_id(span["parentId"]))
    out += f_bytes(3, hex_id(span["id"]))
    if span.get("kind") in KINDS:
        out += f_varint(4, KINDS[span["kind"]])
    if "name" in span:
        out += f_bytes(5, span["name"])
    if "timestamp" in span:
        out += f_fixed64(6, span["timestamp"])
    if "duration" in span:
        out += f_varint(7, span["duration"])
    for number, field in [(8, "localEndpoint"), (9, "remoteEndpoint")]:
        if field in span:
            out += f_bytes(number, zipkin_endpoint(span[field]))
    for annotation in span.get("annotations", []):
        out += f_bytes(10, f_fixed64(1, annotation["timestamp"]) + f_bytes(2, annotation["value"]))
    for tag, value in span.get("tags", {}).items():
        out += f_bytes(11, f_bytes(1, tag) + f_bytes(2, str(value)))
    if span.get("debug"):
        out += f_varint(12, 1)
    if span.get("shared"):
        out += f_varint(13, 1)
    return out


def zipkin_seeds():
    for name, raw in fixtures("zipkin", ".json"):
        put("zipkin_json", name, raw)
        try:
            spans = json.loads(raw)
            put("zipkin_proto", name + ".pb", b"".join(f_bytes(1, zipkin_span(s)) for s in spans))
        except (ValueError, KeyError, TypeError):
            pass  # a fixture this encoder does not cover: the JSON seed is enough
    minimal = [{"traceId": "5B8EFFF798038103", "id": "EEE19B7EC3C1B174", "kind": "SERVER", "name": "get",
                "timestamp": 1767225600000000, "duration": 10, "localEndpoint": {"serviceName": "api"},
                "tags": {"http.path": "/", "error": ""}, "annotations": [{"timestamp": 1767225600000001, "value": "ws"}]}]
    put("zipkin_json", "minimal.json", json.dumps(minimal))
    put("zipkin_json", "empty.json", "[]")
    put("zipkin_proto", "minimal.pb", f_bytes(1, zipkin_span(minimal[0])))


# --- Loki push --------------------------------------------------------------------------


def loki_seeds():
    streams = {"streams": [{"stream": {"job": "api", "level": "warn"}, "values": [
        ["1767225600000000000", "GET / 200 traceID=5b8efff798038103d269b633813fc60c"],
        ["1767225600000000001", "with metadata", {"trace_id": "5b8efff798038103d269b633813fc60c"}],
    ]}]}
    put("loki_json", "minimal.json", json.dumps(streams))
    put("loki_json", "chinese.json", json.dumps({"streams": [{"stream": {"service_name": "支付"}, "values": [["1", "你好"]]}]}, ensure_ascii=False))
    put("loki_json", "no-labels.json", '{"streams":[{"stream":{},"values":[]}]}')
    timestamp = f_varint(1, 1767225600) + f_varint(2, 5)
    entry = f_bytes(1, timestamp) + f_bytes(2, "hello [api,5b8efff798038103d269b633813fc60c,eee19b7ec3c1b174]") \
        + f_bytes(3, f_bytes(1, "trace_id") + f_bytes(2, "5b8efff798038103d269b633813fc60c"))
    stream = f_bytes(1, '{job="api", level="error", path="a\\"b\\\\c\\n"}') + f_bytes(2, entry)
    put("loki_proto", "minimal.pb", f_bytes(1, stream))
    for i, text in enumerate(['{job="api"}', '{job="api", level="error"}', '{a="\\n\\t\\r\\\\\\"\\\'"}',
                              '{}', ' { _x = "y" , z9="" } ', '{job=~"x"}', '{job="x"', '{9a="b"}']):
        put("loki_labels", f"hand-{i}", text)


# --- Elasticsearch _bulk (first byte: 1 = the path names an index) ------------------------


def es_seeds():
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        count = 0
        for name, raw in fixtures("es-bulk", ".yml"):
            for document in yaml.safe_load_all(raw):
                for steps in (document or {}).values():
                    for step in steps if isinstance(steps, list) else []:
                        body = ((step or {}).get("do") or {}).get("bulk", {}).get("body")
                        if isinstance(body, list):
                            body = "".join(json.dumps(line) + "\n" for line in body)
                        if isinstance(body, str):
                            count += 1
                            put("es_bulk", f"{name}-{count}", b"\x00" + body.encode())
    lines = [
        {"index": {"_index": "logs", "_id": "1"}}, {"message": "hello", "@timestamp": "2026-01-01T00:00:00Z",
                                                    "service": {"name": "api"}, "log": {"level": "error"},
                                                    "trace": {"id": "5b8efff798038103d269b633813fc60c"}},
        {"create": {}}, {"message": "no index in the action", "kubernetes": {"pod": {"name": "p"}}},
        {"delete": {"_id": "1"}},
        {"update": {"_id": "1"}}, {"doc": {}},
        {"index": {"_id": ""}}, {"message": "empty id"},
    ]
    ndjson = "".join(json.dumps(line) + "\n" for line in lines)
    put("es_bulk", "hand-index-path", b"\x01" + ndjson.encode())
    put("es_bulk", "hand-no-path", b"\x00" + ndjson.encode())
    put("es_bulk", "hand-bad-source", b'\x01{"index":{}}\n{not json}\n')
    put("es_bulk", "hand-crlf", b'\x01{"index":{}}\r\n{"message":"x"}\r\n')


# --- decompress (first byte: bits 0-2 encoding 0..4 = identity gzip deflate snappy zstd;
#     bit 7 = compress the rest first) -------------------------------------------------------


def decompress_seeds():
    text = b"hello hello hello " * 8
    for selector in range(5):
        put("decompress", f"roundtrip-{selector}", bytes([0x80 | selector]) + text)
    put("decompress", "identity", b"\x00" + text)
    gzip = zlib.compressobj(9, zlib.DEFLATED, 31)
    put("decompress", "gzip", b"\x01" + gzip.compress(text) + gzip.flush())
    put("decompress", "gzip-bomb", b"\x01" + (lambda c: c.compress(bytes(1 << 20)) + c.flush())(zlib.compressobj(9, zlib.DEFLATED, 31)))
    put("decompress", "deflate", b"\x02" + zlib.compress(text))
    # snappy: varint length, then one literal (tag 0xfc = 60 <<2 → one length byte follows).
    literal = b"abc"
    put("decompress", "snappy", b"\x03" + varint(len(literal)) + bytes([(len(literal) - 1) << 2]) + literal)
    put("decompress", "snappy-huge-length", b"\x03" + varint(1 << 40))
    # zstd: the 4-byte magic number alone, and an empty raw block frame.
    put("decompress", "zstd-magic", b"\x04" + b"\x28\xb5\x2f\xfd")


otlp_seeds()
remote_write_seeds()
zipkin_seeds()
loki_seeds()
es_seeds()
decompress_seeds()
