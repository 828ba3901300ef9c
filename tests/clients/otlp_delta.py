#!/usr/bin/env python3
"""Exports metrics with DELTA temporality with the OpenTelemetry Python SDK.

Usage: otlp_delta.py <grpc|http> <endpoint> <increment> [<increment> ...]
  grpc: endpoint is host:port of the OTLP/gRPC listener
  http: endpoint is http://host:port of an OTLP/HTTP listener (/v1/metrics is appended)

For each increment: adds it to counter "orders" {region="eu"}, records it in histogram
"order.value" {region="eu"} (explicit buckets 0,5,10,25,50,...) and in exponential histogram
"latency" (when the SDK has the aggregation), then collects and exports, so every export
carries only what happened since the previous one. Exits non-zero if an export fails.
"""

import sys
import time

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

DELTA = {
    Counter: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
    ObservableUpDownCounter: AggregationTemporality.DELTA,
}


def exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(endpoint=endpoint, insecure=True, preferred_temporality=DELTA)
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(
            endpoint=f"{endpoint}/v1/metrics", preferred_temporality=DELTA
        )
    raise SystemExit(f"unknown protocol {protocol!r} (use grpc or http)")


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    protocol, endpoint = sys.argv[1], sys.argv[2]
    increments = [float(v) for v in sys.argv[3:]]
    inner = exporter(protocol, endpoint)
    failures = []
    real_export = inner.export

    def checked_export(metrics_data, timeout_millis=10_000, **kwargs):
        result = real_export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        if result != MetricExportResult.SUCCESS:
            failures.append(result)
        return result

    inner.export = checked_export
    reader = PeriodicExportingMetricReader(inner, export_interval_millis=3_600_000)
    resource = Resource.create({"service.name": "py-delta", "service.instance.id": "d-1"})
    provider = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        views=[
            View(instrument_name="latency", aggregation=ExponentialBucketHistogramAggregation())
        ],
    )
    meter = provider.get_meter("sightline.delta", "0.1")
    orders = meter.create_counter("orders")
    order_value = meter.create_histogram("order.value")
    latency = meter.create_histogram("latency")
    for increment in increments:
        orders.add(increment, {"region": "eu"})
        order_value.record(increment, {"region": "eu"})
        latency.record(increment)
        time.sleep(0.02)
        if not provider.force_flush():
            failures.append("force_flush")
    provider.shutdown()
    if failures:
        raise SystemExit(f"metric exports failed: {failures}")
    print("ok")


if __name__ == "__main__":
    main()
