#!/usr/bin/env bash
# Set up (Python deps in .venv; mosquitto, mosquitto-clients and libzbar0 from Debian when
# root), then run the whole test suite: unit, integration (real sockets, real mosquitto),
# end to end (the saltgw commands), and lint (ruff, mypy). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev apt
exec .venv/bin/python -m pytest "$@"
