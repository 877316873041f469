#!/usr/bin/env bash
# A new user's first hour, as CI sees it (issue 12): a throwaway venv with only what
# `pip install '.[all]'` brings (no dev extras), without pyzbar (so without ZBar, as on a machine
# lacking libzbar0), then `saltgw demo` on the embedded broker. Fails on any Traceback, a device
# not online at the end, an event type of the contract missing, an empty outbox, or a web console
# that was not started or did not answer /healthz with its broker connected.
# usage: scripts/first-hour.sh [SECONDS]      (default 60; needs no root, no Debian package)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
work=$(mktemp -d "${TMPDIR:-/tmp}/saltgw-first-hour.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "first hour: fresh venv in $work (pip install '.[all]', pyzbar removed)" >&2
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$work/venv/bin/python" -m pip install -q ".[all]"
"$work/venv/bin/python" -m pip uninstall -q -y pyzbar
if "$work/venv/bin/python" -c "import qrcode" 2>/dev/null; then
  echo "first hour: qrcode is installed by '.[all]'; the demo must not need it" >&2
fi
# run from an empty folder: an installed saltgw must not lean on the source tree
mkdir -p "$work/run"
set +e
(cd "$work/run" && "$work/venv/bin/saltgw" demo --duration "$secs" --outbox "$work/run/outbox" \
  >"$work/demo.out" 2>"$work/demo.err" </dev/null)
rc=$?
set -e
tail -n 3 "$work/demo.out" >&2
"$work/venv/bin/python" scripts/check_demo_run.py --rc "$rc" --stdout "$work/demo.out" \
  --stderr "$work/demo.err" --outbox "$work/run/outbox"
