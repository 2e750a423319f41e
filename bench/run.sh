#!/usr/bin/env bash
# berth benchmarks: berth against runc and crun (and youki when installed),
# measured in the same run on the same machine. Called by `make bench`.
#
#   bench/run.sh [SECTION...]     sections: start seccomp_build syscall_overhead
#                                 clients worker network (default: all)
#
# Writes bench/results.md (or $BENCH_OUT). A benchmark, not a test: nothing
# here fails because a number is bad. A runtime that can't run the bundle
# (smoke test fails) is skipped, and results.md says so and why.
#
# Environment: BERTH_FIXTURES (default build/), BERTH_BIN, BERTH_WORKER_BIN
# (default target/release/...), BENCH_RUNS (default 30), BENCH_WARMUP
# (default 3), BENCH_PROFILE (seccomp profile for the per-syscall bench,
# default profiles/default.json), BENCH_UNPACK_RUNS (bookworm imports, default 5).
# BENCH_BASELINE_BERTH: an older berth binary, measured as `berth-before` in the
# start section only (before/after of a change in one interleaved run).
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
    # Detach the old tree first rather than only covering it: a covered
    # cgroup2 at /sys/fs/cgroup/unified still shows in mountinfo, and a
    # runtime that reads mountinfo (berth) would take the host for hybrid.
    umount -R -l /sys/fs/cgroup
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

# Worker runs take no network unless a section says so (the network section
# makes its own namespaces; nothing here touches the host's network stack).
export BERTH_WORKER_NETWORK=none

work=$(mktemp -d "/tmp/$tag.XXXXXX")
sections=$work/sections
plotdata=$work/plotdata
mkdir -p "$sections"

# Every container id this script uses starts with $tag, so cleanup can find
# exactly what it created: state dirs under $work and cgroups named after the
# id (the default cgroupsPath of runc/crun/berth is /<id>).
cleanup() {
    local rt id pid
    # Daemons the client sections started (when interrupted mid-section),
    # by pid; they stop their shims' containers on the way out.
    for pid in "${daemons[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for rt in "${!rt_cmd[@]}"; do
        for id in $(${rt_cmd[$rt]} list -q 2>/dev/null | grep "^$tag" || true); do
            ${rt_cmd[$rt]} delete --force "$id" >/dev/null 2>&1 || true
        done
    done
    # (rmdir, deepest first: a cgroup with processes left is not removed.)
    # conmon also makes plain directories, with a `tasks` file, for
    # controllers the kernel has but nobody mounted (net_cls, perf_event...
    # on this hybrid host): those are on the tmpfs, not a cgroup, and go
    # with rm, as do the controller directories it made for them.
    find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name "$tag*" 2>/dev/null |
        while read -r d; do
            case $(stat -f -c %T "$d") in
                cgroupfs | cgroup2fs) find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true ;;
                *) rm -rf --one-file-system "$d" ;;
            esac
        done
    local top
    for top in /sys/fs/cgroup/*/; do
        top=${top%/}
        if [[ " $cgroup_top " != *" $top "* ]] && ! mountpoint -q "$top"; then
            rmdir "$top" 2>/dev/null || true
        fi
    done
    # podman's private storage mounts its overlay driver dir under $work.
    awk -v d="$work" 'index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$work"
}
declare -A rt_cmd=() rt_wrap=() rt_skip=() rt_version=()
daemons=()
# What /sys/fs/cgroup held before: cleanup removes only directories added since.
cgroup_top=$(echo /sys/fs/cgroup/*/ | sed 's,/ , ,g; s,/$,,')
trap cleanup EXIT
# Interrupted: exit (after the foreground command), so the EXIT trap cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM

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
    # BENCH_BASELINE_BERTH: an older berth binary measured alongside in the
    # start section only (before/after of a change in one interleaved run).
    if [ -n "${BENCH_BASELINE_BERTH:-}" ]; then
        rt_cmd[berth-before]="$BENCH_BASELINE_BERTH --root $work/root-berth-before"
        rt_wrap[berth-before]=
    fi
    make_bundle "$work/true" '["/bin/true"]'
    make_bundle "$work/smoke" '["/bin/sh", "-c", "echo smoke pid=$$ host=$(hostname)"]'
    local rt err got
    for rt in $(runtimes) $(baseline); do
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
# The baseline berth, when BENCH_BASELINE_BERTH names one (start only).
baseline() {
    [ -n "${rt_cmd[berth-before]:-}" ] && echo berth-before
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

# Run measure once over several commands, interleaved (measure's `:::`), in
# the v1-only view when any runtime needs it, so every runtime sees the same
# cgroup layout and a burst of load hits them all alike.
#   interleave OUTPREFIX RUNS WARMUP LABEL1 CMD1... ::: LABEL2 CMD2... ...
# writes OUTPREFIX-LABEL.txt (measure lines) per command.
interleave() {
    local prefix=$1 n=$2 w=$3
    shift 3
    local labels=() args=() first=1
    while [ $# -gt 0 ]; do
        labels+=("$1")
        shift
        [ -n "$first" ] || args+=(":::")
        first=
        while [ $# -gt 0 ] && [ "$1" != ":::" ]; do args+=("$1"); shift; done
        [ $# -eq 0 ] || shift
    done
    local raw=$prefix.raw rc=0
    if [ -n "${rt_wrap[crun]:-}" ]; then
        unshare -m --propagation private "$repo/bench/run.sh" --in-v1-view \
            "$measure" -n "$n" -w "$w" -e "$prefix.err" -- "${args[@]}" > "$raw" || rc=$?
    else
        "$measure" -n "$n" -w "$w" -e "$prefix.err" -- "${args[@]}" > "$raw" || rc=$?
    fi
    local k
    for k in "${!labels[@]}"; do
        grep "^cmd=$((k + 1)) " "$raw" | cut -d' ' -f2- > "$prefix-${labels[$k]}.txt" || true
    done
    return $rc
}

# interleave without the v1 view (commands that are not runtimes).
interleave_plain() {
    local saved=${rt_wrap[crun]:-}
    rt_wrap[crun]=
    local rc=0
    interleave "$@" || rc=$?
    rt_wrap[crun]=$saved
    return $rc
}

# The bare kernel work of a start: the namespaces, a fork, an exec.
floor_cmd=(unshare --fork --pid --mount --net --ipc --uts /bin/true)

# Container start: `RUNTIME run` of /bin/true from the busybox bundle, the
# whole create → start → wait → delete cycle one CI step costs; without
# seccomp and with Docker's profile; the floor interleaved with them.
bench_start() {
    make_bundle "$work/true-sc" '["/bin/true"]' '.'
    jq --slurpfile p "$profile" '.linux.seccomp = $p[0]' "$work/true-sc/config.json" \
        > "$work/true-sc/config.json.new" && mv "$work/true-sc/config.json.new" "$work/true-sc/config.json"
    local rt variant bundle list=()
    for variant in plain seccomp; do
        bundle=$work/true
        [ "$variant" = plain ] || bundle=$work/true-sc
        list=()
        for rt in $(usable_runtimes) $(start_baseline); do
            list+=("$rt" ${rt_cmd[$rt]} run --bundle "$bundle" "$tag-$rt" ":::")
        done
        list+=(floor "${floor_cmd[@]}")
        log "start ($variant): $( (usable_runtimes; start_baseline) | tr '\n' ' ')floor × $runs, interleaved"
        if ! interleave "$work/start-$variant" "$runs" "$warmup" "${list[@]}"; then
            log "start ($variant): some runs failed: $(tail -n1 "$work/start-$variant.err" | cut -c1-200)"
        fi
        for rt in $(usable_runtimes) $(start_baseline); do
            ${rt_cmd[$rt]} delete --force "$tag-$rt" >/dev/null 2>&1 || true
            if [ "$(grep -c 'status=0' "$work/start-$variant-$rt.txt")" -ne "$runs" ]; then
                rt_skip[$rt]="some measured runs failed ($variant): $(tail -n1 "$work/start-$variant.err" | cut -c1-200)"
            fi
        done
    done
    for rt in $(runtimes) floor; do
        [ -f "$work/start-plain-$rt.txt" ] && cp "$work/start-plain-$rt.txt" "$work/start-$rt.txt"
    done
    mkdir -p "$plotdata"
    for variant in plain seccomp; do
        for rt in $(usable_runtimes) $(start_baseline) floor; do
            cp "$work/start-$variant-$rt.txt" "$plotdata/start-$variant-$rt.txt"
        done
    done
    {
        echo "## Container start: \`run\` of /bin/true"
        echo
        echo "The busybox bundle from \`runc spec\` (namespaces pid, net, ipc, uts, mount,"
        echo "cgroup; read-only root), \`RUNTIME --root DIR run --bundle B ID\`, without seccomp"
        echo "and with Docker's profile (\`${profile#"$repo"/}\`). $runs measured rounds after $warmup"
        echo "warm-up rounds; each round runs every runtime and the floor once (interleaved), medians."
        echo "CPU is user+sys of the runtime and every process it waited for (wait4 rusage); peak"
        echo "RSS is the largest single process. Ratios are to crun (lower is better). The floor is"
        echo "\`${floor_cmd[*]}\`: the kernel work no runtime can avoid."
        echo
        echo "![start CPU and wall per runtime](start.svg)"
        echo
        for variant in plain seccomp; do
            start_table "$variant"
        done
        skipped_notes
    } > "$sections/10-start.md"
}

# The baseline, if it passed its smoke test.
start_baseline() {
    local rt
    for rt in $(baseline); do
        [ -z "${rt_skip[$rt]:-}" ] && echo "$rt"
    done
    return 0
}

# start_table VARIANT: one table from $work/start-VARIANT-RT.txt.
start_table() {
    local variant=$1 rt f base_cpu=nan base_wall=nan base_rss=nan fl_cpu fl_wall
    if [ "$variant" = plain ]; then
        echo "### No seccomp"
    else
        echo "### Docker's seccomp profile"
    fi
    echo
    f=$work/start-$variant-crun.txt
    if [ -s "$f" ] && [ -z "${rt_skip[crun]:-}" ]; then
        base_cpu=$(median cpu_us "$f")
        base_wall=$(median wall_us "$f")
        base_rss=$(median maxrss_kb "$f")
    fi
    fl_cpu=$(median cpu_us "$work/start-$variant-floor.txt")
    fl_wall=$(median wall_us "$work/start-$variant-floor.txt")
    echo "| runtime | CPU ms | wall ms | peak RSS MB | CPU / crun | wall / crun | RSS / crun | CPU − floor ms | wall − floor ms |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    local cpu wall rss
    for rt in $(runtimes) $(baseline) floor; do
        if [ -n "${rt_skip[$rt]:-}" ]; then
            echo "| $rt | skipped | | | | | | | |"
            continue
        fi
        f=$work/start-$variant-$rt.txt
        cpu=$(median cpu_us "$f")
        wall=$(median wall_us "$f")
        rss=$(median maxrss_kb "$f")
        echo "| $rt | $(ms "$cpu") | $(ms "$wall") | $(mb "$rss") |" \
            "$(ratio "$cpu" "$base_cpu") | $(ratio "$wall" "$base_wall") | $(ratio "$rss" "$base_rss") |" \
            "$(ms "$(awk -v a="$cpu" -v b="$fl_cpu" 'BEGIN { print a - b }')") |" \
            "$(ms "$(awk -v a="$wall" -v b="$fl_wall" 'BEGIN { print a - b }')") |"
    done
    echo
}

# How a start grows with the number of mounts and of seccomp rules: the
# true bundle plus N tmpfs mounts stacked on /tmp, or a profile of N rules.
# BENCH_SCALE_RUNS rounds (default 5), interleaved per N.
bench_scaling() {
    local n rt k=${BENCH_SCALE_RUNS:-5} list kind
    mkdir -p "$plotdata"
    : > "$plotdata/scaling.tsv"
    for kind in mounts rules; do
        for n in 1 10 100 1000 10000; do
            [ "$kind" = mounts ] && [ "$n" -eq 10000 ] && continue
            [ "$kind" = rules ] && [ "$n" -eq 1 ] && continue
            local b=$work/scale-$kind-$n
            if [ "$kind" = mounts ]; then
                make_bundle "$b" '["/bin/true"]' \
                    "$(printf '.mounts += [range(%d) | {destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "size=64k"]}]' "$n")"
            else
                make_bundle "$b" '["/bin/true"]'
                # (Default allow, so /bin/true runs whatever N is; the rules
                # return EPERM for 20 syscalls no start makes, cycling, so the
                # filter's size stays put and the cost of N is the parse and
                # the compile.)
                jq --argjson n "$n" '
                    ["acct", "add_key", "bpf", "kexec_load", "keyctl", "lookup_dcookie", "mbind",
                     "move_pages", "name_to_handle_at", "open_by_handle_at", "perf_event_open",
                     "quotactl", "request_key", "swapon", "swapoff", "syslog", "userfaultfd",
                     "fanotify_init", "iopl", "ioperm"] as $names
                    | .linux.seccomp = {defaultAction: "SCMP_ACT_ALLOW",
                        architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                        syscalls: [range($n) as $i | {names: [$names[$i % ($names | length)]],
                                   action: "SCMP_ACT_ERRNO", errnoRet: 1}]}' \
                    "$b/config.json" > "$b/config.json.new" && mv "$b/config.json.new" "$b/config.json"
            fi
            list=()
            for rt in $(usable_runtimes); do
                list+=("$rt" ${rt_cmd[$rt]} run --bundle "$b" "$tag-$rt" ":::")
            done
            unset 'list[${#list[@]}-1]'
            log "scaling: $n $kind × $k"
            interleave "$work/scale-$kind-$n" "$k" 1 "${list[@]}" || true
            for rt in $(usable_runtimes); do
                ${rt_cmd[$rt]} delete --force "$tag-$rt" >/dev/null 2>&1 || true
                local f=$work/scale-$kind-$n-$rt.txt ok
                ok=$(grep -c 'status=0' "$f" || true)
                if [ "$ok" -eq "$k" ]; then
                    printf '%s\t%s\t%s\t%s\t%s\n' "$kind" "$n" "$rt" "$(median cpu_us "$f")" "$(median wall_us "$f")"
                else
                    printf '%s\t%s\t%s\tfail\tfail\n' "$kind" "$n" "$rt"
                fi >> "$plotdata/scaling.tsv"
            done
        done
    done
    {
        echo "## Start time vs mounts and seccomp rules"
        echo
        echo "\`run\` of /bin/true with N extra tmpfs mounts stacked on /tmp, and with a profile of"
        echo "N rules (default allow; each rule returns EPERM for one of 20 syscalls a start never"
        echo "makes, cycling; three arches). $k interleaved rounds per N, median CPU ms (wall ms); \`fail\` = the runtime"
        echo "refused or failed the bundle."
        echo
        echo "![start vs mounts and rules](scaling.svg)"
        echo
        local rts
        rts=$(usable_runtimes | tr '\n' ' ')
        echo "| what | N | $(echo "$rts" | sed 's/ $//; s/ / | /g') |"
        echo "|---|---:|$(for rt in $rts; do printf -- '---:|'; done)"
        local line
        for kind in mounts rules; do
            for n in $(awk -v k="$kind" '$1 == k { print $2 }' "$plotdata/scaling.tsv" | uniq); do
                line="| $kind | $n |"
                for rt in $rts; do
                    line+=" $(awk -v k="$kind" -v n="$n" -v r="$rt" '$1 == k && $2 == n && $3 == r {
                        if ($4 == "fail") print "fail"; else printf "%.1f (%.1f)", $4 / 1000, $5 / 1000 }' "$plotdata/scaling.tsv") |"
                done
                echo "$line"
            done
        done
        echo
    } > "$sections/15-scaling.md"
}

# 100 containers created at once: the memory they hold while created (the
# sum of their memory cgroups' usage, and MemAvailable's drop), and the
# create / start / delete throughput, one runtime at a time.
bench_many() {
    local n=${BENCH_MANY:-100} rt i t0 t1 t2 t3 avail0 avail1 mem
    make_bundle "$work/many" '["/bin/true"]'
    mkdir -p "$plotdata"
    : > "$plotdata/many.tsv"
    for rt in $(usable_runtimes); do
        log "many: $rt × $n"
        sync
        avail0=$(awk '/^MemAvailable/ { print $2 }' /proc/meminfo)
        t0=$(date +%s%N)
        for i in $(seq "$n"); do
            in_view "$rt" ${rt_cmd[$rt]} create --bundle "$work/many" "$tag-m$i-$rt" </dev/null >/dev/null 2>>"$work/many.err" || true
        done
        t1=$(date +%s%N)
        avail1=$(awk '/^MemAvailable/ { print $2 }' /proc/meminfo)
        # Each container's memory cgroup, wherever the runtime put it.
        local mroot=/sys/fs/cgroup/memory
        [ -d "$mroot" ] || mroot=/sys/fs/cgroup
        mem=$(find "$mroot" -maxdepth 3 -type d -name "$tag-m*-$rt" 2>/dev/null |
            while read -r d; do cat "$d/memory.usage_in_bytes" "$d/memory.current" 2>/dev/null || true; done |
            awk '{ s += $1 } END { printf "%d", s / 1024 }')
        local created
        created=$(${rt_cmd[$rt]} list -q 2>/dev/null | grep -c "^$tag-m.*-$rt$" || true)
        for i in $(seq "$n"); do
            in_view "$rt" ${rt_cmd[$rt]} start "$tag-m$i-$rt" </dev/null >/dev/null 2>>"$work/many.err" || true
        done
        t2=$(date +%s%N)
        for i in $(seq "$n"); do
            ${rt_cmd[$rt]} delete --force "$tag-m$i-$rt" </dev/null >/dev/null 2>>"$work/many.err" || true
        done
        t3=$(date +%s%N)
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rt" "$created" "$mem" "$((avail0 - avail1))" \
            "$(awk -v n="$n" -v d=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (d / 1e9) }')" \
            "$(awk -v n="$n" -v d=$((t2 - t1)) 'BEGIN { printf "%.0f", n / (d / 1e9) }')" \
            "$(awk -v n="$n" -v d=$((t3 - t2)) 'BEGIN { printf "%.0f", n / (d / 1e9) }')" >> "$plotdata/many.tsv"
    done
    {
        echo "## $n containers created at once"
        echo
        echo "\`create\` of $n containers from the busybox bundle one after the other (all alive"
        echo "together), then \`start\` of each, then \`delete --force\` of each; one runtime at a"
        echo "time. Memory: the sum of the containers' memory cgroups (\`memory.usage_in_bytes\`)"
        echo "with all $n created, and how much MemAvailable dropped (noisy on a shared machine)."
        echo "Throughput: containers per second of each phase (each command a fresh process)."
        echo
        echo "| runtime | created | cgroup memory MB | MemAvailable drop MB | create/s | start/s | delete/s |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        awk -F'\t' '{ printf "| %s | %s | %.1f | %.1f | %s | %s | %s |\n", $1, $2, $3 / 1024, $4 / 1024, $5, $6, $7 }' \
            "$plotdata/many.tsv"
        echo
    } > "$sections/17-many.md"
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
        echo "  v1 hierarchies (crun refuses hybrid cgroups). In the start, scaling and many"
        echo "  sections every runtime ran in that view (the same layout for all); elsewhere the"
        echo "  others saw the host's hybrid layout."
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

# Client level (issue 5): a container engine driving each runtime. Every
# table has the same rows (berth, runc, crun, youki when installed); a
# runtime the client cannot drive here gets a row saying why.
bench_clients() {
    {
        echo "## Client level: container engines driving each runtime"
        echo
        echo "Wall time of one whole client command (client → daemon → shim → runtime"
        echo "→ container → cleanup), $runs measured runs after $warmup warm-up runs, medians."
        echo "Ratios are to crun (to runc where crun is not measured; lower is better)."
        echo
        clients_podman
        clients_containerd
        clients_docker
        skipped_notes
    } > "$sections/40-clients.md"
}

# The runtime the client rows are compared with: crun if its row was
# measured, else runc.
client_base() {
    local prefix=$1
    if [ -s "$work/$prefix-crun.txt" ]; then echo crun; else echo runc; fi
}

# One table: a row per runtime from $work/PREFIX-RT.txt (measure output) or
# $work/PREFIX-RT.why (why there is no measurement). CPU is reported only
# when the client itself forks the runtime (podman): a daemon's client
# (ctr, docker) waits for no runtime process, so its rusage says nothing.
client_table() {
    local prefix=$1 with_cpu=$2 base base_wall=nan base_cpu=nan rt f cpu wall
    base=$(client_base "$prefix")
    if [ -s "$work/$prefix-$base.txt" ]; then
        base_wall=$(median wall_us "$work/$prefix-$base.txt")
        base_cpu=$(median cpu_us "$work/$prefix-$base.txt")
    fi
    if [ "$with_cpu" = yes ]; then
        echo "| runtime | CPU ms | wall ms | CPU / $base | wall / $base |"
        echo "|---|---:|---:|---:|---:|"
    else
        echo "| runtime | wall ms | wall / $base |"
        echo "|---|---:|---:|"
    fi
    for rt in $(runtimes); do
        f=$work/$prefix-$rt.txt
        if [ -n "${rt_skip[$rt]:-}" ]; then
            [ "$with_cpu" = yes ] && echo "| $rt | skipped | | | |" || echo "| $rt | skipped | |"
            continue
        fi
        if ! [ -s "$f" ]; then
            local why
            why=$(cat "$work/$prefix-$rt.why" 2>/dev/null || echo "no result")
            [ "$with_cpu" = yes ] && echo "| $rt | not measured: $why | | | |" ||
                echo "| $rt | not measured: $why | |"
            continue
        fi
        wall=$(median wall_us "$f")
        cpu=$(median cpu_us "$f")
        if [ "$with_cpu" = yes ]; then
            echo "| $rt | $(ms "$cpu") | $(ms "$wall") | $(ratio "$cpu" "$base_cpu") | $(ratio "$wall" "$base_wall") |"
        else
            echo "| $rt | $(ms "$wall") | $(ratio "$wall" "$base_wall") |"
        fi
    done
    echo
}

# The command prefix that runs a process as runtime RT would run (see
# in_view), as an array for starting daemons in the background: `$!` must
# be the daemon's own pid (unshare and the re-exec both exec, no fork).
view_prefix() {
    view=()
    if [ -n "${rt_wrap[$1]}" ]; then
        view=(unshare -m --propagation private "$repo/bench/run.sh" --in-v1-view)
    fi
}

# Stop a daemon we started, by pid, and wait for it to exit.
stop_daemon() {
    local pid=$1 p kept=()
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${daemons[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    daemons=("${kept[@]}")
}

# Absolute path of runtime RT's binary.
rt_bin() {
    local bin=${rt_cmd[$1]%% *}
    command -v "$bin" || echo "$bin"
}

# podman: no daemon, `podman run` forks conmon, which forks the runtime.
clients_podman() {
    echo "### podman"
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
    echo "--rootfs busybox-fixture:O /bin/true\` (private --root/--runroot, cgroupfs manager)."
    echo "CPU is podman's own and what it waited for: conmon and the runtime are"
    echo "double-forked away from it, so mostly podman itself."
    echo
    local rt
    for rt in $(usable_runtimes); do
        log "clients: podman with $rt × $runs"
        if ! in_view "$rt" "$measure" -n "$runs" -w "$warmup" -e "$work/client-podman-$rt.err" -- \
            "${podman[@]}" --runtime "$(rt_bin "$rt")" run --rm --network none --cgroup-parent "/$tag-podman" \
            --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
            --rootfs "$rootfs:O" /bin/true > "$work/client-podman-$rt.txt"; then
            echo "failed: $(tail -n1 "$work/client-podman-$rt.err" | cut -c1-120)" > "$work/client-podman-$rt.why"
            rm -f "$work/client-podman-$rt.txt"
        fi
    done
    client_table client-podman yes
}

# containerd: one private containerd per runtime (own root, state, socket,
# as integration/clients/containerd.sh), started in crun's v1-only view for
# crun so the shim and crun inherit it. The image is an OCI archive of the
# busybox fixture. Containers' cgroups go under /$tag-ctr, the runtime
# state under $work, the FIFOs under $work: nothing in /run/containerd.
clients_containerd() {
    echo "### containerd"
    echo
    if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
        echo "Not measured: containerd/ctr are not installed."
        echo
        return
    fi
    echo "\`ctr run --rm --runc-binary R --runc-root DIR --fifo-dir DIR --cgroup /PARENT/ID"
    echo "IMAGE ID /bin/true\` against a private containerd $(containerd --version | awk '{ print $3 }')"
    echo "(runc shim v2, overlayfs snapshotter); the image is an OCI archive of the busybox fixture."
    echo
    local img=localhost/berth-bench-busybox:latest
    python3 "$repo/integration/clients/oci_archive.py" "$rootfs" "$img" "$work/busybox-oci.tar"
    local rt
    for rt in $(usable_runtimes); do
        log "clients: containerd with $rt × $runs"
        containerd_one "$rt" "$img" || true
    done
    client_table client-ctr no
}

# containerd_one RT IMAGE: start a containerd for RT, smoke-test, measure,
# stop it. Leaves $work/client-ctr-RT.txt, or .why when not measured.
containerd_one() {
    local rt=$1 img=$2
    local d=$work/ctr-$rt why=$work/client-ctr-$rt.why
    local sock=$d/containerd.sock
    mkdir -p "$d"
    cat > "$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable = true
TOML
    local view
    view_prefix "$rt"
    "${view[@]}" containerd --config "$d/config.toml" > "$d/containerd.log" 2>&1 &
    local pid=$! i
    daemons+=("$pid")
    for i in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
    if ! [ -S "$sock" ]; then
        echo "containerd did not start: $(tail -n1 "$d/containerd.log" | cut -c1-120)" > "$why"
        stop_daemon "$pid"
        return 1
    fi
    local ctr=(ctr --address "$sock" --namespace "$tag")
    local run=("${ctr[@]}" run --rm --runc-binary "$(rt_bin "$rt")" --runc-root "$d/runc-root"
        --fifo-dir "$d/fifo" --cgroup "/$tag-ctr/$tag-ctr-$rt" "$img" "$tag-ctr-$rt")
    local got rc=0
    if ! "${ctr[@]}" images import "$work/busybox-oci.tar" > /dev/null 2> "$d/import.err"; then
        echo "image import failed: $(tail -n1 "$d/import.err" | cut -c1-120)" > "$why"
        rc=1
    elif ! got=$("${run[@]}" /bin/sh -c 'echo smoke pid=$$' 2> "$d/smoke.err" < /dev/null) ||
        [ "$got" != "smoke pid=1" ]; then
        echo "smoke run printed \"${got:-}\": $(tr '\n' ' ' < "$d/smoke.err" | cut -c1-160)" > "$why"
        rc=1
    elif ! "$measure" -n "$runs" -w "$warmup" -e "$d/measure.err" -- "${run[@]}" /bin/true \
        > "$work/client-ctr-$rt.txt"; then
        echo "failed: $(tail -n1 "$d/measure.err" | cut -c1-120)" > "$why"
        rm -f "$work/client-ctr-$rt.txt"
        rc=1
    fi
    # A failed run may leave the task or container: remove both, then the
    # image and its snapshots, so stopping containerd leaves no mounts.
    "${ctr[@]}" task rm -f "$tag-ctr-$rt" > /dev/null 2>&1 || true
    "${ctr[@]}" container rm "$tag-ctr-$rt" > /dev/null 2>&1 || true
    "${ctr[@]}" images rm "$img" > /dev/null 2>&1 || true
    stop_daemon "$pid"
    return $rc
}

# dockerd: one private dockerd per runtime (as integration/clients/docker.sh:
# own data/exec root and socket, no iptables, no bridge, vfs storage; it
# starts its own containerd), in crun's v1-only view for crun. The runtime
# is registered with --add-runtime under a name of its own ("runc" is
# reserved by dockerd). The image is `docker import` of a tar of the
# busybox fixture.
clients_docker() {
    echo "### docker"
    echo
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        echo "Not measured: dockerd/docker are not installed."
        echo
        return
    fi
    echo "\`docker run --rm --runtime R --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
    echo "IMAGE /bin/true\` against a private dockerd $(dockerd --version | awk '{ print $3 }' | tr -d ,)"
    echo "(vfs storage, no bridge, no iptables, cgroupfs, its own containerd); the image is"
    echo "\`docker import\` of a tar of the busybox fixture."
    echo
    tar -C "$rootfs" -cf "$work/busybox-rootfs.tar" .
    local rt
    for rt in $(usable_runtimes); do
        log "clients: docker with $rt × $runs"
        docker_one "$rt" || true
    done
    client_table client-docker no
}

# docker_one RT: start a dockerd for RT, smoke-test, measure, stop it.
docker_one() {
    local rt=$1
    local d=$work/docker-$rt why=$work/client-docker-$rt.why
    local sock=$d/docker.sock img=berth-bench-busybox:latest name=bench-$rt
    mkdir -p "$d"
    local view
    view_prefix "$rt"
    "${view[@]}" dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/docker.pid" \
        --host "unix://$sock" --iptables=false --ip6tables=false --bridge=none --ip-forward=false \
        --ip-masq=false --storage-driver vfs --cgroup-parent "/$tag-docker" \
        --exec-opt native.cgroupdriver=cgroupfs \
        --add-runtime "$name=$(rt_bin "$rt")" \
        --containerd-namespace "$tag" --containerd-plugins-namespace "$tag-plugins" \
        > "$d/dockerd.log" 2>&1 &
    local pid=$! i
    daemons+=("$pid")
    local docker=(docker --host "unix://$sock")
    for i in $(seq 150); do "${docker[@]}" info > /dev/null 2>&1 && break; sleep 0.2; done
    if ! "${docker[@]}" info > /dev/null 2>&1; then
        echo "dockerd did not start: $(tail -n1 "$d/dockerd.log" | cut -c1-120)" > "$why"
        stop_daemon "$pid"
        return 1
    fi
    local run=("${docker[@]}" run --rm --runtime "$name" --network none
        --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$img")
    local got rc=0
    if ! "${docker[@]}" import "$work/busybox-rootfs.tar" "$img" > /dev/null 2> "$d/import.err"; then
        echo "image import failed: $(tail -n1 "$d/import.err" | cut -c1-120)" > "$why"
        rc=1
    elif ! got=$("${run[@]}" /bin/sh -c 'echo smoke pid=$$' 2> "$d/smoke.err" < /dev/null) ||
        [ "$got" != "smoke pid=1" ]; then
        echo "smoke run printed \"${got:-}\": $(tr '\n' ' ' < "$d/smoke.err" | cut -c1-160)" > "$why"
        rc=1
    elif ! "$measure" -n "$runs" -w "$warmup" -e "$d/measure.err" -- "${run[@]}" /bin/true \
        > "$work/client-docker-$rt.txt"; then
        echo "failed: $(tail -n1 "$d/measure.err" | cut -c1-120)" > "$why"
        rm -f "$work/client-docker-$rt.txt"
        rc=1
    fi
    # (--rm containers are gone; a failed one is removed here.)
    "${docker[@]}" ps -aq | xargs -r "${docker[@]}" rm -f > /dev/null 2>&1 || true
    stop_daemon "$pid"
    return $rc
}

# Worker level (issue 6): `berth-worker run` of a `true` task with a warm
# image, end to end, against `podman run --rm` and `docker run --rm` of the
# same rootfs, in the same run. Target ≤ 60 ms. Then image unpack
# throughput for the bookworm fixture.
bench_worker() {
    {
        echo "## Worker level: a \`true\` task"
        echo
        worker_task
        worker_unpack
    } > "$sections/50-worker.md"
}

worker_task() {
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
    # A private work dir (image store, run records) under $work, and berth
    # from this build as the runtime. Unprivileged tasks run in a user
    # namespace whose root is an unprivileged host uid: it must be able to
    # traverse $work (mktemp makes it 0700) to reach the run's rootfs.
    chmod 0711 "$work"
    local wk=("$worker" --work-dir "$work/worker" --runtime "$berth")
    local got
    echo "End to end, $runs runs after $warmup warm-ups, medians; the image is the busybox"
    echo "fixture directory (warm: used in place as the overlay's lower layer, nothing"
    echo "unpacked); \`--network none\` (the bridge's own cost is in the network section)."
    echo "Ratios are to \`berth-worker run\`."
    echo
    echo "| command | CPU ms | wall ms | wall / berth-worker |"
    echo "|---|---:|---:|---:|"
    got=$("${wk[@]}" run "$work/smoke.yml" --image "$rootfs" 2>"$work/worker.err" </dev/null || true)
    local base=nan f=$work/worker-berth.txt
    if [[ $got != *worker-smoke-42* ]]; then
        echo "| \`berth-worker run true.yml --image DIR\` | not measured: smoke task did not print worker-smoke-42" \
            "(stderr: $(tr '\n' ' ' < "$work/worker.err" | cut -c1-160)) | | |"
    else
        log "worker: berth-worker run × $runs"
        if "$measure" -n "$runs" -w "$warmup" -e "$work/worker.err" -- \
            "${wk[@]}" run "$work/true.yml" --network none --image "$rootfs" > "$f"; then
            base=$(median wall_us "$f")
            echo "| \`berth-worker run true.yml --image DIR\` | $(ms "$(median cpu_us "$f")") | $(ms "$base") | 1.00 |"
        else
            echo "| \`berth-worker run true.yml --image DIR\` | failed: $(tail -n1 "$work/worker.err" | cut -c1-160) | | |"
        fi
    fi
    # podman: the same options as the client section, runc as the runtime
    # (named: podman's default may be crun, which refuses hybrid cgroups).
    f=$work/worker-podman.txt
    if command -v podman >/dev/null; then
        log "worker: podman run × $runs"
        if "$measure" -n "$runs" -w "$warmup" -e "$work/worker-podman.err" -- \
            podman --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp" \
            --cgroup-manager cgroupfs --runtime "$(command -v runc)" run --rm --network none \
            --cgroup-parent "/$tag-podman" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
            --rootfs "$rootfs:O" /bin/true > "$f"; then
            echo "| \`podman run --rm --rootfs DIR:O /bin/true\` (runc) | $(ms "$(median cpu_us "$f")") |" \
                "$(ms "$(median wall_us "$f")") | $(ratio "$(median wall_us "$f")" "$base") |"
        else
            echo "| \`podman run --rm\` | failed: $(tail -n1 "$work/worker-podman.err" | cut -c1-160) | | |"
        fi
    else
        echo "| \`podman run --rm\` | not measured: podman is not installed | | |"
    fi
    # docker: a private dockerd with its default runtime (runc), as in the
    # client section; only the client's CPU is visible, so no CPU column.
    if command -v dockerd >/dev/null && command -v docker >/dev/null; then
        [ -f "$work/busybox-rootfs.tar" ] || tar -C "$rootfs" -cf "$work/busybox-rootfs.tar" .
        log "worker: docker run × $runs"
        if docker_one runc; then
            f=$work/client-docker-runc.txt
            echo "| \`docker run --rm IMAGE /bin/true\` (runc) | – | $(ms "$(median wall_us "$f")") |" \
                "$(ratio "$(median wall_us "$f")" "$base") |"
        else
            echo "| \`docker run --rm\` | not measured: $(cat "$work/client-docker-runc.why") | | |"
        fi
    else
        echo "| \`docker run --rm\` | not measured: dockerd/docker are not installed | | |"
    fi
    echo
    worker_size "${wk[@]}"
    echo "CPU is the command's own and what it waited for; podman's conmon and runtime"
    echo "are double-forked away from it, and docker's run in the daemon, so only"
    echo "berth-worker's figure covers the whole container start."
    echo
}

# worker_size WORKER...: the `true` task against images of growing size
# (the busybox and bookworm fixtures, used in place), interleaved, for the
# worker figure: a warm image costs the same whatever its size.
worker_size() {
    local bookworm=$fixtures/rootfs/bookworm list=() img mb
    mkdir -p "$plotdata"
    : > "$plotdata/worker-size.tsv"
    for img in "$rootfs" "$bookworm"; do
        [ -d "$img" ] || continue
        list+=("$(basename "$img")" "$@" run "$work/true.yml" --network none --image "$img" ":::")
    done
    [ ${#list[@]} -gt 0 ] || return 0
    unset 'list[${#list[@]}-1]'
    log "worker: true task vs image size × $runs"
    local n=$runs
    interleave_plain "$work/wsize" "$n" "$warmup" "${list[@]}" || true
    echo "| image (warm, in place) | size MB | CPU ms | wall ms |"
    echo "|---|---:|---:|---:|"
    for img in "$rootfs" "$bookworm"; do
        [ -d "$img" ] || continue
        local f=$work/wsize-$(basename "$img").txt
        mb=$(du -sm "$img" | cut -f1)
        if [ "$(grep -c 'status=0' "$f" || true)" -eq "$n" ]; then
            printf 'warm (image dir in place)\t%s\t%s\n' "$mb" "$(median wall_us "$f")" >> "$plotdata/worker-size.tsv"
            echo "| $(basename "$img") | $mb | $(ms "$(median cpu_us "$f")") | $(ms "$(median wall_us "$f")") |"
        else
            echo "| $(basename "$img") | $mb | failed | |"
        fi
    done
    echo
    echo "![worker task time vs image size](worker.svg)"
    echo
}

# Image unpack throughput (issues 6, 13): `berth-worker images import` of a
# tar of the bookworm fixture into a fresh work dir, paired in each round with
# GNU `tar -xf` of the same file into a fresh directory, with and without a
# `sync -f` of it (the import ends with one syncfs before the image is renamed
# into place). `sync` before every command, nothing removed until the section
# ends (freeing inodes just before allocating them slows ext4 down).
worker_unpack() {
    local bookworm=$fixtures/rootfs/bookworm
    echo "### Image unpack: bookworm"
    echo
    if ! [ -d "$bookworm" ]; then
        echo "Not measured: $bookworm missing (make fixtures)."
        echo
        return
    fi
    if ! "$worker" images import --help >/dev/null 2>&1; then
        echo "Not measured: \`berth-worker images import\` is not available in this build."
        echo
        return
    fi
    local tarball=$work/bookworm.tar n=${BENCH_UNPACK_RUNS:-5} i k size
    tar -C "$bookworm" -cf "$tarball" .
    size=$(stat -c %s "$tarball")
    mkdir -p "$work/unpack"
    local cmds=(
        "tar -xf" "d=\$(mktemp -d -p $work/unpack); tar -C \"\$d\" -xf $tarball"
        "tar -xf + sync -f" "d=\$(mktemp -d -p $work/unpack); tar -C \"\$d\" -xf $tarball && sync -f \"\$d\""
        "berth-worker images import" "d=\$(mktemp -d -p $work/unpack); $worker --work-dir \"\$d\" images import $tarball >/dev/null"
    )
    for k in 0 1 2; do : > "$work/unpack-$k.txt"; done
    log "worker: images import bookworm vs tar -xf × $n"
    for i in $(seq "$n"); do
        for k in 0 1 2; do
            sync
            if ! "$measure" -n 1 -w 0 -e "$work/unpack.err" -- sh -c "${cmds[$((2 * k + 1))]}" \
                >> "$work/unpack-$k.txt"; then
                echo "Failed (${cmds[$((2 * k))]}): $(tail -n1 "$work/unpack.err" | cut -c1-200)"
                echo
                rm -rf --one-file-system "$work/unpack"
                return
            fi
        done
    done
    # Smoke: the unpacked rootfs must hold bookworm's files.
    if ! ls "$work"/unpack/*/images/*/rootfs/etc/debian_version >/dev/null 2>&1; then
        echo "Not measured: the import did not produce images/*/rootfs/etc/debian_version."
        echo
        rm -rf --one-file-system "$work/unpack"
        return
    fi
    rm -rf --one-file-system "$work/unpack"
    echo "$(awk -v b="$size" 'BEGIN { printf "%.0f", b / 1048576 }') MB uncompressed tar of the fixture,"
    echo "$(find "$bookworm" | wc -l) entries; $n interleaved rounds, \`sync\` before each command, medians."
    echo "Ratios are wall / the same figure of \`tar -xf + sync -f\` (same durability as the import)."
    echo
    echo "| command | wall ms | CPU ms | MB/s | wall / tar+sync | wall / tar |"
    echo "|---|---:|---:|---:|---:|---:|"
    local wsync wtar w
    wtar=$(median wall_us "$work/unpack-0.txt")
    wsync=$(median wall_us "$work/unpack-1.txt")
    for k in 0 1 2; do
        w=$(median wall_us "$work/unpack-$k.txt")
        echo "| \`${cmds[$((2 * k))]}\` | $(ms "$w") | $(ms "$(median cpu_us "$work/unpack-$k.txt")") |" \
            "$(awk -v b="$size" -v w="$w" 'BEGIN { if (w == "nan" || w == 0) print "–"; else printf "%.0f", b / 1048576 / (w / 1e6) }') |" \
            "$(ratio "$w" "$wsync") | $(ratio "$w" "$wtar") |"
    done
    echo
    worker_pull
}

# Registry pull (issue 13): a ~100 MB image (two gzip layers from the bookworm
# fixture) in Debian's docker-registry on 127.0.0.1 (its own storage, filled by
# `skopeo copy` from an OCI layout made here: offline), pulled by
# `berth-worker images pull` into a fresh work dir, against `skopeo copy` of
# the same image to a `dir:` plus `tar -xzf` of its layers and `sync -f`,
# interleaved, `sync` before each.
worker_pull() {
    echo "### Registry pull: ~100 MB image from a local registry"
    echo
    local bookworm=$fixtures/rootfs/bookworm
    if ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null; then
        echo "Not measured: docker-registry and skopeo are not installed (make deps)."
        echo
        return
    fi
    local n=${BENCH_UNPACK_RUNS:-5} d=$work/pull port i k
    rm -rf "$d"
    mkdir -p "$d/layout/blobs/sha256" "$d/out"
    # Two layers: usr/lib (the bulk) and the rest of usr/ and etc/.
    tar -C "$bookworm" -cf - ./usr/lib | gzip -n -1 > "$d/l1.tgz"
    tar -C "$bookworm" --exclude=./usr/lib -cf - ./usr ./etc ./bin ./sbin ./lib ./lib64 2>/dev/null |
        gzip -n -1 > "$d/l2.tgz"
    local layers="" diffs="" f hex diff usize=0
    for f in "$d/l1.tgz" "$d/l2.tgz"; do
        hex=$(sha256sum "$f" | cut -d' ' -f1)
        diff=$(gzip -dc "$f" | sha256sum | cut -d' ' -f1)
        usize=$((usize + $(gzip -dc "$f" | wc -c)))
        cp "$f" "$d/layout/blobs/sha256/$hex"
        layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$hex\",\"size\":$(stat -c %s "$f")}"
        diffs+="${diffs:+,}\"sha256:$diff\""
        echo "$hex" >> "$d/layer-order"
    done
    printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
        "$diffs" > "$d/config.json"
    local chex mhex
    chex=$(sha256sum "$d/config.json" | cut -d' ' -f1)
    cp "$d/config.json" "$d/layout/blobs/sha256/$chex"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
        "$chex" "$(stat -c %s "$d/config.json")" "$layers" > "$d/manifest.json"
    mhex=$(sha256sum "$d/manifest.json" | cut -d' ' -f1)
    cp "$d/manifest.json" "$d/layout/blobs/sha256/$mhex"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
        "$mhex" "$(stat -c %s "$d/manifest.json")" > "$d/layout/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' > "$d/layout/oci-layout"
    local csize
    csize=$(cat "$d/l1.tgz" "$d/l2.tgz" | wc -c)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf 'version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\nhttp: {addr: "127.0.0.1:%s"}\n' \
        "$d/storage" "$port" > "$d/registry.yml"
    docker-registry serve "$d/registry.yml" >/dev/null 2>&1 &
    local reg=$!
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    local ref=127.0.0.1:$port/bench/pull:1
    if ! skopeo copy -q --dest-tls-verify=false "oci:$d/layout:latest" "docker://$ref" 2>"$d/push.err"; then
        echo "Not measured: pushing to the local registry failed: $(tail -n1 "$d/push.err" | cut -c1-200)"
        echo
        kill "$reg" 2>/dev/null; wait "$reg" 2>/dev/null
        rm -rf "$d"
        return
    fi
    local untar='for h in $(cat '"$d"'/layer-order); do tar -C "$r" -xzf "$s/$h" || exit 1; done'
    local cmds=(
        "skopeo copy docker:// dir: + tar -xzf + sync -f"
        "o=\$(mktemp -d -p $d/out); s=\$o/dir; r=\$o/rootfs; mkdir \$r && skopeo copy -q --src-tls-verify=false docker://$ref dir:\$s && $untar && sync -f \$r"
        "berth-worker images pull"
        "o=\$(mktemp -d -p $d/out); $worker --work-dir \$o images pull $ref >/dev/null"
    )
    for k in 0 1; do : > "$d/m-$k.txt"; done
    log "worker: registry pull vs skopeo copy + tar × $n"
    local failed=
    for i in $(seq "$n"); do
        for k in 0 1; do
            sync
            if ! "$measure" -n 1 -w 0 -e "$d/m.err" -- sh -c "${cmds[$((2 * k + 1))]}" >> "$d/m-$k.txt"; then
                failed="${cmds[$((2 * k))]}: $(tail -n1 "$d/m.err" | cut -c1-200)"
                break 2
            fi
        done
    done
    kill "$reg" 2>/dev/null; wait "$reg" 2>/dev/null
    if [ -n "$failed" ]; then
        echo "Failed: $failed"
        echo
        rm -rf --one-file-system "$d"
        return
    fi
    if ! ls "$d"/out/*/images/*/rootfs/usr/lib >/dev/null 2>&1; then
        echo "Not measured: the pull did not produce images/*/rootfs/usr/lib."
        echo
        rm -rf --one-file-system "$d"
        return
    fi
    echo "Two gzip layers, $(awk -v b="$csize" 'BEGIN { printf "%.0f", b / 1048576 }') MB compressed," \
        "$(awk -v b="$usize" 'BEGIN { printf "%.0f", b / 1048576 }') MB of tar; registry on 127.0.0.1;" \
        "$n interleaved rounds, \`sync\` before each, medians."
    echo
    echo "| command | wall ms | CPU ms | wall / skopeo+tar |"
    echo "|---|---:|---:|---:|"
    local base w
    base=$(median wall_us "$d/m-0.txt")
    for k in 0 1; do
        w=$(median wall_us "$d/m-$k.txt")
        echo "| \`${cmds[$((2 * k))]}\` | $(ms "$w") | $(ms "$(median cpu_us "$d/m-$k.txt")") | $(ratio "$w" "$base") |"
    done
    echo
    echo "CPU covers the command and what it waited for (the registry's own CPU is in neither)."
    echo
    rm -rf --one-file-system "$d"
}

# Network (issue 11): the DNS proxy's added latency and its throughput, against
# the upstream directly and against dnsmasq as a plain forwarder (no cache);
# then a task start on the bridge against none. Everything happens in two
# network namespaces made here (TEST-NET-2 addresses): the upstream is the
# test DNS server (berth-test-dns), the worker runs in the client namespace.
bench_network() {
    {
        echo "## Network: DNS proxy and bridge start"
        echo
        network_dns_and_start
    } > "$sections/60-network.md"
}

network_dns_and_start() {
    local bindir testdns dnsbench
    bindir=$(dirname "$worker")
    testdns=$bindir/berth-test-dns dnsbench=$bindir/berth-dns-bench
    if ! [ -x "$testdns" ] || ! [ -x "$dnsbench" ]; then
        echo "Not measured: berth-test-dns / berth-dns-bench not built (make build)."
        echo
        return
    fi
    local c=$tag-netc u=$tag-netu n=${BENCH_DNS_QUERIES:-5000}
    ip netns del "$c" 2>/dev/null || true; ip netns del "$u" 2>/dev/null || true
    ip netns add "$c" && ip netns add "$u"
    ip link add "${tag:0:6}c0" netns "$c" type veth peer name "${tag:0:6}u0" netns "$u"
    ip -n "$c" addr add 198.51.100.1/24 dev "${tag:0:6}c0"
    ip -n "$u" addr add 198.51.100.53/24 dev "${tag:0:6}u0"
    local ns
    for ns in "$c" "$u"; do ip -n "$ns" link set lo up; done
    ip -n "$c" link set "${tag:0:6}c0" up && ip -n "$u" link set "${tag:0:6}u0" up
    local p_up p_proxy p_base= p_dnsmasq=
    ip netns exec "$u" "$testdns" --listen 198.51.100.53:53 2>/dev/null & p_up=$! daemons+=($!)
    ip netns exec "$c" "$worker" dns-proxy --listen 127.0.0.1 --upstream 198.51.100.53 \
        2>"$work/dns-proxy.log" & p_proxy=$! daemons+=($!)
    # BENCH_BASELINE_WORKER: an older berth-worker measured alongside, for before/after.
    local base=${BENCH_BASELINE_WORKER:-}
    if [ -n "$base" ]; then
        ip -n "$c" addr add 127.0.0.3/8 dev lo
        ip netns exec "$c" "$base" dns-proxy --listen 127.0.0.3 --upstream 198.51.100.53 \
            2>"$work/dns-proxy-base.log" & p_base=$! daemons+=($!)
    fi
    local have_dnsmasq=
    if command -v dnsmasq >/dev/null; then
        ip netns exec "$c" dnsmasq --keep-in-foreground --no-resolv --no-hosts --cache-size=0 \
            --listen-address=127.0.0.2 --bind-interfaces --port=53 --user=root \
            --server=198.51.100.53 --pid-file= 2>"$work/dnsmasq.log" & p_dnsmasq=$! daemons+=($!)
        have_dnsmasq=1
    fi
    sleep 0.5
    echo "\`berth-dns-bench\`: $n sequential UDP queries (\`A a.test.\`) for latency, then $n with"
    echo "64 in flight for throughput; client, proxy and dnsmasq in one namespace, the upstream"
    echo "(berth-test-dns) behind a veth in another. CPU µs/query: the server's own CPU time"
    echo "(all its threads, from /proc/PID/task/*/schedstat) over both phases, divided by 2N;"
    echo "it depends less on what else the machine runs than the queries/s do."
    [ -z "$base" ] || echo "\"before\": \`$base\` ($("$base" --version 2>/dev/null || echo "an older build"))."
    echo
    echo "| path | p50 µs | p99 µs | queries/s | lost | CPU µs/query |"
    echo "|---|---:|---:|---:|---:|---:|"
    local label target line pid t0 t1
    for target in 198.51.100.53 127.0.0.3 127.0.0.1 127.0.0.2; do
        case $target in
        198.*) label="upstream directly" pid=$p_up ;;
        127.0.0.1) label="through berth-worker dns-proxy" pid=$p_proxy ;;
        127.0.0.3) [ -n "$base" ] || continue; label="through berth-worker dns-proxy (before)" pid=$p_base ;;
        *) [ -n "$have_dnsmasq" ] || continue; label="through dnsmasq (forwarder, no cache)" pid=$p_dnsmasq ;;
        esac
        log "network: dns $label"
        t0=$(cpu_ns "$pid")
        line=$(ip netns exec "$c" "$dnsbench" "$target:53" "$n" 64 2>&1) || line="failed: $line"
        t1=$(cpu_ns "$pid")
        echo "| $label | $(kv p50_us "$line") | $(kv p99_us "$line") | $(kv qps "$line") | $(kv lost "$line") | $(awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / 1000 / (2 * n) }') |"
    done
    [ -n "$have_dnsmasq" ] || echo "| dnsmasq | not installed (make deps) | | | |"
    echo
    # Task start: the worker in the client namespace (its bridge, NAT and
    # rules are made there), the test server as the upstream.
    cat > "$work/true.yml" <<'TASK'
platform: linux
run:
  path: /bin/true
TASK
    chmod 0711 "$work"
    echo "\`berth-worker run true.yml\` (busybox fixture, warm), $runs rounds after $warmup warm-ups,"
    echo "the modes interleaved (each round runs each once), medians. CPU: the worker and every"
    echo "process it waited for (the runtime, the task, the CNI plugins of the start); the CNI DEL"
    echo "runs in a background process after the run returns and is not in it (its CPU is in the"
    echo "step table below)."
    echo
    echo "| --network | CPU ms | wall ms | CPU over none | wall over none |"
    echo "|---|---:|---:|---:|---:|"
    local mode f labels=() cmds=()
    for mode in none bridge-before bridge; do
        local w=$worker wd=$work/worker-net
        if [ "$mode" = bridge-before ]; then
            [ -n "$base" ] || continue
            w=$base wd=$work/worker-net-base
        fi
        [ ${#cmds[@]} -eq 0 ] || cmds+=(:::)
        cmds+=(nsenter --net="/run/netns/$c" "$w" --work-dir "$wd" --runtime "$berth"
            run "$work/true.yml" --image "$rootfs" --network "${mode%-before}" --dns 198.51.100.53)
        labels+=("$mode")
    done
    log "network: task start, ${labels[*]} interleaved × $runs"
    f=$work/net-start.txt
    if "$measure" -n "$runs" -w "$warmup" -e "$work/net-start.err" -- "${cmds[@]}" > "$f"; then
        local k none_cpu= none_wall= cpu wall
        for k in "${!labels[@]}"; do
            grep "^cmd=$((k + 1)) " "$f" > "$f.$k"
            cpu=$(median cpu_us "$f.$k") wall=$(median wall_us "$f.$k")
            [ -n "$none_cpu" ] || none_cpu=$cpu none_wall=$wall
            echo "| ${labels[$k]/-before/ (before)} | $(ms "$cpu") | $(ms "$wall") |" \
                "$(awk -v a="$cpu" -v b="$none_cpu" 'BEGIN { printf "%+.1f", (a - b) / 1000 }') |" \
                "$(awk -v a="$wall" -v b="$none_wall" 'BEGIN { printf "%+.1f", (a - b) / 1000 }') |"
        done
    else
        echo "| ${labels[*]} | failed: $(tail -n1 "$work/net-start.err" | cut -c1-160) | | | |"
    fi
    echo
    # Where a bridge start goes now: the worker's own per-step timings (debug log), medians.
    echo "Bridge setup steps (\`BERTH_WORKER_LOG=debug\`, $runs runs, median ms; bridge ADD and"
    echo "the rules check run at once; DEL runs after the run, in the background, and its plugins'"
    echo "CPU is the last line):"
    echo
    local k
    for k in $(seq "$runs"); do
        BERTH_WORKER_LOG=debug nsenter --net="/run/netns/$c" "$worker" --work-dir "$work/worker-net" \
            --runtime "$berth" run "$work/true.yml" --image "$rootfs" --network bridge \
            --dns 198.51.100.53 2>&1 >/dev/null | sed -n 's/^berth-worker: debug: network: //p'
    done > "$work/net-steps.txt"
    echo "| step | ms |"
    echo "|---|---:|"
    local step
    while IFS= read -r step; do
        echo "| $step | $(grep -F "$step: " "$work/net-steps.txt" | sed 's/.*: \([0-9.]*\) ms/\1/' | sort -n |
            awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "–") }') |"
    done < <(sed 's/: [0-9.]* ms$//' "$work/net-steps.txt" | grep -v installing | awk '!seen[$0]++')
    echo
    local p
    for p in "${daemons[@]}"; do stop_daemon "$p"; done
    ip netns del "$c" 2>/dev/null || true; ip netns del "$u" 2>/dev/null || true
}

kv() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<< "$2"; }
# CPU time (ns) a process has used so far, all threads.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# ------------------------------------------------------------------ main

all_sections=(start scaling many seccomp_build syscall_overhead clients worker network)
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${all_sections[@]}")
for s in "${selected[@]}"; do
    case " ${all_sections[*]} " in
    *" $s "*) ;;
    *) echo "bench/run.sh: unknown section $s (have: ${all_sections[*]})" >&2; exit 2 ;;
    esac
done

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
setup_runtimes
for s in "${selected[@]}"; do
    log "section $s"
    "bench_$s"
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
machine="$(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)"
# The figures, next to results.md, each captioned with the conditions.
figdir=$(dirname "$out")
if [ -d "$plotdata" ] && /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
    /usr/bin/python3 "$repo/bench/plot.py" "$plotdata" "$figdir" \
        "$(date -u '+%Y-%m-%d %H:%M UTC') · $machine · kernel $(uname -r) · load $load_start → $load_end" ||
        log "plot.py failed"
else
    log "no plots: python3-matplotlib missing (make deps-bench)"
fi

{
    echo "# berth benchmark results"
    echo
    echo "Generated by \`make bench\` (bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo
    echo "- machine: $machine; kernel $(uname -r)"
    echo "- load average (1, 5, 15 min) at the start: $load_start; at the end: $load_end"
    echo "  ($(nproc) CPUs: a load above that means other work competed with the bench;"
    echo "  ratios within one interleaved run stay comparable, absolute times do not)"
    echo "- cgroups: $(cgroup_mode)"
    for rt in $(runtimes); do
        echo "- $rt: ${rt_version[$rt]}"
    done
    echo
    cat "$sections"/*.md
} > "$out.new"
mv "$out.new" "$out"
log "wrote $out"
