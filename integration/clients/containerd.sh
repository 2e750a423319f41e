#!/usr/bin/env bash
# containerd's runc shim with `ctr run --runc-binary berth`: the scenario of
# issue 5, with a private containerd (lib.sh's start_containerd) and an OCI
# archive of the busybox fixture as the image.
. "$(dirname "$0")/lib.sh"
command -v containerd >/dev/null || { echo "containerd not installed: skipped"; exit 0; }

# (after containerd is stopped) the parent cgroup ctr's containers were in
on_exit "rmdir /sys/fs/cgroup/*/default /sys/fs/cgroup/unified/default /sys/fs/cgroup/default"
start_containerd
C=(ctr --address "$CONTAINERD_SOCK")
R=(--runc-binary "$BERTH_BIN")
IMG=localhost/berth-busybox:test
on_exit "${C[*]} task kill -s KILL c1; sleep 0.3; ${C[*]} task rm -f c1; ${C[*]} container rm c1"

step "an OCI archive of the busybox fixture, imported"
python3 "$(dirname "$0")/oci_archive.py" "$ROOTFS" "$IMG" "$WORK/image.tar"
"${C[@]}" images import "$WORK/image.tar" >/dev/null

step "run --rm echo"
out=$("${C[@]}" run --rm "${R[@]}" "$IMG" e1 echo hello-ctr)
expect_eq "run output" "$out" "hello-ctr"

step "a failing command's exit status"
set +e; "${C[@]}" run --rm "${R[@]}" "$IMG" e2 sh -c 'exit 42'; rc=$?; set -e
expect_eq "exit status" "$rc" "42"

step "run -d, exec, ps"
MEM=()
if have_memory_controller; then MEM=(--memory-limit 134217728); fi
"${C[@]}" run -d "${R[@]}" "${MEM[@]}" "$IMG" c1 sleep 600 >/dev/null
out=$("${C[@]}" task exec --exec-id x1 c1 sh -c 'echo in-exec $(id -u)')
expect_eq "exec output" "$out" "in-exec 0"
out=$("${C[@]}" task ps c1)
[ "$(echo "$out" | wc -l)" -ge 2 ] || fail "task ps shows no process: $out"

step "pause / resume"
"${C[@]}" task pause c1
out=$("${C[@]}" task ls | awk '$1=="c1"{print $3}')
expect_eq "status after pause" "$out" "PAUSED"
"${C[@]}" task resume c1
out=$("${C[@]}" task ls | awk '$1=="c1"{print $3}')
expect_eq "status after resume" "$out" "RUNNING"

if [ ${#MEM[@]} -gt 0 ]; then
    step "metrics (stats)"
    out=$("${C[@]}" task metrics c1)
    if [ "$(memory_place)" = unified ]; then
        # (the shim's v1 metrics look for memory on v1 hierarchies only)
        expect_contains "metrics" "$out" "pids"
    else
        expect_contains "metrics" "$out" "memory"
    fi

    step "--memory-limit visible in the container's cgroup (host side: ctr's spec mounts no cgroupfs)"
    # (containerd 1.6's ctr has no `task update`; the shim's update path,
    # `berth update --resources -`, is exercised by docker.sh's `docker update`.)
    out=$(cat /sys/fs/cgroup/memory/default/c1/memory.limit_in_bytes 2>/dev/null ||
        cat /sys/fs/cgroup/default/c1/memory.max 2>/dev/null || cat /sys/fs/cgroup/unified/default/c1/memory.max)
    expect_eq "memory limit" "$out" "134217728"
else
    # (the shim's metrics are its own reading of the memory cgroup, not berth's)
    skip_step "metrics, --memory-limit" "$MEMORY_MISSING"
fi

step "kill, delete"
"${C[@]}" task kill -s KILL c1
stopped() { "${C[@]}" task ls | grep -q "c1.*STOPPED"; }
wait_until 5 stopped || fail "c1 not STOPPED after SIGKILL: $("${C[@]}" task ls)"
"${C[@]}" task rm c1 >/dev/null
"${C[@]}" container rm c1

step "an error from berth reaches ctr's message"
set +e; out=$("${C[@]}" run --rm "${R[@]}" "$IMG" e3 /no/such/program 2>&1); rc=$?; set -e
[ "$rc" -ne 0 ] || fail "running a missing program succeeded"
expect_contains "error text" "$out" "OCI runtime create failed"
expect_contains "error text" "$out" "/no/such/program"

no_berth_leftovers "$WORK/state/io.containerd.runtime.v2.task/default"
echo "containerd: all passed"
