#!/usr/bin/env bash
# Regenerate the hashed lock files from pyproject.toml (pip-tools, in a throwaway venv):
#   requirements/all.lock  what '.[all]' installs: the Docker image and the demo set-up
#   requirements/dev.lock  what '.[dev]' installs: the test set-up and CI
# scripts/setup.sh installs with `pip install --require-hashes -r requirements/EXTRAS.lock`,
# then saltgw itself without dependencies. Run this after changing a dependency and commit both.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install -q pip-tools >/dev/null
for extras in all dev; do
  "$tools/bin/pip-compile" -q --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --no-emit-find-links --extra "$extras" \
    -o "requirements/$extras.lock" pyproject.toml
  # saltgw's extras name saltgw itself ('all' = 'saltgw[demo]'): that line is this checkout
  python3 - "requirements/$extras.lock" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r"# WARNING: pip install will require the following package to be hashed\.\n"
              r"# Consider using a hashable URL[^\n]*\n", "", text)
text = re.sub(r"saltgw @ file://[^\n]*\n(    #[^\n]*\n)*", "", text)
text = re.sub(r"--output-file=\S+", f"--output-file={path}", text)
open(path, "w").write(text)
PY
  echo "wrote requirements/$extras.lock" >&2
done
