#!/usr/bin/env bash
# podman --runtime berth: the scenario of issue 5, offline.
#
# podman's default rlimits ask for more than this machine's hard limits
# (NOFILE 20000, no CAP_SYS_RESOURCE); berth names the rlimit in its error.
# The workaround is explicit ulimits, as below (or `default_ulimits` in
# containers.conf).
. "$(dirname "$0")/lib.sh"
command -v podman >/dev/null || { echo "podman not installed: skipped"; exit 0; }

P=(podman --root "$WORK/storage" --runroot "$WORK/run" --tmpdir "$WORK/tmp"
   --cgroup-manager cgroupfs --events-backend none --runtime "$BERTH_BIN")
# Containers' and conmon's cgroups under /berth-podman-test (podman's
# default, /libpod_parent, would stay behind), removed last.
RUN_OPTS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none
    --cgroup-parent /berth-podman-test)
IMG=localhost/berth-busybox:test
on_exit "remove_cgroup_parent berth-podman-test"
on_exit "${P[*]} rm -af -t 0"
on_exit "${P[*]} system reset -f"

step "import the busybox fixture"
"${P[@]}" import "$(rootfs_tar)" "$IMG" >/dev/null

step "run --rm echo"
out=$("${P[@]}" run --rm "${RUN_OPTS[@]}" "$IMG" echo hello-podman)
expect_eq "run output" "$out" "hello-podman"

step "a failing command's exit status"
set +e; "${P[@]}" run --rm "${RUN_OPTS[@]}" "$IMG" sh -c 'exit 42'; rc=$?; set -e
expect_eq "exit status" "$rc" "42"

step "run -d, exec, logs"
"${P[@]}" run -d --name p1 "${RUN_OPTS[@]}" "$IMG" sh -c 'echo started; exec sleep 600' >/dev/null
out=$("${P[@]}" exec p1 sh -c 'echo in-exec $(id -u)')
expect_eq "exec output" "$out" "in-exec 0"
out=$("${P[@]}" logs p1)
expect_contains "logs" "$out" "started"

step "top"
out=$("${P[@]}" top p1)
expect_contains "top" "$out" "sleep 600"

step "pause / unpause"
"${P[@]}" pause p1 >/dev/null
out=$("${P[@]}" inspect -f '{{.State.Status}}' p1)
expect_eq "status after pause" "$out" "paused"
"${P[@]}" unpause p1 >/dev/null
out=$("${P[@]}" inspect -f '{{.State.Status}}' p1)
expect_eq "status after unpause" "$out" "running"

if have_memory_controller; then
    step "update --memory (visible in the container's cgroup)"
    "${P[@]}" update --memory 64m p1 >/dev/null
    out=$("${P[@]}" exec p1 sh -c "$MEMORY_LIMIT_INSIDE")
    expect_eq "memory limit" "$out" "67108864"
else
    skip_step "update --memory" "$MEMORY_MISSING"
fi

step "stats"
out=$("${P[@]}" stats --no-stream --format '{{.Name}}' p1)
expect_eq "stats name" "$out" "p1"

step "stop, rm"
"${P[@]}" stop -t 1 p1 >/dev/null
"${P[@]}" rm p1 >/dev/null

step "an error from berth reaches podman's message"
set +e; out=$("${P[@]}" run --rm "${RUN_OPTS[@]}" "$IMG" /no/such/program 2>&1); rc=$?; set -e
[ "$rc" -ne 0 ] || fail "running a missing program succeeded"
expect_contains "error text" "$out" "/no/such/program"

no_berth_leftovers /run/berth
echo "podman: all passed"
