#!/usr/bin/env bash
# Install searchd with its test extras into .venv and run the whole test suite (slow tests too).
# Browser tests need Debian's chromium (`apt-get install chromium`); .ci/run installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
if [ -f package.json ]; then npm install --silent --no-audit --no-fund; fi
exec .venv/bin/python -m pytest "$@"
