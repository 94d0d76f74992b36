#!/usr/bin/env bash
# The FerroLB demo (DESIGN.md §8), on a fresh machine as root: builds kube-sim, the IPAM controller,
# the announcer and the lab tool, then runs `ferrolb-lab demo`: three nodes in network namespaces,
# a pool, a policy and a LoadBalancer Service, curl through the VIP, the leader's announcer killed
# while the client probes every 10 ms, traffic moving to another node. The lab is removed at the end
# (also on Ctrl-C or an error); pass --keep to leave it up. `--bgp` runs the BGP demo instead (an FRR
# router, ECMP over the nodes, a node's link down dropped by BFD; needs Debian's frr). Other flags go to `ferrolb-lab demo`
# (see `target/debug/ferrolb-lab demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "hack/demo.sh: run as root (the demo creates network namespaces)" >&2
    exit 1
fi
for tool in ip sysctl; do
    command -v "$tool" >/dev/null || { echo "hack/demo.sh: \`$tool\` is required (iproute2, procps)" >&2; exit 1; }
done

cargo build --locked -p kube-sim -p ferrolb-ipam -p ferrolb-l2announcer -p ferrolb-lab
exec target/debug/ferrolb-lab demo "$@"
