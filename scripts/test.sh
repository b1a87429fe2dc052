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

# --- airflow: Airflow 3.3 lives in its own venv (its cncf-kubernetes provider needs
# kubernetes>=36, kfp needs <31). Pinned by scripts/airflow-constraints.txt; ~100 s on a fresh
# machine, skipped when the marker matches. tests/test_airflow_*.py drive it by subprocess.
AIRFLOW_MARK=".venv-airflow/.flowc-$(sha256sum scripts/airflow-constraints.txt | cut -c1-16)"
if [ ! -f "$AIRFLOW_MARK" ]; then
  [ -x .venv-airflow/bin/python ] || "$PY" -m venv .venv-airflow
  .venv-airflow/bin/python -m pip install -q --upgrade pip
  .venv-airflow/bin/python -m pip install -q -c scripts/airflow-constraints.txt \
    'apache-airflow==3.3.*' apache-airflow-providers-standard apache-airflow-providers-cncf-kubernetes \
    apache-hamilton dag-factory
  .venv-airflow/bin/python -m pip install -q --no-deps -e .
  touch "$AIRFLOW_MARK"
fi
export FLOWC_AIRFLOW_PYTHON="$PWD/.venv-airflow/bin/python"
# --- end airflow

# --- stacks & plugins: tests/test_plugin_rabbitmq.py starts its own RabbitMQ broker
# (free ports, private epmd, temp folder) from Debian's rabbitmq-server; install it when missing
# (~35 s). The package's own service is not started (no systemd here; tests stop what they start).
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    rabbitmq-server >/dev/null
  # stop a broker/epmd the package's post-install may have started: tests bring their own
  $SUDO service rabbitmq-server stop >/dev/null 2>&1 || true
fi
# --- end stacks & plugins
# tests/test_graph.py renders `flowc graph -o dag.png|svg` with Graphviz's dot (Debian: graphviz)
if ! command -v dot >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends graphviz >/dev/null
fi

set +e
.venv/bin/python -m pytest -n "${FLOWC_TEST_WORKERS:-2}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests: the test setup is broken" >&2
  exit 1
fi
exit "$rc"
