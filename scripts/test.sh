#!/usr/bin/env bash
# Install everything the test suite needs and run all of it (slow, browser and benchmark-smoke
# tests included; the bench extra lets the benchmark script itself be tested).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the browser tests drive Chromium (Playwright cannot download its own browser
# here); the HTTP benchmark's smoke test (tests/test_bench_http.py) drives wrk.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,bench]'
if [ -f package.json ]; then npm install --silent --no-audit --no-fund; fi
# Every package searchd/ imports is declared in pyproject.toml (configured under [tool.deptry]):
# an import that works here only because a test or benchmark extra pulled it in fails CI.
.venv/bin/deptry .
exec .venv/bin/python -m pytest "$@"
