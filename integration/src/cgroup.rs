//! Finding a container's cgroup files, on v1, v2 and hybrid hosts.

use std::path::PathBuf;

/// One cgroup interface file of a process, seen from the host and from inside a
/// container that mounts `/sys/fs/cgroup` the way runc does.
#[derive(Debug, Clone)]
pub struct CgroupFile {
    /// The absolute host path, e.g.
    /// `/sys/fs/cgroup/memory/berth/<id>/memory.limit_in_bytes`.
    pub host: PathBuf,
    /// The path inside the container, e.g. `/sys/fs/cgroup/memory/memory.limit_in_bytes`
    /// (v1: one dir per hierarchy), `/sys/fs/cgroup/memory.max` (v2) or
    /// `/sys/fs/cgroup/unified/memory.max` (a hybrid host's cgroup2).
    pub inside: String,
}

/// Locates the file for `controller` of process `pid`: `v1_file` when that
/// controller is on a v1 hierarchy (this machine's hybrid layout puts memory, pids,
/// cpu there), else `v2_file` in the unified tree.
pub fn cgroup_file(pid: i32, controller: &str, v1_file: &str, v2_file: &str) -> CgroupFile {
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/cgroup: {e}"));
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").expect("reading /proc/self/mountinfo");
    // Lines are `hierarchy-id:controller,list:/path`; v2 is `0::/path`.
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        if controllers.split(',').any(|c| c == controller) {
            let mountpoint = mountpoint_of(&mountinfo, |fstype, options| {
                fstype == "cgroup" && options.split(',').any(|o| o == controller)
            })
            .unwrap_or_else(|| panic!("no cgroup v1 mount for {controller}"));
            let dir_name = mountpoint.rsplit('/').next().unwrap_or(controller);
            return CgroupFile {
                host: PathBuf::from(format!("{mountpoint}{path}/{v1_file}")),
                inside: format!("/sys/fs/cgroup/{dir_name}/{v1_file}"),
            };
        }
    }
    for line in membership.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            let mountpoint = mountpoint_of(&mountinfo, |fstype, _| fstype == "cgroup2")
                .expect("no cgroup2 mount");
            // A hybrid host's cgroup2 (/sys/fs/cgroup/unified) is bound at the same name
            // inside, next to the v1 hierarchies; a v2 host's is /sys/fs/cgroup itself.
            let inside = match mountpoint.strip_prefix("/sys/fs/cgroup/") {
                Some(name) if !name.is_empty() => format!("/sys/fs/cgroup/{name}/{v2_file}"),
                _ => format!("/sys/fs/cgroup/{v2_file}"),
            };
            return CgroupFile {
                host: PathBuf::from(format!("{mountpoint}{path}/{v2_file}")),
                inside,
            };
        }
    }
    panic!("process {pid} is in no cgroup with controller {controller}:\n{membership}");
}

/// The lines of a `/proc/<pid>/cgroup` text whose hierarchy is mounted in this
/// mount namespace (every line of it on most hosts). A v1 hierarchy is one
/// kernel object: while any mount namespace mounts one (e.g. net_cls,net_prio in
/// the private namespace of `runtime_cgroups::network_…_systemd_like`), every
/// process on the machine shows a line for it, at the root, that no runtime
/// here can see or join. Tests that compare memberships use these lines.
pub fn mounted_memberships(text: &str) -> Vec<String> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").expect("reading /proc/self/mountinfo");
    text.lines()
        .filter(|line| {
            let Some(controllers) = line.split(':').nth(1) else {
                return false;
            };
            if controllers.is_empty() {
                return mountpoint_of(&mountinfo, |fstype, _| fstype == "cgroup2").is_some();
            }
            mountpoint_of(&mountinfo, |fstype, options| {
                fstype == "cgroup"
                    && controllers
                        .split(',')
                        .all(|c| options.split(',').any(|o| o == c))
            })
            .is_some()
        })
        .map(String::from)
        .collect()
}

/// The mount point of the first mountinfo line whose filesystem type and super
/// options satisfy `matches`.
fn mountpoint_of(mountinfo: &str, matches: impl Fn(&str, &str) -> bool) -> Option<String> {
    for line in mountinfo.lines() {
        // `id parent maj:min root mountpoint options [optional…] - fstype source superopts`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mountpoint = left.split(' ').nth(4)?;
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or("");
        let superopts = right.nth(1).unwrap_or("");
        if matches(fstype, superopts) {
            return Some(mountpoint.to_string());
        }
    }
    None
}

/// Why no container here can have a `controller` limit, or None when a v1 hierarchy or the
/// mounted cgroup2 offers that controller. Linux ≥ 6.11 can be built without the v1 memory
/// controller (CONFIG_MEMCG_V1) and ≥ 6.12 without the v1 cpuset (CONFIG_CPUSETS_V1);
/// Debian's 6.12 is, so its cgroup v1 layout has neither (the kernel matrix's 6.12 · v1
/// row; docs/kernels.md). A runtime refuses such a limit there, as runc does; tests that set
/// one skip, naming this.
pub fn missing_controller(controller: &str) -> Option<String> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").expect("reading /proc/self/mountinfo");
    if mountpoint_of(&mountinfo, |fstype, options| {
        fstype == "cgroup" && options.split(',').any(|o| o == controller)
    })
    .is_some()
    {
        return None;
    }
    if let Some(m) = mountpoint_of(&mountinfo, |fstype, _| fstype == "cgroup2") {
        let offered =
            std::fs::read_to_string(format!("{m}/cgroup.controllers")).unwrap_or_default();
        if offered.split_whitespace().any(|c| c == controller) {
            return None;
        }
    }
    let config = match controller {
        "memory" => " (a kernel built without CONFIG_MEMCG_V1 has no v1 memory controller)",
        "cpuset" => " (a kernel built without CONFIG_CPUSETS_V1 has no v1 cpuset controller)",
        _ => "",
    };
    Some(format!(
        "no {controller} controller in this cgroup layout: in no v1 hierarchy, not offered by cgroup2{config}"
    ))
}

/// Where the cgroup2 hierarchy is mounted (`/sys/fs/cgroup` on a pure v2 host,
/// `/sys/fs/cgroup/unified` on a hybrid one), if anywhere.
pub fn cgroup2_mountpoint() -> Option<PathBuf> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").expect("reading /proc/self/mountinfo");
    mountpoint_of(&mountinfo, |fstype, _| fstype == "cgroup2").map(PathBuf::from)
}
