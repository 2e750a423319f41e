#!/bin/bash
# examples/pipeline: a three-step pipeline, build -> test -> package, run with berth-worker
# the way `fly execute` runs each task: every task unprivileged in its own container, each
# task's outputs handed to the next as inputs through directories on the host.
#
#   round 1: the program as it is: all tests pass, the package lands in dist/.
#   round 2: a change that breaks one test case: the test task fails, its report is still
#            copied out (and shown), and the package step does not run.
#
# Environment: BERTH_WORKER_BIN, BERTH_BIN (the runtime), BERTH_FIXTURES (default
# <repo>/build), BERTH_WORKER_DIR (default <repo>/build/worker-demo). Needs root.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$(dirname "$here")")
fixtures=${BERTH_FIXTURES:-$repo/build}
worker=${BERTH_WORKER_BIN:-$repo/target/release/berth-worker}
export BERTH_WORKER_DIR=${BERTH_WORKER_DIR:-$repo/build/worker-demo}
export BERTH_WORKER_NETWORK=${BERTH_WORKER_NETWORK:-none}
image=$fixtures/rootfs/busybox
[ -x "$worker" ] || { echo "pipeline: $worker not built (make build)" >&2; exit 1; }
[ -d "$image" ] || { echo "pipeline: fixture $image missing (make fixtures)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

step() { printf '\n\033[1m-- %s\033[0m\n' "$*"; }

# pipeline SRC DIR VERSION: the three tasks, artifacts under DIR; returns the first failure.
pipeline() {
    local src=$1 d=$2 v=$3 rc
    step "build: berth-worker run build.yml -v version=$v -i src=… -o build=…"
    "$worker" run "$here/build.yml" --image "$image" -v version="$v" \
        -i src="$src" -o build="$d/build" || return
    step "test: berth-worker run test.yml -i build=… -o report=…"
    "$worker" run "$here/test.yml" --image "$image" \
        -i build="$d/build" -o report="$d/report"
    rc=$?
    echo "report on the host: $(cat "$d/report/summary" 2>/dev/null || echo none)"
    [ $rc -eq 0 ] || return $rc
    step "package: berth-worker run package.yml -i build=… -i report=… -o dist=…"
    "$worker" run "$here/package.yml" --image "$image" \
        -i build="$d/build" -i report="$d/report" -o dist="$d/dist" || return
    (cd "$d/dist" && ls -ln && sha256sum -c SHA256SUMS)
}

printf '\033[1m== round 1: the program as it is\033[0m\n'
pipeline "$here/src" "$out/1" 1.0
rc1=$?
echo "round 1: exit status $rc1"

printf '\n\033[1m== round 2: a change that breaks f2c for 99 degrees\033[0m\n'
cp -a "$here/src" "$out/src2"
sed -i 's|(( (\$2 - 32) \* 5 / 9 ))|(( $2 * 5 / 9 - 17 ))|' "$out/src2/temp.sh"
grep -q -- '- 17' "$out/src2/temp.sh" || { echo "pipeline: the sed did not apply" >&2; exit 1; }
pipeline "$out/src2" "$out/2" 1.1
rc2=$?
echo "round 2: exit status $rc2 (the test task's); the failing test, from the report copied out:"
grep '^not ok' "$out/2/report/results.tap"
nfail=$(grep -c '^not ok' "$out/2/report/results.tap" 2>/dev/null)

# Round 1 passes and packages; round 2 fails in test with one failing case reported, no package.
[ $rc1 -eq 0 ] && [ -f "$out/1/dist/temp-1.0.tar.gz" ] && [ "$rc2" -eq 1 ] \
    && [ "${nfail:-0}" -eq 1 ] && [ ! -e "$out/2/dist" ]
