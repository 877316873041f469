#!/usr/bin/env bash
# Create .venv and install saltgw with the given extras; as root on Debian, also install the
# system packages the tests use (mosquitto, its clients, libzbar0; for the browser tests
# chromium, chromium-driver, a Chinese font and nginx-light as the HTTPS reverse proxy).
# Safe to run again.
# The dependencies come from the hashed lock requirements/EXTRAS.lock when there is one
# (scripts/lock.sh writes them from pyproject.toml), then saltgw itself without dependencies.
# usage: scripts/setup.sh EXTRAS [apt]
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-all}
if [ "${2:-}" = apt ]; then
  need=""
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || need="$need mosquitto"
  command -v mosquitto_sub >/dev/null || need="$need mosquitto-clients"
  ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0' || need="$need libzbar0"
  # browser tests (tests/support/browser.py): Debian's Chromium and its WebDriver, and a font
  # with Chinese glyphs (without one the pages' text renders as boxes in the screenshots)
  [ -x /usr/bin/chromium ] || need="$need chromium"
  [ -x /usr/bin/chromedriver ] || need="$need chromium-driver"
  fc-list :lang=zh 2>/dev/null | grep -q . || need="$need fonts-wqy-microhei"
  # the HTTPS reverse proxy of docker/nginx-resolver.conf (tests/support/nginx.py)
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need="$need nginx-light"
  # the enterprise trace store's tests run a throwaway cluster (tests/support/postgres.py)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
  # bridges sharing lines over RabbitMQ quorum queues (tests/support/rabbitmq.py): Debian's
  # rabbitmq-server ships the rabbitmq_mqtt plugin and pulls in Erlang (epmd)
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need="$need rabbitmq-server"
  if [ -n "$need" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages:$need" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
  elif [ -n "$need" ]; then
    echo "the tests need these Debian packages, and only root can install them:" >&2
    echo "  sudo apt-get install -y --no-install-recommends$need" >&2
    echo "(without them the broker, RabbitMQ, PostgreSQL, browser and proxy tests skip locally and fail in CI)" >&2
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ -f "requirements/$extras.lock" ]; then
  .venv/bin/python -m pip install -q --require-hashes -r "requirements/$extras.lock"
  .venv/bin/python -m pip install -q --no-deps -e .
else
  .venv/bin/python -m pip install -q -e ".[$extras]"
fi
if [ "$extras" = dev ]; then
  # the independent Sparkplug B decoder of the tests (tests/support/sparkplug.py); it pins
  # paho-mqtt<2 for a client the tests never use, so it cannot be a dev extra: no deps
  .venv/bin/python -m pip install -q --no-deps --require-hashes -r requirements/sparkplug-decoder.lock
  # inert unless SALTGW_TEST_CLOCK_SHIFT_DAYS is set: then every Python process of the venv runs
  # with its wall clock shifted (tests/support/clock_shift.py)
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  shift_py="$PWD/tests/support/clock_shift.py"
  printf '%s\n' "import os; p = '$shift_py'; os.environ.get('SALTGW_TEST_CLOCK_SHIFT_DAYS') and os.path.isfile(p) and exec(compile(open(p).read(), p, 'exec'), {'__name__': 'saltgw_clock_shift'})" >"$site/saltgw-clock-shift.pth"
fi
