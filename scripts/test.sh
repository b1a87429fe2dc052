#!/usr/bin/env bash
# Install flowc with every extra into .venv and run the whole test suite.
# pytest's exit code 5 (no tests collected) is treated as a failure of the setup.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[all]'
set +e
.venv/bin/python -m pytest -n "${FLOWC_TEST_WORKERS:-2}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests: the test setup is broken" >&2
  exit 1
fi
exit "$rc"
