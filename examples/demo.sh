#!/bin/bash
# `make demo`: two berth-worker tasks on the fixture images, no network needed.
#   1. build-and-test: test and package a small program from an input into an output.
#   2. clone3: the same curl/threads task under a Concourse-7.12-like seccomp profile
#      (fails: "getaddrinfo() thread failed to start") and under berth's default (passes),
#      side by side.
# Environment: BERTH_WORKER_BIN, BERTH_BIN (the runtime; runc works too), BERTH_FIXTURES
# (default <repo>/build), BERTH_WORKER_DIR (default <repo>/build/worker-demo).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
fixtures=${BERTH_FIXTURES:-$repo/build}
worker=${BERTH_WORKER_BIN:-$repo/target/release/berth-worker}
export BERTH_WORKER_DIR=${BERTH_WORKER_DIR:-$repo/build/worker-demo}
# Examples 1 and 2 need no network; 3 builds its own (in network namespaces of its own).
export BERTH_WORKER_NETWORK=none
[ -x "$worker" ] || { echo "demo: $worker not built (make build)" >&2; exit 1; }
for f in rootfs/busybox rootfs/bookworm; do
    [ -d "$fixtures/$f" ] || { echo "demo: fixture $fixtures/$f missing (make fixtures)" >&2; exit 1; }
done
bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }

bold "1. build-and-test: berth-worker run examples/build-and-test/task.yml -i src=… -o dist=…"
dist=$(mktemp -d)
"$worker" run "$here/build-and-test/task.yml" --image "$fixtures/rootfs/busybox" \
    -i src="$here/build-and-test/src" -o dist="$dist"
rc=$?
echo "-- exit status $rc; the output on the host:"
ls -ln "$dist"
rm -rf "$dist"
[ $rc -eq 0 ] || exit $rc

bold "2. the clone3 incident: the same task under two seccomp profiles"
old=$(mktemp) new=$(mktemp)
"$worker" run "$here/clone3/task.yml" --image "$fixtures/rootfs/bookworm" \
    --seccomp-profile "$here/seccomp/concourse-7.12.json" \
    --annotation run.berth.seccomp.enosys=runc >"$old" 2>&1
old_rc=$?
"$worker" run "$here/clone3/task.yml" --image "$fixtures/rootfs/bookworm" >"$new" 2>&1
new_rc=$?
{
    printf '%s\n' "Concourse 7.12 / 7.13-rc profile" "(clone3 unnamed, faccessat2 named," " default EPERM, runc's verdicts)" "" ; cat "$old"; echo "exit status $old_rc"
} >"$old.col"
{
    printf '%s\n' "berth default profile" "(profiles/default.json)" "" ""; cat "$new"; echo "exit status $new_rc"
} >"$new.col"
pr -m -t -w 124 "$old.col" "$new.col" | expand
rm -f "$old" "$new" "$old.col" "$new.col"
# berth goes further than runc (SECCOMP.md A.3): a fallback-probed syscall the profile does not
# name at all gets ENOSYS, so even the old profile works without the runc-verdicts annotation.
third=$("$worker" run "$here/clone3/task.yml" --image "$fixtures/rootfs/bookworm" \
    --seccomp-profile "$here/seccomp/concourse-7.12.json" 2>&1 | grep '^RESULT')
echo
echo "the old profile without run.berth.seccomp.enosys=runc (berth's own verdicts): $third"
# The demo succeeds when it shows the incident: old profile fails, berth's passes.
[ $old_rc -ne 0 ] && [ $new_rc -eq 0 ]
