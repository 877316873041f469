#!/usr/bin/env bash
# Create .venv and install saltgw with the given extras; as root on Debian, also install the
# system packages the tests use (mosquitto, its clients, libzbar0). Safe to run again.
# usage: scripts/setup.sh EXTRAS [apt]
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-all}
if [ "${2:-}" = apt ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=""
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || need="$need mosquitto"
  command -v mosquitto_sub >/dev/null || need="$need mosquitto-clients"
  ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0' || need="$need libzbar0"
  if [ -n "$need" ]; then
    echo "installing Debian packages:$need" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[$extras]"
