#!/bin/sh
# Python packages the OTLP integration tests run (tests/clients/otlp_export.py):
# the OpenTelemetry SDK and its gRPC and HTTP/protobuf OTLP exporters.
# Idempotent: pip skips what is already installed.
set -eu
if python3 -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http' 2>/dev/null; then
    exit 0
fi
# Debian's python marks its site-packages as externally managed (PEP 668); tests run as root in CI.
pip_flags="--quiet --disable-pip-version-check"
if python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
    pip_flags="$pip_flags --break-system-packages"
fi
# shellcheck disable=SC2086
python3 -m pip install $pip_flags \
    opentelemetry-sdk \
    opentelemetry-exporter-otlp-proto-grpc \
    opentelemetry-exporter-otlp-proto-http
