#!/usr/bin/env bash
# Generates the Python code of protos/ into entrypoints/grpc_api/v1/ (checked in; tests/unit/test_protos.py
# checks it is current). protoc writes absolute imports from the proto's path (`from tributary.v1 import ...`),
# which would name the kernel package `tributary`: they are made relative.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-entrypoints/grpc_api/v1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python -m grpc_tools.protoc -I protos --python_out="$work" --pyi_out="$work" --grpc_python_out="$work" \
  protos/tributary/v1/tributary.proto
mkdir -p "$out"
for f in tributary_pb2.py tributary_pb2.pyi tributary_pb2_grpc.py; do
  sed -e 's/^from tributary\.v1 import tributary_pb2/from . import tributary_pb2/' "$work/tributary/v1/$f" > "$out/$f"
done
touch "$out/__init__.py"
