#!/usr/bin/env bash
# Builds FerroLB's container image (Containerfile) from statically linked binaries and saves it as a
# docker-archive that `k3s ctr images import`, `podman load` and `docker load` accept.
#
#   hack/image.sh [build]   static binaries, image, archive
#   hack/image.sh check     build, then check the archive without running it (layout, user,
#                           static binaries, `--version`, name lookups) and run it with podman
#
# FERROLB_IMAGE names the image (default ghcr.io/ferrolb/ferrolb:<workspace version>). The archive
# is $CARGO_TARGET_DIR/container/ferrolb-image.tar; podman keeps its own store next to it, so the
# machine's podman images are not touched. Needs root (podman, and the check's chroot).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-build}
case "$mode" in
    build | check) ;;
    *)
        echo "usage: hack/image.sh [build|check]" >&2
        exit 2
        ;;
esac

fail() {
    echo "hack/image.sh: $*" >&2
    exit 1
}

apt_install() {
    [ "$(id -u)" -eq 0 ] || fail "missing $*; run as root so it can be installed"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

[ "$(id -u)" -eq 0 ] || fail "run as root (podman's store and the check's chroot need it)"
command -v podman >/dev/null || apt_install podman
command -v readelf >/dev/null || apt_install binutils
command -v python3 >/dev/null || apt_install python3
if [ "$mode" = check ]; then
    command -v runc >/dev/null || apt_install runc
    command -v openssl >/dev/null || apt_install openssl
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || fail "no workspace version in Cargo.toml"
image=${FERROLB_IMAGE:-ghcr.io/ferrolb/ferrolb:$version}
target=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-target}
bin_dir=$target_dir/$target/image
out=$target_dir/container
archive=$out/ferrolb-image.tar
binaries=(ferrolb-ipam ferrolb-announcer ferrolb-nic-agent ferrolbctl)
podman=(podman --root "$out/storage" --runroot "$out/run" --storage-driver vfs --cgroup-manager cgroupfs)

# Static binaries: glibc's libc.a (no musl target is installed here). The explicit --target keeps
# RUSTFLAGS off build scripts and proc macros, which cannot be static.
started=$(date +%s)
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --profile image --target "$target" \
    -p ferrolb-ipam -p ferrolb-l2announcer -p ferrolb-cni -p ferrolb-ctl --bins
echo "hack/image.sh: static build took $(($(date +%s) - started)) s"

started=$(date +%s)
context=$out/context
rm -rf "$context"
mkdir -p "$context"
for binary in "${binaries[@]}"; do
    cp "$bin_dir/$binary" "$context/"
done
# root is there for an announcer run as uid 0 (capabilities reach only root's processes).
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'ferrolb:x:65532:65532:ferrolb:/nonexistent:/sbin/nologin' >"$context/passwd"
printf '%s\n' 'root:x:0:' 'ferrolb:x:65532:' >"$context/group"
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$context/nsswitch.conf"

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
"${podman[@]}" build --quiet --pull=never --format docker -f Containerfile -t "$image" \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg CREATED="$created" \
    "$context" >/dev/null
# vfs keeps a full copy per image: drop the ones this tag no longer names.
"${podman[@]}" image prune --force >/dev/null
rm -f "$archive"
"${podman[@]}" save --quiet --format docker-archive -o "$archive" "$image"
echo "hack/image.sh: image build took $(($(date +%s) - started)) s; $image saved to $archive" \
    "($(du -h "$archive" | cut -f 1))"

[ "$mode" = check ] || exit 0

# The check reads the archive as a runtime would, without podman: manifest, config, layers.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tar -xf "$archive" -C "$scratch"
layers=$(
    python3 - "$scratch" "$image" "$version" <<'EOF'
import json, os, sys

root, image, version = sys.argv[1:]
manifest = json.load(open(os.path.join(root, "manifest.json")))
assert len(manifest) == 1, f"one image expected, found {len(manifest)}"
manifest = manifest[0]
assert image in manifest["RepoTags"], f"{image} not in {manifest['RepoTags']}"
config = json.load(open(os.path.join(root, manifest["Config"])))
assert config["os"] == "linux" and config["architecture"] == "amd64", config
user = config["config"].get("User")
assert user == "65532:65532", f"User is {user!r}, not 65532:65532"
labels = config["config"].get("Labels") or {}
for key in ["title", "description", "version", "revision", "created", "source", "licenses"]:
    assert labels.get(f"org.opencontainers.image.{key}"), f"label org.opencontainers.image.{key} missing"
assert labels["org.opencontainers.image.version"] == version, labels
env = config["config"].get("Env") or []
assert "PATH=/usr/local/bin" in env, f"Env is {env}: the chart's bare command names need PATH"
print("hack/image.sh: image", image, "user", user, "labels", len(labels), "layers", len(manifest["Layers"]),
      file=sys.stderr)
print("\n".join(manifest["Layers"]))
EOF
)
rootfs=$scratch/rootfs
mkdir "$rootfs"
for layer in $layers; do
    tar -xf "$scratch/$layer" -C "$rootfs"
done
[ "$(stat -c '%a %u' "$rootfs/etc/passwd")" = "444 0" ] || fail "/etc/passwd is not 0444 root"
grep -qx 'ferrolb:x:65532:65532:ferrolb:/nonexistent:/sbin/nologin' "$rootfs/etc/passwd" ||
    fail "/etc/passwd has no user 65532"
grep -qx 'ferrolb:x:65532:' "$rootfs/etc/group" || fail "/etc/group has no group 65532"
for binary in "${binaries[@]}"; do
    path=$rootfs/usr/local/bin/$binary
    [ -f "$path" ] && [ -x "$path" ] || fail "/usr/local/bin/$binary is missing or not executable"
    headers=$(readelf -lW "$path") || fail "readelf cannot read /usr/local/bin/$binary"
    dynamic=$(readelf -dW "$path") || fail "readelf cannot read /usr/local/bin/$binary"
    if grep -q 'Requesting program interpreter' <<<"$headers" || grep -q '(NEEDED)' <<<"$dynamic"; then
        fail "/usr/local/bin/$binary is dynamically linked"
    fi
    printed=$(chroot --userspec=65532:65532 "$rootfs" "/usr/local/bin/$binary" --version) ||
        fail "$binary --version failed in the image's root file system"
    [ "$printed" = "$binary $version" ] || fail "$binary --version printed '$printed'"
done

# Host names are looked up by static glibc's built-in `files` and `dns` (no NSS module can load):
# a kubeconfig naming a host in /etc/hosts must reach the connect, not fail the lookup.
# (The kubeconfig carries a CA: without one kube wants the system's roots, which the image lacks.)
printf '127.0.0.1 localhost ferrolb-image-check.invalid\n' >"$rootfs/etc/hosts"
ca=$(openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=ferrolb-image-check \
    -keyout /dev/null -days 1 2>"$scratch/openssl.log" | base64 -w 0) ||
    fail "openssl could not make a test CA: $(cat "$scratch/openssl.log")"
cat >"$rootfs/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://ferrolb-image-check.invalid:1", certificate-authority-data: $ca}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
EOF
looked_up=$(chroot --userspec=65532:65532 "$rootfs" /usr/local/bin/ferrolbctl status --kubeconfig /kubeconfig 2>&1 || true)
grep -qi 'connection refused' <<<"$looked_up" ||
    fail "ferrolbctl did not reach a host named in /etc/hosts: $looked_up"

# Last, the real runtime: podman run as the image's user, no network, the binary found through
# PATH as the chart's `command` finds it. crun refuses this machine's hybrid cgroups and the
# sandbox's hard rlimits are below podman's defaults: runc, and limits the sandbox allows.
ran=$("${podman[@]}" run --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --rm \
    --network none "$image" ferrolb-announcer --version) || fail "podman run of $image failed"
[ "$ran" = "ferrolb-announcer $version" ] || fail "podman run printed '$ran'"
echo "hack/image.sh: check passed: ${binaries[*]} static in /usr/local/bin, user 65532:65532, podman run ok"
