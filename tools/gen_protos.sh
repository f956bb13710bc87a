#!/usr/bin/env bash
# Generate Python stubs and typed .pyi (mypy-protobuf) from protos/ into $2.
# Usage: tools/gen_protos.sh PYTHON OUT_DIR
set -euo pipefail
py=$1
out=$2
cd "$(dirname "$0")/.."
# protoc finds the mypy-protobuf plugins (protoc-gen-mypy*) on PATH.
export PATH="$(dirname "$py"):$PATH"
mkdir -p "$out/specloom/v1"
"$py" -m grpc_tools.protoc -Iprotos \
  --python_out="$out" --mypy_out="$out" \
  --grpc_python_out="$out" --mypy_grpc_out="$out" \
  protos/specloom/v1/*.proto 2> >(grep -v '^Writing mypy to' >&2)
