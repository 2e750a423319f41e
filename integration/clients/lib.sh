# Shared helpers for the client scripts: assertions that say what failed,
# and a private work dir removed at exit. Each script drives berth through a
# real client (podman, containerd, dockerd), offline, from local images made
# from the busybox fixture.
set -euo pipefail

: "${BERTH_BIN:?BERTH_BIN must point at the berth binary}"
: "${BERTH_FIXTURES:?BERTH_FIXTURES must point at the fixtures dir (build/)}"
ROOTFS=$BERTH_FIXTURES/rootfs/busybox
WORK=$(mktemp -d "/tmp/berth-client-$(basename "$0" .sh)-XXXX")
CLEANUPS=()
cleanup() {
    local rc=$?
    for ((i=${#CLEANUPS[@]}-1; i>=0; i--)); do eval "${CLEANUPS[i]}" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
on_exit() { CLEANUPS+=("$1"); }

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

# expect_eq WHAT GOT WANT
expect_eq() { [ "$2" = "$3" ] || fail "$1: got [$2], want [$3]"; }
# expect_contains WHAT TEXT NEEDLE
expect_contains() { case "$2" in *"$3"*) ;; *) fail "$1: [$2] does not contain [$3]";; esac; }

# A tar of the busybox fixture, the source of every client's image.
rootfs_tar() {
    tar -C "$ROOTFS" -cf "$WORK/rootfs.tar" .
    echo "$WORK/rootfs.tar"
}

# No container of ours may survive the script in berth's state dirs.
no_berth_leftovers() {
    local root=$1
    if [ -d "$root" ] && [ -n "$(ls -A "$root" 2>/dev/null)" ]; then
        fail "berth state left in $root: $(ls "$root")"
    fi
}
