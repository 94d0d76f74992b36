#!/usr/bin/env bash
# Prepares the Python venv in which Google's gRPC client for Python (grpcio, gRPC C-core) talks to
# the announcer's unix socket as a foreign CNI agent would (proto/tests/foreign_client.rs), and
# prints the path of its Python. grpcio-tools generates the client from announcer.proto at test time.
#
#   export FERROLB_GRPC_PYTHON="$(hack/grpc-venv.sh)"
#
# The venv lives in .venv-grpc/ at the repository root (gitignored; FERROLB_GRPC_VENV overrides) and
# is reused while its pinned versions match.
set -euo pipefail
cd "$(dirname "$0")/.."

GRPCIO_VERSION=1.85.1
PROTOBUF_VERSION=7.36.2
venv="${FERROLB_GRPC_VENV:-$PWD/.venv-grpc}"
stamp="$venv/.ferrolb-pins"
want="grpcio==$GRPCIO_VERSION grpcio-tools==$GRPCIO_VERSION protobuf==$PROTOBUF_VERSION"

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    python=$(command -v python3 || true)
    if [ -z "$python" ]; then
        echo "hack/grpc-venv.sh: python3 is required (apt-get install python3 python3-venv)" >&2
        exit 1
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet --disable-pip-version-check $want >&2
    "$venv/bin/python" -c 'import grpc, grpc_tools.protoc; print("grpcio", grpc.__version__)' >&2
    echo "$want" >"$stamp"
fi
echo "$venv/bin/python"
