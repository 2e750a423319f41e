# Shared helpers for the client scripts: assertions that say what failed,
# and a private work dir removed at exit. Each script drives berth through a
# real client (podman, containerd, dockerd), offline, from local images made
# from the busybox fixture.
set -euo pipefail

: "${BERTH_BIN:?BERTH_BIN must point at the berth binary}"
: "${BERTH_FIXTURES:?BERTH_FIXTURES must point at the fixtures dir (build/)}"
ROOTFS=$BERTH_FIXTURES/rootfs/busybox
# The clients' whole state (containerd's snapshots, podman's storage,
# dockerd's data root) lives here: under $TMPDIR, which the kernel matrix
# points at a tmpfs (its VM's /tmp is an overlay on 9p, where overlayfs
# cannot stack, unlike a real host's disk).
# (A short name: podman refuses a --runroot longer than 50 characters.)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-$(basename "$0" .sh)-XXXX")
CLEANUPS=()
cleanup() {
    local rc=$?
    for ((i=${#CLEANUPS[@]}-1; i>=0; i--)); do eval "${CLEANUPS[i]}" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
on_exit() { CLEANUPS+=("$1"); }

# What /sys/fs/cgroup held before the client ran (see remove_cgroup_parent).
CGROUP_TOP=$(echo /sys/fs/cgroup/*/)

# remove_cgroup_parent NAME: the client's --cgroup-parent /NAME in every
# hierarchy, deepest first. conmon also makes plain directories (with a
# `tasks` file) for controllers the kernel has but nobody mounted, on the
# /sys/fs/cgroup tmpfs of a hybrid host: those go with rm, and so do the
# controller directories made for them since the script started.
remove_cgroup_parent() {
    local d top
    for d in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
        [ -d "$d" ] || continue
        case $(stat -f -c %T "$d") in
            cgroupfs | cgroup2fs) find "$d" -depth -type d -exec rmdir {} \; || true ;;
            *) rm -rf --one-file-system "$d" ;;
        esac
    done
    for top in /sys/fs/cgroup/*/; do
        if [[ " $CGROUP_TOP " != *" $top "* ]] && ! mountpoint -q "$top"; then
            rmdir "$top" || true
        fi
    done
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# wait_until SECONDS COMMAND...: polls COMMAND (quietly) until it succeeds;
# fails after SECONDS times $BERTH_TEST_TIME_SCALE (the kernel matrix's
# emulated VMs are that much slower, see docs/kernels.md).
wait_until() {
    local end=$((SECONDS + $1 * ${BERTH_TEST_TIME_SCALE:-1}))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# start_containerd: a private containerd (own root, state and socket under
# $WORK, CRI off), stopped by pid at exit; sets CONTAINERD_SOCK once it
# answers.
start_containerd() {
    CONTAINERD_SOCK=$WORK/containerd.sock
    cat >"$WORK/containerd.toml" <<TOML
version = 2
root = "$WORK/root"
state = "$WORK/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  disable = true
TOML
    containerd --config "$WORK/containerd.toml" >"$WORK/containerd.log" 2>&1 &
    local pid=$!
    on_exit "kill $pid; wait $pid"
    wait_until 10 ctr --address "$CONTAINERD_SOCK" version ||
        fail "containerd did not start: $(tail -5 "$WORK/containerd.log")"
}
step() { echo "--- $*"; }

# Whether containers here can have a memory limit: a v1 hierarchy or the cgroup2
# mount offers the memory controller. A v1 layout on a kernel built without
# CONFIG_MEMCG_V1 (Debian's 6.12; docs/kernels.md) has none, and berth refuses
# a memory limit there as runc does.
MEMORY_MISSING="no memory controller in this cgroup layout: in no v1 hierarchy, not offered by cgroup2 (a kernel built without CONFIG_MEMCG_V1 has no v1 memory controller)"
# memory_place: where the memory controller is: v1, v2 (cgroup2 on /sys/fs/cgroup),
# unified (a hybrid layout's cgroup2 at /sys/fs/cgroup/unified serves it: a kernel
# without CONFIG_MEMCG_V1 under hybrid), or nothing.
memory_place() {
    # mountinfo: the fields after " - " are fstype, source, super options.
    local fs opts mnt
    while read -r fs opts mnt; do
        case $fs in
        cgroup) if [[ ,$opts, == *,memory,* ]]; then echo v1; return; fi ;;
        cgroup2) if grep -qw memory "$mnt/cgroup.controllers" 2>/dev/null; then
            [ "$mnt" = /sys/fs/cgroup ] && echo v2 || echo unified
            return
        fi ;;
        esac
    done < <(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1), $(i + 3), $5; break } }' /proc/self/mountinfo)
}
have_memory_controller() { [ -n "$(memory_place)" ]; }
# The container's memory.max or memory.limit_in_bytes as seen from inside, on any layout.
MEMORY_LIMIT_INSIDE='cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/unified/memory.max'

# skip_step WHAT REASON: a step this host cannot run, said in the output and,
# under the kernel matrix, listed with the other skips ($BERTH_SKIP_LOG).
skip_step() {
    echo "--- $1: skipped: $2"
    if [ -n "${BERTH_SKIP_LOG:-}" ]; then
        echo "clients::$(basename "$0" .sh): $1: $2" >>"$BERTH_SKIP_LOG"
    fi
}

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
