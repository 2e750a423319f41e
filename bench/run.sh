#!/usr/bin/env bash
# berth benchmarks: berth against runc and crun (and youki when installed),
# measured in the same run on the same machine. Called by `make bench`.
#
#   bench/run.sh [SECTION...]     sections: start seccomp_build syscall_overhead
#                                 clients worker (default: all)
#
# Writes bench/results.md (or $BENCH_OUT). A benchmark, not a test: nothing
# here fails because a number is bad. A runtime that can't run the bundle
# (smoke test fails) is skipped, and results.md says so and why.
#
# Environment: BERTH_FIXTURES (default build/), BERTH_BIN, BERTH_WORKER_BIN
# (default target/release/...), BENCH_RUNS (default 30), BENCH_WARMUP
# (default 3), BENCH_PROFILE (seccomp profile for the per-syscall bench,
# default profiles/default.json).
set -euo pipefail

# --------------------------------------------------- cgroup v1-only view
#
# crun refuses hybrid cgroups ("cgroups in hybrid mode not supported, drop
# all controllers from cgroupv2"): a v1 tmpfs at /sys/fs/cgroup with a
# cgroup2 at /sys/fs/cgroup/unified. runc and berth handle hybrid. To still
# compare against crun, it runs in a private mount namespace in which
# /sys/fs/cgroup is rebuilt with the v1 hierarchies only. This re-exec entry
# point does the rebuilding; it is called through `unshare -m`.
if [ "${1:-}" = "--in-v1-view" ]; then
    shift
    # Capture the v1 hierarchies (mount point and the options that name the
    # controllers, e.g. "rw,cpu" or "rw,name=systemd") before hiding them.
    mapfile -t v1 < <(findmnt -rn -t cgroup -o TARGET,FS-OPTIONS)
    # systemd-style layouts also have aliases like cpu -> cpu,cpuacct.
    mapfile -t links < <(find /sys/fs/cgroup -maxdepth 1 -type l -printf '%f %l\n')
    mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup
    for link in "${links[@]}"; do
        ln -s "${link#* }" "/sys/fs/cgroup/${link%% *}"
    done
    for entry in "${v1[@]}"; do
        target=${entry%% *}
        opts=${entry#* }
        mkdir -p "$target"
        # Mounting a v1 hierarchy with the same controllers again attaches
        # the existing hierarchy: the cgroups crun creates are the real ones.
        mount -t cgroup -o "$opts" cgroup "$target"
    done
    exec "$@"
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
fixtures=${BERTH_FIXTURES:-$repo/build}
berth=${BERTH_BIN:-$repo/target/release/berth}
worker=${BERTH_WORKER_BIN:-$repo/target/release/berth-worker}
runs=${BENCH_RUNS:-30}
warmup=${BENCH_WARMUP:-3}
profile=${BENCH_PROFILE:-$repo/profiles/default.json}
out=${BENCH_OUT:-$repo/bench/results.md}
rootfs=$fixtures/rootfs/busybox
tag=berth-bench-$$

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/run.sh: run as root (containers with cgroups)" >&2
    exit 1
fi
if ! [ -x "$rootfs/bin/true" ]; then
    echo "bench/run.sh: $rootfs missing; run make fixtures" >&2
    exit 1
fi

work=$(mktemp -d "/tmp/$tag.XXXXXX")
sections=$work/sections
mkdir -p "$sections"

# Every container id this script uses starts with $tag, so cleanup can find
# exactly what it created: state dirs under $work and cgroups named after the
# id (the default cgroupsPath of runc/crun/berth is /<id>).
cleanup() {
    local rt id
    for rt in "${!rt_cmd[@]}"; do
        for id in $(${rt_cmd[$rt]} list -q 2>/dev/null | grep "^$tag" || true); do
            ${rt_cmd[$rt]} delete --force "$id" >/dev/null 2>&1 || true
        done
    done
    # (rmdir, deepest first: a cgroup with processes left is not removed.)
    find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name "$tag*" 2>/dev/null |
        while read -r d; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true; done
    # podman's private storage mounts its overlay driver dir under $work.
    awk -v d="$work" 'index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$work"
}
declare -A rt_cmd=() rt_wrap=() rt_skip=() rt_version=()
trap cleanup EXIT

log() { echo "bench: $*" >&2; }

# ------------------------------------------------------------- helpers

gcc -O2 -Wall -o "$work/measure" "$repo/bench/measure.c"
measure=$work/measure

cgroup_mode() {
    if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
        echo v2
    elif [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
        echo hybrid
    else
        echo v1
    fi
}

# A bundle running ARGS (JSON array) from the busybox fixture: the config
# `runc spec` writes (the same for every runtime), read-only root, no tty.
# Extra jq filter in $3 for per-section changes.
make_bundle() {
    local dir=$1 args=$2 filter=${3:-.}
    mkdir -p "$dir"
    (cd "$dir" && runc spec)
    jq --arg root "$rootfs" --argjson args "$args" \
        '.root = {path: $root, readonly: true}
         | .process.terminal = false
         | .process.args = $args
         | '"$filter" \
        "$dir/config.json" > "$dir/config.json.new"
    mv "$dir/config.json.new" "$dir/config.json"
}

# Median of one key=value field over measure's output lines.
median() {
    local key=$1 file=$2
    grep -o "$key=[0-9]*" "$file" | cut -d= -f2 | sort -n |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "nan";
              else if (NR % 2) print v[(NR + 1) / 2];
              else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Run "$@" as runtime RT would be run (in the v1-only view for crun on a
# hybrid host).
in_view() {
    local rt=$1
    shift
    if [ -n "${rt_wrap[$rt]}" ]; then
        unshare -m --propagation private "$repo/bench/run.sh" --in-v1-view "$@"
    else
        "$@"
    fi
}

# ------------------------------------------------------------ runtimes

# Register the runtimes to compare, and smoke-test each: one `run` that must
# print what the container really saw (its own PID 1 and hostname), so an
# unfinished runtime that exits 0 without running anything is not "measured".
# A runtime that fails is kept in the table as skipped.
setup_runtimes() {
    local mode
    mode=$(cgroup_mode)
    rt_cmd[berth]="$berth --root $work/root-berth"
    rt_wrap[berth]=
    rt_cmd[runc]="runc --root $work/root-runc"
    rt_wrap[runc]=
    rt_cmd[crun]="crun --root $work/root-crun"
    rt_wrap[crun]=$([ "$mode" = hybrid ] && echo v1 || true)
    if command -v youki >/dev/null; then
        rt_cmd[youki]="youki --root $work/root-youki"
        rt_wrap[youki]=
    fi
    make_bundle "$work/true" '["/bin/true"]'
    make_bundle "$work/smoke" '["/bin/sh", "-c", "echo smoke pid=$$ host=$(hostname)"]'
    local rt err got
    for rt in $(runtimes); do
        rt_version[$rt]=$(${rt_cmd[$rt]%% *} --version 2>/dev/null | head -n1 || true)
        [ -n "${rt_version[$rt]}" ] || rt_version[$rt]="(no --version)"
        err=$work/smoke-$rt.err
        if ! [ -x "${rt_cmd[$rt]%% *}" ] && ! command -v "${rt_cmd[$rt]%% *}" >/dev/null; then
            rt_skip[$rt]="binary not found: ${rt_cmd[$rt]%% *}"
        elif ! got=$(in_view "$rt" ${rt_cmd[$rt]} run --bundle "$work/smoke" "$tag-smoke-$rt" \
            </dev/null 2>"$err"); then
            rt_skip[$rt]="smoke test \`run\` failed: $(tr '\n' ' ' < "$err" | sed 's/^ *//' | cut -c1-200)"
        elif [ "$got" != "smoke pid=1 host=runc" ]; then
            # (`runc spec` sets hostname "runc".)
            rt_skip[$rt]="smoke test \`run\` printed \"${got:0:100}\", want \"smoke pid=1 host=runc\""
        fi
        ${rt_cmd[$rt]} delete --force "$tag-smoke-$rt" >/dev/null 2>&1 || true
        if [ -n "${rt_skip[$rt]:-}" ]; then log "$rt: skipped: ${rt_skip[$rt]}"; fi
    done
}

# Runtimes in table order.
runtimes() {
    local rt
    for rt in berth runc crun youki; do
        [ -n "${rt_cmd[$rt]:-}" ] && echo "$rt"
    done
    return 0
}
usable_runtimes() {
    local rt
    for rt in $(runtimes); do
        [ -z "${rt_skip[$rt]:-}" ] && echo "$rt"
    done
    return 0
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "nan" || b == "nan") print "–";
                                      else printf "%.2f", a / b }'
}
ms() { awk -v v="$1" 'BEGIN { if (v == "nan") print "–"; else printf "%.1f", v / 1000 }'; }
mb() { awk -v v="$1" 'BEGIN { if (v == "nan") print "–"; else printf "%.1f", v / 1024 }'; }

# ------------------------------------------------------------- sections

# Container start: `RUNTIME run` of /bin/true from the busybox bundle, the
# whole create → start → wait → delete cycle one CI step costs.
bench_start() {
    local rt f
    for rt in $(usable_runtimes); do
        f=$work/start-$rt.txt
        log "start: $rt × $runs"
        if ! in_view "$rt" "$measure" -n "$runs" -w "$warmup" -e "$work/start-$rt.err" -- \
            ${rt_cmd[$rt]} run --bundle "$work/true" "$tag-$rt" > "$f"; then
            rt_skip[$rt]="some measured runs failed: $(tail -n1 "$work/start-$rt.err" | cut -c1-200)"
        fi
        ${rt_cmd[$rt]} delete --force "$tag-$rt" >/dev/null 2>&1 || true
    done
    local base_cpu=nan base_wall=nan base_rss=nan
    if [ -f "$work/start-crun.txt" ] && [ -z "${rt_skip[crun]:-}" ]; then
        base_cpu=$(median cpu_us "$work/start-crun.txt")
        base_wall=$(median wall_us "$work/start-crun.txt")
        base_rss=$(median maxrss_kb "$work/start-crun.txt")
    fi
    {
        echo "## Container start: \`run\` of /bin/true"
        echo
        echo "The busybox bundle from \`runc spec\` (namespaces pid, net, ipc, uts, mount,"
        echo "cgroup; read-only root; no seccomp), \`RUNTIME --root DIR run --bundle B ID\`,"
        echo "$runs measured runs after $warmup warm-up runs, medians. CPU is user+sys of"
        echo "the runtime and every process it waited for (wait4 rusage); peak RSS is the"
        echo "largest single process. Ratios are to crun (lower is better)."
        echo
        echo "| runtime | CPU ms | wall ms | peak RSS MB | CPU / crun | wall / crun | RSS / crun |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        local cpu wall rss
        for rt in $(runtimes); do
            if [ -n "${rt_skip[$rt]:-}" ]; then
                echo "| $rt | skipped | | | | | |"
                continue
            fi
            f=$work/start-$rt.txt
            cpu=$(median cpu_us "$f")
            wall=$(median wall_us "$f")
            rss=$(median maxrss_kb "$f")
            echo "| $rt | $(ms "$cpu") | $(ms "$wall") | $(mb "$rss") |" \
                "$(ratio "$cpu" "$base_cpu") | $(ratio "$wall" "$base_wall") | $(ratio "$rss" "$base_rss") |"
        done
        echo
        skipped_notes
    } > "$sections/10-start.md"
}

skipped_notes() {
    local rt
    for rt in $(runtimes); do
        if [ -n "${rt_skip[$rt]:-}" ]; then
            echo "- **$rt skipped**: ${rt_skip[$rt]}"
        fi
    done
    if [ -n "${rt_wrap[crun]:-}" ]; then
        echo "- crun ran in a private mount namespace whose /sys/fs/cgroup holds only the"
        echo "  v1 hierarchies (crun refuses hybrid cgroups); the others saw the host's hybrid layout."
    fi
    echo
}

# seccomp profile build time (issue 4): compiling profiles/default.json to
# BPF, cold and cached by profile hash. Target: warm ≤ 1 ms.
bench_seccomp_build() {
    seccomp_build_report > "$sections/20-seccomp-build.md"
}
seccomp_build_report() {
    local rel=${profile#"$repo"/} f=$work/seccomp-build.txt bpf=$work/profile.bpf size
    echo "## seccomp profile build time"
    echo
    if ! [ -f "$profile" ]; then
        printf 'Not measured: no profile at `%s`.\n\n' "$rel"
        return
    fi
    # Smoke: one compile must write a cBPF program (8-byte instructions).
    "$berth" seccomp compile "$profile" --out "$bpf" >/dev/null 2>"$work/seccomp-build.err" || true
    size=$(stat -c %s "$bpf" 2>/dev/null || echo 0)
    if [ "$size" -eq 0 ] || [ $((size % 8)) -ne 0 ]; then
        printf 'Not measured: `berth seccomp compile %s --out FILE` wrote %s bytes, not a BPF program (%s).\n\n' \
            "$rel" "$size" "$(tr '\n' ' ' < "$work/seccomp-build.err" | cut -c1-200)"
        return
    fi
    "$measure" -n "$runs" -w "$warmup" -e "$work/seccomp-build.err" -- \
        "$berth" seccomp compile "$profile" --out "$bpf" > "$f" || true
    printf '`berth seccomp compile %s --out FILE` (%s bytes of BPF), %s runs, median:\n' "$rel" "$size" "$runs"
    printf 'wall %s ms, CPU %s ms (whole process, including exec).\n\n' \
        "$(ms "$(median wall_us "$f")")" "$(ms "$(median cpu_us "$f")")"
    # HOOK: the in-process split the issue asks for (cold compile vs a cache
    # hit by profile hash, target ≤ 1 ms warm) goes here once berth exposes
    # it, e.g. a timing flag on `berth seccomp compile`.
}

# Per-syscall cost of the seccomp filter inside the container (issue 4): the
# probe loops a syscall and reports ns per call. getppid is a "cache hit"
# (allowed whatever its arguments, so since Linux 5.11 the kernel's seccomp
# action bitmap answers without running the BPF; only the seccomp entry path
# remains), personality(0xffffffff) is arg-checked in Docker's profile, so
# the BPF runs on every call.
bench_syscall_overhead() {
    local iters=${BENCH_SYSCALL_ITERS:-1000000}
    {
        echo "## seccomp per-syscall overhead inside the container"
        echo
        if ! [ -f "$profile" ]; then
            echo "Not measured: no profile at \`${profile#"$repo"/}\`."
            echo
            return
        fi
        if ! [ -x "$rootfs/usr/bin/berth-probe" ]; then
            echo "Not measured: $rootfs/usr/bin/berth-probe missing (make fixtures)."
            echo
            return
        fi
        echo "\`berth-probe bench NR $iters\` in a container with \`${profile#"$repo"/}\`"
        echo "(and once without seccomp for the floor), median of 5 runs, ns per call."
        echo
        echo "| runtime | getppid, no filter | getppid | personality(0xffffffff), no filter | personality(0xffffffff) |"
        echo "|---|---:|---:|---:|---:|"
        local rt case nr arg filtered cells
        for rt in $(runtimes); do
            if [ -n "${rt_skip[$rt]:-}" ]; then
                echo "| $rt | skipped | | | |"
                continue
            fi
            cells=
            for case in "110 0" "135 0xffffffff"; do
                nr=${case% *}
                arg=${case#* }
                for filtered in no yes; do
                    local b=$work/sc-$rt-$nr-$filtered
                    make_bundle "$b" "[\"/usr/bin/berth-probe\",\"bench\",\"$nr\",\"$iters\",\"$arg\"]"
                    if [ "$filtered" = yes ]; then
                        jq --slurpfile p "$profile" '.linux.seccomp = $p[0]' \
                            "$b/config.json" > "$b/config.json.new"
                        mv "$b/config.json.new" "$b/config.json"
                    fi
                    local i vals=()
                    for i in 1 2 3 4 5; do
                        vals+=("$(in_view "$rt" ${rt_cmd[$rt]} run --bundle "$b" "$tag-sc-$rt" 2>>"$work/sc.err" </dev/null |
                            grep -o 'ns_per_call=[0-9.]*' | cut -d= -f2 || true)")
                        ${rt_cmd[$rt]} delete --force "$tag-sc-$rt" >/dev/null 2>&1 || true
                    done
                    cells+=" $(printf '%s\n' "${vals[@]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "fail" }') |"
                done
            done
            echo "| $rt |$cells"
        done
        echo
        skipped_notes
    } > "$sections/30-syscall-overhead.md"
}

# Client level (issue 5): a container engine driving each runtime, e.g.
# `podman --runtime X run --rm --rootfs DIR /bin/true`.
bench_clients() {
    {
        echo "## Client level: podman with each runtime"
        echo
        if ! command -v podman >/dev/null; then
            echo "Not measured: podman is not installed."
            echo
            return
        fi
        # Private storage under $work (nothing left in /var/lib/containers),
        # an overlay over the fixture (:O) so podman's own files
        # (/run/.containerenv, /etc/hosts, ...) don't land in it, and small
        # rlimits: podman 4's defaults (NOFILE 1048576, NPROC 32768) fail on
        # hosts whose root lacks CAP_SYS_RESOURCE, and `--ulimit host` does
        # not replace them.
        # Its cgroups go under /$tag-podman (podman's default parent,
        # /libpod_parent, would stay behind) so cleanup finds them.
        local podman=(podman --root "$work/podman/root" --runroot "$work/podman/run"
            --tmpdir "$work/podman/tmp"
            --cgroup-manager cgroupfs)
        echo "\`podman --runtime R run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
        echo "--rootfs busybox-fixture:O /bin/true\`,"
        echo "$runs runs, medians."
        echo
        echo "| runtime | CPU ms | wall ms |"
        echo "|---|---:|---:|"
        local rt bin f
        for rt in $(runtimes); do
            if [ -n "${rt_skip[$rt]:-}" ]; then
                echo "| $rt | skipped | |"
                continue
            fi
            bin=${rt_cmd[$rt]%% *}
            bin=$(command -v "$bin" || echo "$bin")
            f=$work/client-$rt.txt
            if in_view "$rt" "$measure" -n "$runs" -w "$warmup" -e "$work/client-$rt.err" -- \
                "${podman[@]}" --runtime "$bin" run --rm --network none --cgroup-parent "/$tag-podman" \
                --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
                --rootfs "$rootfs:O" /bin/true > "$f"; then
                echo "| $rt | $(ms "$(median cpu_us "$f")") | $(ms "$(median wall_us "$f")") |"
            else
                echo "| $rt | failed: $(tail -n1 "$work/client-$rt.err" | cut -c1-120) | |"
            fi
        done
        echo
        # HOOK: docker (needs a running dockerd with the runtime registered in
        # daemon.json) and containerd/nerdctl rows belong here.
    } > "$sections/40-clients.md"
}

# Worker level (issue 6): `berth-worker run` of a `true` task with a warm
# image, end to end, against `podman run --rm` of the same rootfs. Target
# ≤ 60 ms.
bench_worker() {
    {
        echo "## Worker level: a \`true\` task"
        echo
        if ! "$worker" run --help >/dev/null 2>&1; then
            echo "Not measured: \`berth-worker run\` is not available in this build."
            echo
            return
        fi
        cat > "$work/true.yml" <<'TASK'
platform: linux
run:
  path: /bin/true
TASK
        cat > "$work/smoke.yml" <<'TASK'
platform: linux
run:
  path: /bin/sh
  args: ["-c", "echo worker-smoke-$((6 * 7))"]
TASK
        local f=$work/worker.txt got
        got=$("$worker" run "$work/smoke.yml" --image "$rootfs" 2>"$work/worker.err" </dev/null || true)
        if [[ $got != *worker-smoke-42* ]]; then
            echo "Not measured: smoke task did not print worker-smoke-42" \
                "(stderr: $(tr '\n' ' ' < "$work/worker.err" | cut -c1-200))."
            echo
            return
        fi
        if "$measure" -n "$runs" -w "$warmup" -e "$work/worker.err" -- \
            "$worker" run "$work/true.yml" --image "$rootfs" > "$f"; then
            echo "\`berth-worker run true.yml --image busybox-fixture\`, $runs runs, medians:"
            echo "wall $(ms "$(median wall_us "$f")") ms, CPU $(ms "$(median cpu_us "$f")") ms."
        else
            echo "Failed: $(tail -n1 "$work/worker.err" | cut -c1-200)"
        fi
        echo
        # HOOK: podman/docker run --rm of the same image for comparison, and
        # image unpack throughput for the bookworm image.
    } > "$sections/50-worker.md"
}

# ------------------------------------------------------------------ main

all_sections=(start seccomp_build syscall_overhead clients worker)
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${all_sections[@]}")
for s in "${selected[@]}"; do
    case " ${all_sections[*]} " in
    *" $s "*) ;;
    *) echo "bench/run.sh: unknown section $s (have: ${all_sections[*]})" >&2; exit 2 ;;
    esac
done

setup_runtimes
for s in "${selected[@]}"; do
    log "section $s"
    "bench_$s"
done

{
    echo "# berth benchmark results"
    echo
    echo "Generated by \`make bench\` (bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo
    echo "- kernel $(uname -r), $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo))"
    echo "- cgroups: $(cgroup_mode)"
    for rt in $(runtimes); do
        echo "- $rt: ${rt_version[$rt]}"
    done
    echo
    cat "$sections"/*.md
} > "$out.new"
mv "$out.new" "$out"
log "wrote $out"
