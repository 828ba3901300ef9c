#!/usr/bin/env python3
"""Exports traces, logs and metrics with the OpenTelemetry Python SDK to Sightline.

Usage: otlp_export.py <grpc|http> <endpoint>
  grpc: endpoint is host:port of the OTLP/gRPC listener
  http: endpoint is http://host:port of an OTLP/HTTP listener (paths /v1/* are appended)

Builds a root SERVER span "checkout" with a CLIENT child "charge" (peer.service=payments),
logs a WARNING inside the child span, adds 3 to counter "orders" and records 5, 50 and 500
in histogram "order.value". Exits non-zero if any span or log export fails. Prints the ids
as JSON: {"trace_id": ..., "root_span_id": ..., "child_span_id": ...}.
"""

import json
import logging
import sys

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind


def exporters(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return (
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
            OTLPLogExporter(endpoint=endpoint, insecure=True),
            OTLPMetricExporter(endpoint=endpoint, insecure=True),
        )
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return (
            OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"),
            OTLPLogExporter(endpoint=f"{endpoint}/v1/logs"),
            OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"),
        )
    raise SystemExit(f"unknown protocol {protocol!r} (use grpc or http)")


class CheckedSpans(SpanExporter):
    """Delegates to the real exporter and remembers failures."""

    def __init__(self, inner):
        self.inner = inner
        self.failures = 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result != SpanExportResult.SUCCESS:
            self.failures += 1
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


class CheckedLogs:
    """Delegates to the real log exporter and remembers failures."""

    def __init__(self, inner):
        self.inner = inner
        self.failures = 0

    def export(self, batch):
        result = self.inner.export(batch)
        if result != LogRecordExportResult.SUCCESS:
            self.failures += 1
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    protocol, endpoint = sys.argv[1], sys.argv[2]
    resource = Resource.create(
        {
            "service.name": f"py-{protocol}",
            "service.instance.id": "py-1",
            "deployment.environment": "test",
        }
    )
    span_exporter, log_exporter, metric_exporter = exporters(protocol, endpoint)

    spans = CheckedSpans(span_exporter)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = tracer_provider.get_tracer("sightline.test", "0.1")

    logs = CheckedLogs(log_exporter)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger = logging.getLogger("otlp_export")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))

    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meter_provider.get_meter("sightline.test", "0.1")
    orders = meter.create_counter("orders", description="orders placed")
    order_value = meter.create_histogram("order.value", description="order value")

    with tracer.start_as_current_span(
        "checkout",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "retries": 2, "cached": False, "ratio": 0.5},
    ) as root:
        with tracer.start_as_current_span(
            "charge", kind=SpanKind.CLIENT, attributes={"peer.service": "payments"}
        ) as child:
            logger.warning("payment slow", extra={"order.id": "o-42"})
        orders.add(3, {"region": "eu"})
        for value in (5, 50, 500):
            order_value.record(value, {"region": "eu"})

    meter_provider.shutdown()
    logger_provider.shutdown()
    tracer_provider.shutdown()
    if spans.failures or logs.failures:
        raise SystemExit(f"exports failed: spans {spans.failures}, logs {logs.failures}")
    context = root.get_span_context()
    print(
        json.dumps(
            {
                "trace_id": format(context.trace_id, "032x"),
                "root_span_id": format(context.span_id, "016x"),
                "child_span_id": format(child.get_span_context().span_id, "016x"),
            }
        )
    )


if __name__ == "__main__":
    main()
