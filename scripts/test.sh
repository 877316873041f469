#!/usr/bin/env bash
# Set up (Python deps in .venv; mosquitto, mosquitto-clients, libzbar0, chromium,
# chromium-driver, fonts-wqy-microhei and nginx-light from Debian when root), then run the whole
# test suite: unit, integration (real sockets, real mosquitto), end to end (the saltgw commands,
# headless Chromium, nginx over HTTPS), and lint (ruff, mypy). Extra arguments go to pytest.
# Browser screenshots land in test-artifacts/screenshots/ ($SALTGW_TEST_ARTIFACTS/screenshots/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev apt
exec .venv/bin/python -m pytest "$@"
