#!/usr/bin/env bash
# Runs inside a virtme-ng VM (`make test-kernels`, integration/kernels/run.sh):
# sets up the cgroup layout of the row, then runs the test binaries that were
# built on the host, one at a time, and writes one result line per binary.
#
#   guest.sh LAYOUT OUTDIR BINLIST ENVFILE
#
# LAYOUT  v2 | v1 | hybrid
# OUTDIR  a directory shared read-write with the host: <name>.log per binary,
#         results.tsv (name, status, passed, failed, ignored, seconds), info.txt
# BINLIST "name path dir" per test binary (dir: the cwd cargo test gives it)
# ENVFILE KEY=VALUE lines exported to the tests (BERTH_FIXTURES, BERTH_BIN, ...)
#
# The host's exit code does not survive virtme-ng's console fallback, so
# everything the host needs is in OUTDIR; `done` is written last.
set -uo pipefail
# virtme-ng's init (PID 1 in the VM) never reaps orphans, as systemd or any
# real init does: a killed container's init (reparented to PID 1, exactly as
# with runc) would stay a zombie for the whole row, still holding what only
# its reaping releases (on 5.10 its seccomp filter, so a notify listener never
# gets POLLHUP) and showing up in the tests' leftover scans. So the row runs
# under a child subreaper that reaps every orphan, as PID 1 would.
if [[ -z ${BERTH_KERNELS_REAPER:-} ]]; then
    export BERTH_KERNELS_REAPER=1
    # Debian's python3 (not a pyenv shim, which needs its own environment).
    py=/usr/bin/python3
    [[ -x $py ]] || py=python3
    exec "$py" -c '
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
main = os.fork()
if main == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
status = 1
while True:
    try:
        pid, st = os.wait()
    except ChildProcessError:
        break
    if pid == main:
        status = os.waitstatus_to_exitcode(st)
        break
sys.exit(status if status >= 0 else 128 - status)
' bash "$0" "$@"
fi
layout=$1 out=$2 binlist=$3 envfile=$4
log() { echo "guest: $*"; }
# virtme-ng shows the console only with --verbose (and the kernel's log with
# it): keep our own copy for the host.
exec > >(tee -a "$out/guest.log") 2>&1

# ---------------------------------------------------------------- cgroups
# virtme-ng's init mounts cgroup2 at /sys/fs/cgroup. Replace it with the
# layout of this row, the way systemd would set it up on a real host.
umount -R /sys/fs/cgroup 2>/dev/null || true

# v1 hierarchies as systemd mounts them: one per controller, cpu+cpuacct and
# net_cls+net_prio co-mounted (with the single-name symlinks), plus the named
# "systemd" hierarchy.
mount_v1() {
    mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs /sys/fs/cgroup
    local enabled
    enabled=$(awk 'NR > 1 && $4 == 1 { print $1 }' /proc/cgroups)
    local groups=() c
    for c in $enabled; do
        case $c in
            cpu | cpuacct) [[ " ${groups[*]} " == *" cpu,cpuacct "* ]] || groups+=(cpu,cpuacct) ;;
            net_cls | net_prio) [[ " ${groups[*]} " == *" net_cls,net_prio "* ]] || groups+=(net_cls,net_prio) ;;
            misc | rdma | debug) ;; # systemd does not mount these either
            *) groups+=("$c") ;;
        esac
    done
    local g
    for g in "${groups[@]}"; do
        mkdir -p "/sys/fs/cgroup/$g"
        if ! mount -t cgroup -o "nosuid,nodev,noexec,$g" cgroup "/sys/fs/cgroup/$g" 2>/dev/null; then
            # Linux >= 6.11 may be built without the v1 memory controller
            # (CONFIG_MEMCG_V1), >= 6.12 without the v1 cpuset (CONFIG_CPUSETS_V1):
            # Debian's 6.12 is. Like systemd, leave no directory for it.
            log "cannot mount v1 $g: the kernel has no v1 $g controller"
            rmdir "/sys/fs/cgroup/$g"
            no_v1+=("$g")
            continue
        fi
        if [[ $g == *,* ]]; then
            local part
            for part in ${g//,/ }; do ln -s "$g" "/sys/fs/cgroup/$part"; done
        fi
    done
    mkdir -p /sys/fs/cgroup/systemd
    mount -t cgroup -o nosuid,nodev,noexec,none,name=systemd cgroup /sys/fs/cgroup/systemd
}

no_v1=()
case $layout in
    v2)
        mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate cgroup2 /sys/fs/cgroup
        # systemd moves PID 1 out of the root (init.scope) and enables every
        # controller at the root, so the tests run in a non-root cgroup whose
        # parent hands out all controllers, as on a pure-v2 host.
        mkdir -p /sys/fs/cgroup/init.scope /sys/fs/cgroup/system.slice/berth-tests.scope
        for p in $(cat /sys/fs/cgroup/cgroup.procs); do
            echo "$p" >/sys/fs/cgroup/init.scope/cgroup.procs 2>/dev/null || true
        done
        for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
            echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || log "cannot enable $c"
            echo "+$c" >/sys/fs/cgroup/system.slice/cgroup.subtree_control 2>/dev/null || true
        done
        echo $$ >/sys/fs/cgroup/system.slice/berth-tests.scope/cgroup.procs
        ;;
    v1)
        mount_v1
        ;;
    hybrid)
        mount_v1
        mkdir -p /sys/fs/cgroup/unified
        mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate cgroup2 /sys/fs/cgroup/unified
        ;;
    *)
        log "unknown cgroup layout $layout"
        exit 2
        ;;
esac

# The VM's root is 9p: give it one block device, as every real host has
# (the blkio/io tests throttle one), a loop device on a small file.
modprobe loop 2>/dev/null || true
truncate -s 64M /tmp/berth-kernels-disk.img
losetup -f /tmp/berth-kernels-disk.img || log "no loop device"

{
    echo "kernel: $(uname -r)"
    echo "layout: $layout"
    echo "cmdline: $(cat /proc/cmdline | sed 's/virtme\.exec=`[^`]*`//')"
    echo "cgroup mounts:"
    grep -E ' - cgroup2? ' /proc/self/mountinfo | awk '{ print "  " $5, $(NF-2), $NF }'
    [[ ${#no_v1[@]} -eq 0 ]] || echo "v1 controllers this kernel lacks: ${no_v1[*]}"
    echo "self: $(tr '\n' ' ' </proc/self/cgroup)"
    if [[ -e /sys/fs/cgroup/cgroup.controllers ]]; then
        echo "v2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
    fi
} >"$out/info.txt"
cat "$out/info.txt"

# ---------------------------------------------------------------- tests
set -a
# shellcheck disable=SC1090
source "$envfile"
set +a
export RUST_BACKTRACE=1
# Waits for events (berth_integration::scaled) stretch by this factor: TCG
# emulates every instruction.
export BERTH_TEST_TIME_SCALE=${BERTH_TEST_TIME_SCALE:-10}
# The tests need what a CI shell has: the host's PATH (runc, ip, jq, ...).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
mkdir -p /run/berth

# What the tests read again and again (the rootfs fixtures, the probes, berth
# and berth-worker) is unpacked once into the VM's own tmpfs from one tar file
# the host made (run.sh): over 9p under emulation every file open is a round
# trip to the host, one sequential read of a tar is not. The worker's shifted
# copies read whole images. The tests' temporary directories go there too: the
# VM's /tmp is an overlay on the host's 9p tree, not the kind of filesystem a
# real host has. The test binaries themselves run once each, from 9p.
local_copy() {
    local t0=$SECONDS tarball=${BERTH_KERNELS_PAYLOAD:-}
    [[ -s $tarball ]] || return 1
    mkdir -p /run/berth-kernels
    mount -t tmpfs -o mode=755 tmpfs /run/berth-kernels || return 1
    mkdir -p /run/berth-kernels/fixtures /run/berth-kernels/tmp
    tar --xattrs --xattrs-include='*' --same-owner -xpf "$tarball" \
        -C /run/berth-kernels/fixtures || return 1
    BERTH_FIXTURES=/run/berth-kernels/fixtures
    BERTH_BIN=/run/berth-kernels/fixtures/bin/berth
    BERTH_WORKER_BIN=/run/berth-kernels/fixtures/bin/berth-worker
    export TMPDIR=/run/berth-kernels/tmp
    log "fixtures and binaries unpacked into the VM's tmpfs in $((SECONDS - t0))s"
}
if [[ ${BERTH_KERNELS_LOCAL_COPY:-1} == 1 ]] && ! local_copy; then
    log "no fixtures in tmpfs (BERTH_KERNELS_PAYLOAD): the tests read them over 9p"
    umount /run/berth-kernels 2>/dev/null || true
fi
: >"$out/results.tsv"
while read -r name bin dir; do
    [[ -n $bin ]] || continue
    log "running $name"
    start=$(date +%s)
    # A hung test must not eat the whole row. `cargo test` runs each binary in
    # its package's directory; unit tests may rely on it.
    (cd "${dir:-/}" && BERTH_SKIP_LOG=$out/$name.skips timeout -k 10 "${BERTH_KERNELS_TEST_TIMEOUT:-1500}" \
        "$bin" --test-threads="${BERTH_KERNELS_TEST_THREADS:-2}" >"$out/$name.log" 2>&1 </dev/null)
    rc=$?
    secs=$(($(date +%s) - start))
    # libtest's summary: "test result: ok. 12 passed; 0 failed; 1 ignored; ..."
    summary=$(grep '^test result:' "$out/$name.log" | tail -1)
    passed=$(sed -n 's/.* \([0-9]*\) passed.*/\1/p' <<<"$summary")
    failed=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$summary")
    ignored=$(sed -n 's/.* \([0-9]*\) ignored.*/\1/p' <<<"$summary")
    # Tests that cannot run on this kernel append "<test>: <reason>" to
    # $BERTH_SKIP_LOG (berth_integration::skip) and pass without asserting.
    skipped=$(cat "$out/$name.skips" 2>/dev/null | wc -l)
    if [[ $rc -eq 0 ]]; then
        status=pass
    elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
        status=timeout
    else
        status=fail
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "${passed:-0}" "${failed:-0}" \
        "${ignored:-0}" "$skipped" "$secs" >>"$out/results.tsv"
    log "$name: $status (${passed:-0} passed, ${failed:-0} failed, $skipped skipped) in ${secs}s"
done <"$binlist"
# runc's own bats suite (integration/conformance/runc-bats.sh) on this
# kernel and layout, for berth and then for runc, when the host asked for it
# ($BERTH_KERNELS_BATS: the .bats files; $BERTH_KERNELS_BATS_FILTER: a regex
# of test names; $BERTH_KERNELS_BATS_RUNTIMES: berth, runc or both). Its cache is the host's (run.sh shares it), its tables go
# to OUTDIR, the tests' temporary dirs (container bundles) to the tmpfs.
if [[ -n ${BERTH_KERNELS_BATS:-} ]]; then
    for name in ${BERTH_KERNELS_BATS_RUNTIMES:-berth runc}; do
        case $name in
            berth) rt=$BERTH_BIN ;;
            runc) rt=/usr/sbin/runc ;;
            *) log "BATS_RUNTIMES: unknown runtime $name (berth or runc)"; continue ;;
        esac
        label=$name-vm
        log "runc-bats with $rt: $BERTH_KERNELS_BATS${BERTH_KERNELS_BATS_FILTER:+ (tests matching /$BERTH_KERNELS_BATS_FILTER/)}"
        # shellcheck disable=SC2086 # a list of file names
        RESULTS_DIR=$out BATS_TEST_TIMEOUT=$((30 * BERTH_TEST_TIME_SCALE)) \
            BATS_FILE_TIMEOUT=$((300 * BERTH_TEST_TIME_SCALE)) \
            BATS_FILTER=${BERTH_KERNELS_BATS_FILTER:-} BATS_TMP_BASE=${TMPDIR:-/tmp} \
            bash "$BERTH_KERNELS_CONFORMANCE/runc-bats.sh" --label "$label" "$rt" \
            $BERTH_KERNELS_BATS >"$out/runc-bats.$label.log" 2>&1 </dev/null
        log "$(tail -1 "$out/runc-bats.$label.log")"
    done
fi
# The issue's key complaint, shown as a user would see it: an unprivileged
# `berth-worker run` on this kernel (shifted copies where idmapped overlay
# layers are missing), with its run header and `check --explain`.
worker_unprivileged() {
    local d
    d=$(mktemp -d)
    # The task's root (host uid 4294967294) must reach its rootfs under it.
    chmod 755 "$d"
    printf '%s\n' 'platform: linux' \
        'run: {path: sh, args: [-c, "id -u; cat /proc/self/uid_map; echo unprivileged task ran"]}' \
        >"$d/task.yml"
    echo "\$ berth-worker check --explain task.yml"
    "$BERTH_WORKER_BIN" --work-dir "$d/work" --runtime "$BERTH_BIN" check --explain "$d/task.yml" 2>&1
    echo "\$ berth-worker run --verbose --image busybox task.yml"
    "$BERTH_WORKER_BIN" --work-dir "$d/work" --runtime "$BERTH_BIN" run --verbose \
        --image "$BERTH_FIXTURES/rootfs/busybox" "$d/task.yml" 2>&1
    echo "exit status $?"
    rm -rf "$d"
}
log "unprivileged berth-worker run"
worker_unprivileged >"$out/worker-unprivileged.txt" 2>&1
log "$(tail -1 "$out/worker-unprivileged.txt")"
# Leftovers the tests did not clean up would show here.
{
    echo "leftover mounts under /run/berth: $(grep -c ' /run/berth' /proc/self/mountinfo)"
    echo "leftover state dirs: $(ls /run/berth 2>/dev/null | wc -l)"
} >>"$out/info.txt"
echo ok >"$out/done"
sync
