#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs Tributary with its test and embed-local extras into
# .venv, starts Kafka, Redis, PostgreSQL and Prometheus on loopback (deploy/local/services.sh), lints,
# type-checks, and runs pytest, then the TypeScript SDK's tests (clients/js, `npm test`: Node's test runner
# against a server it starts).
# Extra arguments go to pytest. The services stay up for the next run; `deploy/local/services.sh down` stops them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
extras="test,embed-local"
# The Python SDK, its CLI and its LangChain store, whose tests run against the server (tests/clients).
client="./clients/python[cli,parquet,numpy,pandas,langchain,test]"
# Installing is skipped while what it resolves from is unchanged: the stamp holds a hash of both pyproject.toml
# files, the extras and the Python build, written after a successful install. (Both are installed editable.)
stamp=.venv/.tributary-install-stamp
wanted=$({ cat pyproject.toml clients/python/pyproject.toml; echo "$extras $client"; .venv/bin/python -VV; } |
  sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  echo "[test.sh] pyproject.toml and Python unchanged since the last install: not reinstalling" >&2
else
  .venv/bin/python -m pip install -q --upgrade pip
  # The embed-local extra is the local embedding model's runtime (ONNX Runtime, no torch). This registry's
  # answers carry no cache headers, so pip's own HTTP cache keeps none of it; the wheels are kept in a wheelhouse
  # in the home directory instead, which outlives clean clones. `pip download` fetches only the files the
  # wheelhouse lacks (after a release, the new versions), and the install takes every wheel from there.
  wheelhouse="${TRIBUTARY_WHEELHOUSE:-$HOME/.cache/tributary/wheels}"
  mkdir -p "$wheelhouse"
  # hnswlib is published as source only: its build requirements must be in the wheelhouse too.
  .venv/bin/python -m pip download -q -d "$wheelhouse" "setuptools>=69" wheel "pybind11>=2.10" ".[$extras]" "$client"
  .venv/bin/python -m pip install -q --no-index --find-links "$wheelhouse" -e ".[$extras]" -e "$client"
  echo "$wanted" >"$stamp"
fi

# The offline checks of the deployment files (tests/test_deploy_*.py) run Debian's docker-compose (`config`) and
# promtool (in the prometheus package). Without recommends: docker-compose would bring a Docker engine.
deploy_tools=()
command -v docker-compose >/dev/null || deploy_tools+=(docker-compose)
command -v promtool >/dev/null || deploy_tools+=(prometheus)
if ((${#deploy_tools[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${deploy_tools[@]}" >/dev/null
  else
    echo "not root: run 'sudo apt-get install --no-install-recommends ${deploy_tools[*]}' for the deployment checks" >&2
  fi
fi

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
  rc=1
fi

# The TypeScript SDK (clients/js): `npm ci` only while package-lock.json or Node changed since its last success
# (a stamp in node_modules, which `npm ci` empties), then `npm test`, whose runner prints `# pass N` / `# fail N`.
# Its tests start `python -m tributary serve` with this .venv's Python. Either suite failing fails the script.
js_rc=0
if ! command -v npm >/dev/null; then
  echo "npm not found: install Node.js 20 or later for the TypeScript SDK's tests" >&2
  js_rc=1
else
  js_stamp=clients/js/node_modules/.tributary-install-stamp
  js_wanted=$({ cat clients/js/package-lock.json; node --version; } | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$js_stamp" 2>/dev/null)" != "$js_wanted" ]; then
    (cd clients/js && npm ci --no-audit --no-fund) && echo "$js_wanted" >"$js_stamp" || js_rc=$?
  fi
  if [ "$js_rc" -eq 0 ]; then
    venv_python="$PWD/.venv/bin/python"
    (cd clients/js && TRIBUTARY_PYTHON="$venv_python" npm test) || js_rc=$?
  fi
fi
if [ "$rc" -eq 0 ] && [ "$js_rc" -ne 0 ]; then
  rc=$js_rc
fi
exit "$rc"
