#!/usr/bin/env bash
# The kernel matrix (`make test-kernels`): runs the test binaries built on this
# host in virtme-ng VMs booted with Debian's kernels, under each cgroup layout,
# with the host's own userland (its root filesystem, shared read-only over 9p
# with a copy-on-write overlay). Nothing is built inside the VM.
#
#   run.sh BINLIST
#
# BINLIST   "name path dir" per test binary (dir: its package, the cwd cargo gives it) (the Makefile lists them with
#           `cargo test --no-run --message-format=json`)
# KERNELS   kernels to boot (default "5.10 6.1 6.12"): see integration/kernels/fetch.sh
# CGROUPS   layouts (default "v2 v1 hybrid"): see integration/kernels/guest.sh
# TESTS     only binaries whose name is listed (default: all), e.g. "runtime_cgroups"
# KERNELS_DIR where kernels are cached and results are kept (default build/kernels)
# VNG_ACCEL kvm | tcg (default: kvm when a KVM boot works, else tcg)
# VNG_MEMORY, VNG_CPUS  the VM's size (default 8G: the fixtures are copied into its tmpfs;
#           2 CPUs under KVM, 1 under TCG: see below)
# BATS      .bats files of runc's suite to run in each row as well, with runc
#           and with berth (default none; TESTS=none runs only those), from
# BATS_FILTER a regular expression: of those files, only the tests whose name
#           matches (bats --filter), e.g. 'v2|blkio weight'
# BATS_RUNTIMES which runtimes run them: "berth runc" (default), "berth" or "runc"
# CONFORMANCE the conformance harness (default integration/conformance)
#
# Each row leaves $KERNELS_DIR/results/<kernel>-<layout>/ (results.tsv, one
# log per binary, info.txt); the table of every row run so far is printed and
# written to docs/kernels.md (between the markers there). The exit status is
# non-zero when a binary failed or timed out, or a VM did not finish.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
binlist=$(realpath "$1")
KERNELS=${KERNELS:-5.10 6.1 6.12}
CGROUPS=${CGROUPS:-v2 v1 hybrid}
TESTS=${TESTS:-}
KERNELS_DIR=$(realpath -m "${KERNELS_DIR:-$repo/build/kernels}")
VNG_MEMORY=${VNG_MEMORY:-8G}
VNG_CPUS=${VNG_CPUS:-}
# A whole row under TCG takes tens of minutes; a hung VM must still end.
ROW_TIMEOUT=${ROW_TIMEOUT:-5400}

mkdir -p "$KERNELS_DIR/results"

# Which binaries to run.
sel=$(mktemp)
trap 'rm -f "$sel" "$sel.times"' EXIT
while read -r name bin dir; do
    [[ -n $bin ]] || continue
    if [[ -z $TESTS || " $TESTS " == *" $name "* ]]; then echo "$name $bin $dir"; fi
done <"$binlist" >"$sel"
BATS=${BATS:-}
conf_cache=${BERTH_CONFORMANCE_CACHE:-/var/tmp/berth-conformance}
CONFORMANCE=$(realpath -m "${CONFORMANCE:-$repo/integration/conformance}")
if [[ -n $BATS && ! -e $CONFORMANCE/runc-bats.sh ]]; then
    echo "test-kernels: BATS needs the conformance harness (CONFORMANCE=$CONFORMANCE)" >&2
    exit 2
fi
if [[ ! -s $sel && -z $BATS ]]; then
    echo "test-kernels: no test binary selected (TESTS=$TESTS)" >&2
    exit 2
fi


# boot KERNEL_IMAGE ACCEL OUTDIR COMMAND: one VM, output on our stdout.
boot() {
    local kimg=$1 accel=$2 out=$3 cmd=$4 secs=$5
    # --verbose: the kernel's log goes to console.log too, so a VM that dies
    # mid-row (a panic, the guest's OOM killer) leaves its reason.
    local args=(--verbose --run "$kimg" --force-9p --memory "$VNG_MEMORY" --cpus "${VNG_CPUS:-1}"
        --rwdir "$out" --overlay-rwdir /work --exec "$cmd")
    [[ $accel == kvm ]] || args+=(--disable-kvm)
    # The VM's /var/tmp is its own: runc's bats suite needs the host's built
    # cache (integration/conformance/lib.sh) or it rebuilds runc's Go helpers
    # under emulation.
    if [[ -n $BATS && -d $conf_cache ]]; then args+=(--rwdir "$conf_cache"); fi
    # virtme-ng wants a terminal-ish stdin; give it /dev/null and bound it.
    timeout -k 20 "$secs" nice vng "${args[@]}" </dev/null
}

# KVM works on bare metal but hangs in nested setups: try one short boot.
pick_accel() {
    local kimg=$1
    if [[ -n ${VNG_ACCEL:-} ]]; then echo "$VNG_ACCEL"; return; fi
    local probe
    probe=$(mktemp -d)
    if [[ -w /dev/kvm ]] && boot "$kimg" kvm "$probe" "echo ok > $probe/kvm" 60 >/dev/null 2>&1 &&
        [[ -s $probe/kvm ]]; then
        echo kvm
    else
        echo tcg
    fi
    rm -rf "$probe"
}

# One tar of what the tests read again and again (guest.sh unpacks it into the
# VM's tmpfs): the rootfs fixtures, the probes, berth and berth-worker.
fixtures=$(realpath "${BERTH_FIXTURES:-$repo/build}")
payload=$KERNELS_DIR/payload.tar
tar --xattrs --xattrs-include='*' -cf "$payload" -C "$fixtures" rootfs probes \
    --transform "s,^$(basename "$BERTH_BIN")\$,bin/berth," \
    --transform "s,^$(basename "$BERTH_WORKER_BIN")\$,bin/berth-worker," \
    -C "$(dirname "$(realpath "$BERTH_BIN")")" "$(basename "$BERTH_BIN")" \
    -C "$(dirname "$(realpath "$BERTH_WORKER_BIN")")" "$(basename "$BERTH_WORKER_BIN")"

# CPU seconds (user + system) of every child that ended so far, in $cpu:
# qemu's share. `times` must run in this shell, not in a $(...) subshell.
children_cpu() {
    times >"$sel.times"
    cpu=$(tail -1 "$sel.times" | awk '{ s = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] }
        printf "%d\n", s }')
}

status=0
accel=
ran=()
for k in $KERNELS; do
    "$here/fetch.sh" "$k" "$KERNELS_DIR"
    kimg=$(ls "$KERNELS_DIR/$k"/boot/vmlinuz-* | head -1)
    [[ -n $accel ]] || accel=$(pick_accel "$kimg")
    # Multi-threaded TCG and a guest that patches its own kernel text (static
    # keys, through int3 breakpoints) do not mix: a 6.12 row died in
    # "Oops: int3" at a patch site (get_page_from_freelist, in a page fault)
    # and another ended the same way without a log. One vCPU leaves no other
    # CPU to race the patching (docs/kernels.md).
    [[ -n $VNG_CPUS ]] || VNG_CPUS=$([[ $accel == kvm ]] && echo 2 || echo 1)
    # What the tests read (see the Makefile's TEST_ENV), as absolute paths: the
    # VM sees the host's tree at the same paths.
    envfile=$KERNELS_DIR/test.env
    {
        echo "BERTH_FIXTURES=$fixtures"
        echo "BERTH_BIN=$(realpath "$BERTH_BIN")"
        echo "BERTH_WORKER_BIN=$(realpath "$BERTH_WORKER_BIN")"
        # Under TCG every instruction is emulated: stretch the tests' waits.
        echo "BERTH_TEST_TIME_SCALE=${BERTH_TEST_TIME_SCALE:-$([[ $accel == kvm ]] && echo 2 || echo 10)}"
        echo "BERTH_KERNELS_BATS='$BATS'"
        echo "BERTH_KERNELS_BATS_FILTER='${BATS_FILTER:-}'"
        echo "BERTH_KERNELS_BATS_RUNTIMES='${BATS_RUNTIMES:-berth runc}'"
        echo "BERTH_KERNELS_CONFORMANCE=$CONFORMANCE"
        # The fixtures and binaries the guest unpacks into its tmpfs.
        echo "BERTH_KERNELS_PAYLOAD=$payload"
        # The harness builds nothing when its cache is there (see its README).
        echo "RUNC_GIT=${RUNC_GIT:-}"
    } >"$envfile"
    for cg in $CGROUPS; do
        row=$KERNELS_DIR/results/$k-$cg
        rm -rf "$row"
        mkdir -p "$row"
        echo "== test-kernels: Linux $k ($(basename "$kimg")), cgroup $cg, $accel"
        start=$(date +%s)
        children_cpu
        cpu0=$cpu
        boot "$kimg" "$accel" "$row" "bash $here/guest.sh $cg $row $sel $envfile" \
            "$ROW_TIMEOUT" >"$row/console.log" 2>&1 || true
        secs=$(($(date +%s) - start))
        echo "$secs" >"$row/seconds"
        # On a shared machine the wall time says more about the neighbours.
        children_cpu
        echo $((cpu - cpu0)) >"$row/cpu-seconds"
        echo "$accel" >"$row/accel"
        git -C "$repo" rev-parse HEAD >"$row/commit" 2>/dev/null || true
        grep '^guest:' "$row/guest.log" 2>/dev/null || true
        if [[ ! -e $row/done ]]; then
            echo "test-kernels: the $k/$cg VM did not finish (see $row/console.log)" >&2
            tail -20 "$row/console.log" >&2
            status=1
        fi
        if awk -F'\t' '$2 != "pass" { bad = 1 } END { exit !bad }' "$row/results.tsv" 2>/dev/null; then
            status=1
        fi
        echo "== $k/$cg took ${secs}s"
        ran+=("$row/results.tsv")
    done
done

"$here/table.sh" "$KERNELS_DIR/results" "$repo/docs/kernels.md"
# One closing line for the rows of this run: tests, not binaries.
cat "${ran[@]}" 2>/dev/null | awk -F'\t' '{ p += $3; f += $4; s += $6 }
    END { printf "test-kernels: %d passed, %d failed, %d skipped\n", p - s, f, s }'
exit $status
