#!/usr/bin/env bash
# Set up, then run the demo line (simulated devices + gateway) on the embedded MQTT broker.
# Extra arguments go to `saltgw demo` (e.g. --duration 60, --broker mqtt://host:1883).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all
exec .venv/bin/saltgw demo "$@"
