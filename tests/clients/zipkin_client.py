"""Reports a small trace to Sightline with py_zipkin's own HTTP transport.

Usage: zipkin_client.py HOST PORT V2_JSON|V2_PROTO3
Prints {"trace_id": ...} of the reported trace.
"""
import json
import sys

from py_zipkin import Encoding, Kind
from py_zipkin.transport import SimpleHTTPTransport
from py_zipkin.zipkin import zipkin_span


def main():
    host, port, encoding = sys.argv[1], int(sys.argv[2]), Encoding[sys.argv[3]]
    transport = SimpleHTTPTransport(host, port)
    with zipkin_span(
        service_name="checkout",
        span_name="POST /orders",
        transport_handler=transport,
        sample_rate=100.0,
        encoding=encoding,
        kind=Kind.SERVER,
        use_128bit_trace_id=True,
        host="10.1.2.3",
        port=8080,
        binary_annotations={"http.method": "POST", "customer": "张三"},
    ) as root:
        with zipkin_span(service_name="checkout", span_name="charge card", kind=Kind.CLIENT) as child:
            child.update_binary_annotations({"error": "card declined 拒绝"})
            child.add_sa_binary_annotation(port=443, service_name="payments", host="10.9.9.9")
            child.add_annotation("retry")
        trace_id = root.zipkin_attrs.trace_id
    json.dump({"trace_id": trace_id}, sys.stdout)


if __name__ == "__main__":
    main()
