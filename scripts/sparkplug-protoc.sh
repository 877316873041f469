#!/usr/bin/env bash
# Regenerate gateway/telemetry/sparkplug/sparkplug_b_pb2.py and .pyi from sparkplug_b.proto
# (Eclipse Tahu's, the Sparkplug B specification's schema; gateway/telemetry/sparkplug/README.md).
# grpcio-tools (protoc) is not a dependency of saltgw: this installs it into a throwaway venv.
# The generated module needs a protobuf runtime at least as new as this protoc: keep the
# 'sparkplug' extra in pyproject.toml in step with the "Protobuf Python Version" it prints.
set -euo pipefail
cd "$(dirname "$0")/../gateway/telemetry/sparkplug"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q "grpcio-tools${GRPCIO_TOOLS_VERSION:+==$GRPCIO_TOOLS_VERSION}"
"$tmp/venv/bin/python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. sparkplug_b.proto
grep -m1 "Protobuf Python Version" sparkplug_b_pb2.py
