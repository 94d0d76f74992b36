#!/usr/bin/env bash
# Runs every FerroLB test. On a fresh machine (as root) it first installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "hack/test.sh: missing $*; run as root so it can be installed" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# The kubectl tests drive kube-sim with a real kubectl: the machine image ships one at
# /usr/bin/kubectl; Debian's kubernetes-client is the fallback.
if [ ! -x /usr/bin/kubectl ]; then
    apt_install kubernetes-client
fi
[ -x /usr/bin/kubectl ] || { echo "hack/test.sh: /usr/bin/kubectl is required" >&2; exit 1; }

# The network-namespace suites (l2announcer datapath, the lab, conformance/) need root, `ip` and
# `sysctl`; they fail loudly rather than skip when they cannot build their namespaces.
command -v ip >/dev/null || apt_install iproute2
command -v sysctl >/dev/null || apt_install procps
if [ "$(id -u)" -ne 0 ]; then
    echo "hack/test.sh: warning: not root; the network-namespace suites will fail" >&2
fi
# The BGP speaker's router tests (bgp/tests/frr.rs, bird.rs) run Debian's FRR bgpd and BIRD 2 in
# namespaces of their own.
[ -x /usr/lib/frr/bgpd ] || apt_install frr
[ -x /usr/sbin/bird ] || apt_install bird2

# The Helm chart checks (conformance/tests/chart.rs) run Helm 4 and kubernetes-validate from a venv.
FERROLB_HELM_PYTHON="$(hack/helm-venv.sh)"; export FERROLB_HELM_PYTHON
# The foreign-client test (proto/tests/foreign_client.rs) runs Google's grpcio from a venv.
FERROLB_GRPC_PYTHON="$(hack/grpc-venv.sh)"; export FERROLB_GRPC_PYTHON

cargo test --workspace --all-targets --locked --no-fail-fast
cargo test --workspace --doc --locked
hack/image.sh check  # the container image: static binaries, layout, user, podman run (docs/image.md)
