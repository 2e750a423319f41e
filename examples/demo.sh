#!/bin/bash
# `make demo`: berth-worker tasks on the fixture images, and the musl DNS incident.
#   1. build-and-test: test and package a small program from an input into an output.
#   2. clone3: the same curl/threads task under a Concourse-7.12-like seccomp profile
#      (fails: "getaddrinfo() thread failed to start") and under berth's default (passes),
#      side by side.
#   3. a pipeline (examples/pipeline/pipeline.sh): build -> test -> package, outputs chained,
#      unprivileged; a second round breaks one test, whose report is copied out all the same.
#   4. the musl DNS incident: an upstream that answers AAAA with NXDOMAIN (a CoreDNS template);
#      the static musl probe's getaddrinfo fails against it directly and resolves through
#      berth-worker's DNS proxy, side by side. All of it in two network namespaces the demo
#      makes (TEST-NET-2 addresses), with the test DNS server (target/release/berth-test-dns).
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
# berth goes further than runc (docs/seccomp.md): a fallback-probed syscall the profile does not
# name at all gets ENOSYS, so even the old profile works without the runc-verdicts annotation.
third=$("$worker" run "$here/clone3/task.yml" --image "$fixtures/rootfs/bookworm" \
    --seccomp-profile "$here/seccomp/concourse-7.12.json" 2>&1 | grep '^RESULT')
echo
echo "the old profile without run.berth.seccomp.enosys=runc (berth's own verdicts): $third"
[ $old_rc -ne 0 ] && [ $new_rc -eq 0 ] || exit 1

bold "3. a pipeline: build -> test -> package, outputs chained (examples/pipeline/pipeline.sh)"
"$here/pipeline/pipeline.sh" || exit 1

bold "4. the musl DNS incident: AAAA NXDOMAIN from the upstream, getaddrinfo(\"a.test\", AF_UNSPEC)"
testdns=${BERTH_TEST_DNS_BIN:-$(dirname "$worker")/berth-test-dns}
[ -x "$testdns" ] || { echo "demo: $testdns not built (make build)" >&2; exit 1; }
c=berth-demo-client u=berth-demo-upstream
cleanup_net() {
    [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
    [ -n "${dns_pid:-}" ] && kill "$dns_pid" 2>/dev/null && wait "$dns_pid" 2>/dev/null
    ip netns del $c 2>/dev/null; ip netns del $u 2>/dev/null; rm -rf /etc/netns/$c
}
trap cleanup_net EXIT
cleanup_net
ip netns add $c && ip netns add $u
ip link add bdemo0 netns $c type veth peer name bdemo1 netns $u
ip -n $c addr add 198.51.100.1/24 dev bdemo0 && ip -n $c link set bdemo0 up && ip -n $c link set lo up
ip -n $u addr add 198.51.100.53/24 dev bdemo1 && ip -n $u link set bdemo1 up && ip -n $u link set lo up
ip netns exec $u "$testdns" --listen 198.51.100.53:53 2>/dev/null & dns_pid=$!
mkdir -p /etc/netns/$c
gai() { # LIBC NAMESERVER
    echo "nameserver $2" > /etc/netns/$c/resolv.conf
    probe=$fixtures/probes/berth-probe${1#glibc}
    echo "$1: $(ip netns exec $c "$probe" getaddrinfo a.test)"
}
sleep 0.3
direct=$(mktemp) proxied=$(mktemp)
{
    printf '%s\n' "directly against the upstream" "(nameserver 198.51.100.53)" ""
    gai glibc 198.51.100.53; gai -musl 198.51.100.53
} >"$direct"
ip netns exec $c "$worker" dns-proxy --listen 127.0.0.1 --upstream 198.51.100.53 \
    --log-level debug 2>"$proxied.log" & proxy_pid=$!
sleep 0.5
{
    printf '%s\n' "through berth-worker dns-proxy" "(nameserver 127.0.0.1)" ""
    gai glibc 127.0.0.1; gai -musl 127.0.0.1
} >"$proxied"
pr -m -t -w 124 "$direct" "$proxied" | sed 's/^-musl/musl/; s/ -musl:/  musl:/' | expand
kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null; proxy_pid=
echo
echo "the proxy's log:"; sed 's/^/  /' "$proxied.log"
ok=1
grep -q '^-musl: gai=EAI_NONAME' "$direct" || ok=0
grep -q '^-musl: gai=OK' "$proxied" || ok=0
rm -f "$direct" "$proxied" "$proxied.log"
# The demo succeeds when it shows both incidents and both repairs.
[ $ok -eq 1 ]
