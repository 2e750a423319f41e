# shellcheck shell=bash
# Cgroup environments for a private mount namespace. Sourced by lib.sh (the
# conformance harness) and by integration/tests/runtime_cgroups.rs (the
# net_cls/net_prio test), never run. Every function must be called inside a
# private mount namespace (unshare --mount --propagation private): it changes
# that namespace's mounts only.
#
#   cgroup_tmpfs_rebuild yes|no   fresh tmpfs on /sys/fs/cgroup holding the same
#                                 hierarchy mounts, with (yes) or without (no)
#                                 the cgroup2 "unified" one
#   systemd_v1_mount              mount the v1 controllers the kernel has but
#                                 nobody mounted, the way systemd does
#   systemd_v1_unmount            remove their cgroups, unmount, check the
#                                 kernel dropped the hierarchies
#
# Errors go to stderr and make the function return non-zero.

# _cgenv_warn MESSAGE: one line on stderr.
_cgenv_warn() { printf 'cgroup-env: %s\n' "$*" >&2; }

# cgroup_tmpfs_rebuild KEEP_UNIFIED: replace /sys/fs/cgroup (a tmpfs on a v1 or
# hybrid host) by a fresh tmpfs and move every hierarchy mounted below it
# there. Needed before creating anything in /sys/fs/cgroup: the old tmpfs is
# the host's (the same superblock in every mount namespace), a new directory
# or symlink in it would show on the host. Plain directories of the old tmpfs
# (no hierarchy mounted on them, e.g. left by a tool that mkdir'ed
# /sys/fs/cgroup/net_cls/...) are not carried over. Symlinks are copied.
cgroup_tmpfs_rebuild() {
	local keep_unified=$1 old d b
	[ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ] ||
		{ _cgenv_warn "/sys/fs/cgroup is not a tmpfs (not a v1 or hybrid host)"; return 1; }
	old=$(mktemp -d /run/cgroup-env.XXXXXX) || return 1
	mount --rbind /sys/fs/cgroup "$old" || { _cgenv_warn "cannot bind /sys/fs/cgroup"; rmdir "$old"; return 1; }
	umount -l /sys/fs/cgroup || { _cgenv_warn "cannot detach /sys/fs/cgroup"; return 1; }
	mount -t tmpfs -o mode=755,size=64k,nosuid,nodev,noexec cgroup /sys/fs/cgroup ||
		{ _cgenv_warn "cannot mount a tmpfs on /sys/fs/cgroup"; return 1; }
	for d in "$old"/*; do
		b=${d##*/}
		[ "$b" = unified ] && [ "$keep_unified" != yes ] && continue
		if [ -L "$d" ]; then
			cp -P "$d" "/sys/fs/cgroup/$b"
			continue
		fi
		mountpoint -q "$d" || continue
		mkdir "/sys/fs/cgroup/$b"
		mount --move "$d" "/sys/fs/cgroup/$b" 2>/dev/null || mount --bind "$d" "/sys/fs/cgroup/$b" ||
			{ _cgenv_warn "cannot move the $b hierarchy"; return 1; }
	done
	umount -l "$old" && rmdir "$old"
}

# Set by systemd_v1_mount: the mount points it made (for systemd_v1_unmount)
# and their controllers, e.g. "net_cls,net_prio perf_event".
SYSTEMD_V1_MOUNTS=()
SYSTEMD_V1_ADDED=

# _cgenv_v1_mounted: the controllers of every v1 mount in this namespace.
_cgenv_v1_mounted() {
	awk '{ for (i = 1; i <= NF; i++) if ($i == "-") break; if ($(i + 1) == "cgroup") print $(i + 3) }' \
		/proc/self/mountinfo | tr ',' '\n'
}

# systemd_v1_mount: what systemd mounts on a legacy or hybrid host
# (src/shared/mount-setup.c): every controller the kernel has and enables
# (/proc/cgroups) gets a v1 hierarchy under /sys/fs/cgroup; cpu+cpuacct and
# net_cls+net_prio are co-mounted ("cpu,cpuacct", "net_cls,net_prio") with a
# symlink per controller name. Only controllers no v1 hierarchy here serves
# and that cgroup2 does not hold (listed in its cgroup.controllers: moving
# those would take them from the host's cgroup2 tree, and the kernel refuses
# while cgroup2 uses them) are mounted; on this project's host that is
# net_cls,net_prio and perf_event. Calls cgroup_tmpfs_rebuild yes first.
#
# A v1 hierarchy is one kernel object shared by every mount of it: while it
# is mounted here, every process on the machine shows a line for it in
# /proc/<pid>/cgroup. systemd_v1_unmount ends that.
systemd_v1_mount() {
	local mounted held cands c pair a b mp opts
	# One user of these hierarchies at a time (a harness run, the test): they
	# are shared by every mount namespace, and systemd_v1_unmount removes the
	# cgroups it finds. The lock is flock(2) on the host's /sys/fs/cgroup
	# directory itself (opened before it is replaced here), so no lock file
	# is left anywhere; it is held until systemd_v1_unmount or exit (and by
	# any child that keeps the inherited fd: waiting gives up after
	# CGENV_LOCK_WAIT seconds, default 1200).
	if [ -z "${_CGENV_LOCK_FD:-}" ]; then
		exec {_CGENV_LOCK_FD}</sys/fs/cgroup || return 1
		if ! flock -n "$_CGENV_LOCK_FD"; then
			_cgenv_warn "waiting for another user of the systemd-like v1 hierarchies (flock on /sys/fs/cgroup)"
			flock -w "${CGENV_LOCK_WAIT:-1200}" "$_CGENV_LOCK_FD" ||
				{ _cgenv_warn "gave up after ${CGENV_LOCK_WAIT:-1200}s: a process still holds the lock (fuser /sys/fs/cgroup)"; return 1; }
		fi
	fi
	mounted=$(_cgenv_v1_mounted)
	held=
	[ -r /sys/fs/cgroup/unified/cgroup.controllers ] && held=$(cat /sys/fs/cgroup/unified/cgroup.controllers)
	[ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] &&
		{ _cgenv_warn "/sys/fs/cgroup is cgroup2 (a v2 host): no v1 controllers to add"; return 1; }
	cands=()
	for c in $(awk 'NR > 1 && $4 == 1 { print $1 }' /proc/cgroups); do
		grep -qx "$c" <<<"$mounted" && continue
		# systemd does not mount these (nor does integration/kernels/guest.sh)
		case $c in misc | rdma | debug) continue ;; esac
		[[ " $held " == *" $c "* ]] && continue
		cands+=("$c")
	done
	cgroup_tmpfs_rebuild yes || return 1
	SYSTEMD_V1_MOUNTS=()
	SYSTEMD_V1_ADDED=
	local rest x
	for pair in cpu,cpuacct net_cls,net_prio; do
		a=${pair%,*} b=${pair#*,}
		if [[ " ${cands[*]} " == *" $a "* ]] && [[ " ${cands[*]} " == *" $b "* ]]; then
			rest=()
			for x in "${cands[@]}"; do
				[ "$x" = "$a" ] || [ "$x" = "$b" ] || rest+=("$x")
			done
			cands=(${rest[@]+"${rest[@]}"} "$pair")
		fi
	done
	for c in ${cands[@]+"${cands[@]}"}; do
		mp=/sys/fs/cgroup/$c
		opts=nosuid,nodev,noexec,relatime,$c
		mkdir "$mp" || return 1
		if ! mount -t cgroup -o "$opts" cgroup "$mp"; then
			_cgenv_warn "cannot mount the $c v1 hierarchy (mount -t cgroup -o $opts); a leftover hierarchy with other controllers? see /proc/cgroups"
			rmdir "$mp"
			systemd_v1_unmount
			return 1
		fi
		SYSTEMD_V1_MOUNTS+=("$mp")
		SYSTEMD_V1_ADDED="${SYSTEMD_V1_ADDED:+$SYSTEMD_V1_ADDED }$c"
		if [[ $c == *,* ]]; then
			ln -s "$c" "/sys/fs/cgroup/${c%,*}"
			ln -s "$c" "/sys/fs/cgroup/${c#*,}"
		fi
	done
}

# _cgenv_first_controller MOUNTPOINT: the first controller of a hierarchy
# mounted at MOUNTPOINT by systemd_v1_mount (its last path component).
_cgenv_first_controller() { local c=${1##*/}; echo "${c%%,*}"; }

# _cgenv_count FIELD CONTROLLER: the hierarchy id (2) or number of cgroups (3)
# /proc/cgroups shows for CONTROLLER.
_cgenv_count() { awk -v c="$2" -v f="$1" '$1 == c { print $f }' /proc/cgroups; }

# systemd_v1_unmount: undo systemd_v1_mount. Removes every cgroup left in the
# added hierarchies (deepest first; a cgroup with processes cannot be removed
# and is reported with its pids), waits until the kernel has freed them
# (num_cgroups back to 1 in /proc/cgroups), then unmounts and waits up to 5 s
# for /proc/cgroups to show the controllers unbound again.
#
# Why the waiting: the kernel destroys a v1 hierarchy when its last mount goes
# *and* its root has no children at that moment; a cgroup just removed stays a
# (dying) child until freed, and a hierarchy unmounted then stays alive with
# no mount at all (every process keeps a /proc/<pid>/cgroup line for it, and
# it can only be reached by mounting it again). So if it is still alive after
# the unmount, it is mounted and unmounted once more. Another mount namespace
# that still mounts it keeps it alive: reported, not an error.
systemd_v1_unmount() {
	local mp d rc=0 c i try
	for mp in ${SYSTEMD_V1_MOUNTS[@]+"${SYSTEMD_V1_MOUNTS[@]}"}; do
		c=$(_cgenv_first_controller "$mp")
		while read -r d; do
			rmdir "$d" 2>/dev/null || {
				_cgenv_warn "cannot remove cgroup $d (pids: $(tr '\n' ' ' <"$d/cgroup.procs" 2>/dev/null))"
				rc=1
			}
		done < <(find "$mp" -mindepth 1 -depth -type d 2>/dev/null)
		for try in 1 2 3; do
			for i in $(seq 50); do
				[ "$(_cgenv_count 3 "$c")" = 1 ] && break
				sleep 0.1
			done
			umount "$mp" || { _cgenv_warn "cannot unmount $mp"; rc=1; break; }
			for i in $(seq 50); do
				[ "$(_cgenv_count 2 "$c")" = 0 ] && break
				sleep 0.1
			done
			[ "$(_cgenv_count 2 "$c")" = 0 ] && break
			# still alive: mount it again (the kernel reuses the live hierarchy)
			# so that the next unmount finds it without children
			[ $try = 3 ] || mount -t cgroup -o "nosuid,nodev,noexec,relatime,${mp##*/}" cgroup "$mp" || break
		done
		[ "$(_cgenv_count 2 "$c")" = 0 ] ||
			_cgenv_warn "the ${mp##*/} v1 hierarchy is still alive after unmounting (another mount namespace mounts it, or cgroups are left in it): /proc/cgroups: $(_cgenv_count 3 "$c") cgroup(s)"
	done
	SYSTEMD_V1_MOUNTS=()
	if [ -n "${_CGENV_LOCK_FD:-}" ]; then
		exec {_CGENV_LOCK_FD}<&-
		_CGENV_LOCK_FD=
	fi
	return $rc
}
