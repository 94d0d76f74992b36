#!/usr/bin/env bash
# Prepares the Python venv the Helm chart checks run in (conformance/tests/chart.rs) and prints the
# path of its Python. There is no helm binary: PyPI's helm-python-sdk binds Helm 4's Go SDK as a
# shared library (driven by hack/helm.py), and kubernetes-validate ships the Kubernetes schemas.
#
#   export FERROLB_HELM_PYTHON="$(hack/helm-venv.sh)"
#
# The venv lives in .venv-helm/ at the repository root (gitignored; FERROLB_HELM_VENV overrides) and
# is reused while its pinned versions match.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_PYTHON_SDK_VERSION=0.2.2
KUBERNETES_VALIDATE_VERSION=1.37.0
venv="${FERROLB_HELM_VENV:-$PWD/.venv-helm}"
stamp="$venv/.ferrolb-pins"
want="helm-python-sdk==$HELM_PYTHON_SDK_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    python=$(command -v python3 || true)
    if [ -z "$python" ]; then
        echo "hack/helm-venv.sh: python3 is required (apt-get install python3 python3-venv)" >&2
        exit 1
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet --disable-pip-version-check $want >&2
    "$venv/bin/python" hack/helm.py versions >&2
    echo "$want" >"$stamp"
fi
echo "$venv/bin/python"
