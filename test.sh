#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs Tributary with its test extras into .venv, starts
# Kafka, Redis and PostgreSQL on loopback (deploy/local/services.sh), lints, type-checks, and runs pytest.
# Extra arguments go to pytest. The services stay up for the next run; `deploy/local/services.sh down` stops them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"

bash deploy/local/services.sh up
eval "$(bash deploy/local/services.sh env)"
bash deploy/local/services.sh status

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
