//! User namespaces for unprivileged tasks: the id mapping (Concourse's) and a namespace fd to
//! idmap the task's mounts with.

use std::io::Write;
use std::os::fd::OwnedFd;

use anyhow::{bail, Context, Result};

/// One line of a uid/gid map: container ids `inside..inside+count` are host ids
/// `outside..outside+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The highest valid id in the worker's own uid map (Concourse `MaxValid`): 4294967294 on a
/// normal host, whose map is `0 0 4294967295`.
pub fn host_max_id() -> Result<u32> {
    let m = std::fs::read_to_string("/proc/self/uid_map").context("reading /proc/self/uid_map")?;
    let mut max = 0u64;
    for l in m.lines() {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [inside, _, count] = f[..] {
            max = max.max(inside + count - 1);
        }
    }
    if max == 0 {
        bail!("/proc/self/uid_map maps no ids");
    }
    // (u32)-1 is never a valid id.
    Ok(max.min(u32::MAX as u64 - 1) as u32)
}

/// Concourse's unprivileged mapping (`OciIDMappings`): task root is host id `max`, every other
/// id maps to itself. Root is the only id that gains privilege, so it is the only one moved.
pub fn concourse_mapping(max: u32) -> Vec<IdRange> {
    vec![
        IdRange {
            inside: 0,
            outside: max,
            count: 1,
        },
        IdRange {
            inside: 1,
            outside: 1,
            count: max - 1,
        },
    ]
}

/// The idmapping for the task's mounts: Concourse's mapping plus on-disk id `max` ↔ host root.
///
/// The extra line exists for overlayfs, which performs its own bookkeeping (creating `work/`,
/// copy-up) with the credentials of whoever mounted it: host root. Through an idmapped upper
/// layer host uid 0 must map to *some* on-disk id or those operations fail with EOVERFLOW
/// (the kernel then mounts the overlay read-only). The container's own user namespace never
/// gets this line, so no task process can ever act as host root.
pub fn mount_mapping(max: u32) -> Vec<IdRange> {
    let mut m = concourse_mapping(max);
    m.push(IdRange {
        inside: max,
        outside: 0,
        count: 1,
    });
    m
}

/// `--idmap` / `BERTH_WORKER_IDMAP`: how unprivileged tasks see host-space trees (images,
/// inputs) with the right owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdmapSetting {
    /// Idmapped mounts when the kernel and filesystem support idmapped overlay layers (probed),
    /// else shifted copies.
    Auto,
    /// Idmapped mounts; an error if they do not work here.
    On,
    /// Shifted copies, never idmapped mounts (what kernels before 5.19 get).
    Off,
}

/// What an unprivileged run uses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdsMode {
    /// Idmapped layers: nothing is copied or chowned.
    Idmapped,
    /// Uid-shifted copies (Concourse baggageclaim's way); `why` says why not idmapped.
    Shifted { why: String },
}

impl std::fmt::Display for IdsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdsMode::Idmapped => write!(f, "idmapped mounts"),
            IdsMode::Shifted { why } => write!(f, "shifted copies ({why})"),
        }
    }
}

/// Decide how an unprivileged run maps ids. With `Auto`/`On` this probes the feature itself
/// (an overlay built from idmapped layers, in `probe_dir`, which is removed again) rather
/// than reading the kernel version: the answer also depends on the filesystem and on
/// backports. Returns the mode and, when idmapped, the user namespace fd for the mounts.
pub fn choose_mode(
    setting: IdmapSetting,
    probe_dir: &std::path::Path,
) -> Result<(IdsMode, Option<OwnedFd>)> {
    if setting == IdmapSetting::Off {
        return Ok((
            IdsMode::Shifted {
                why: "idmapped mounts turned off by --idmap off / BERTH_WORKER_IDMAP=off".into(),
            },
            None,
        ));
    }
    let ns = userns_fd(&mount_mapping(host_max_id()?))
        .context("creating the user namespace for idmapped mounts")?;
    // A probe that worked is remembered for this boot and this filesystem (`.idmap-ok` in
    // `probe_dir`): the kernel cannot lose the feature without a reboot, and the probe's
    // mounts, write and unmounts were a tenth of the worker's own time per task. A failed
    // probe is not remembered (it is tried again next time).
    let stamp = probe_stamp(probe_dir);
    let marker = probe_dir.join(".idmap-ok");
    if stamp.is_some() && std::fs::read_to_string(&marker).ok() == stamp {
        return Ok((IdsMode::Idmapped, Some(ns)));
    }
    match crate::sys::probe_idmapped_overlay(probe_dir, &ns) {
        Ok(()) => {
            if let Some(s) = stamp {
                // Best effort: without the marker the next run probes again.
                let tmp = probe_dir.join(format!(".idmap-ok.{}", std::process::id()));
                if std::fs::write(&tmp, s).is_ok() && std::fs::rename(&tmp, &marker).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
            Ok((IdsMode::Idmapped, Some(ns)))
        }
        Err(e) if setting == IdmapSetting::Auto => Ok((
            IdsMode::Shifted {
                why: format!("idmapped overlay layers unavailable: {e:#}"),
            },
            None,
        )),
        Err(e) => Err(e.context(
            "--idmap on: idmapped overlay layers do not work here (use --idmap auto or off)",
        )),
    }
}

/// What a remembered idmap probe is valid for: this boot (the kernel) and the filesystem
/// of `dir` (device and type).
fn probe_stamp(dir: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: c is NUL-terminated; st is a valid out pointer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(format!("{} {dev} {:x}\n", boot.trim(), st.f_type))
}

/// Map a container id to the host id it becomes.
pub fn to_host(map: &[IdRange], id: u32) -> Option<u32> {
    map.iter()
        .find(|r| id >= r.inside && (id - r.inside) < r.count)
        .map(|r| r.outside + (id - r.inside))
}

fn map_text(map: &[IdRange]) -> String {
    map.iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// An fd of a fresh user namespace with `map` as both uid and gid map, used only as the
/// idmapping of mounts (`mount_setattr(MOUNT_ATTR_IDMAP)`); no process runs in it.
///
/// The namespace is made by a forked child that only calls `unshare(CLONE_NEWUSER)`, says so
/// on a pipe and waits for the other pipe to close; the worker writes the child's maps,
/// opens `/proc/PID/ns/user`, and lets it exit. The async worker itself never changes
/// namespaces. (The child used to exec `berth-worker __userns-hold`: loading the binary
/// again cost more than everything else the worker does for a task's user namespace.)
pub fn userns_fd(map: &[IdRange]) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let (ready_r, ready_w) = crate::sys::pipe()?;
    let (done_r, done_w) = crate::sys::pipe()?;
    // SAFETY: the child only makes async-signal-safe calls (unshare, write, read, _exit) on
    // fds it inherited, so forking a multi-threaded process is sound.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!(
            "fork for the user namespace holder: {}",
            std::io::Error::last_os_error()
        );
    }
    if pid == 0 {
        // SAFETY: see above; every pointer is to a live local buffer.
        unsafe {
            let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
            let b: u8 = if ok { b'r' } else { b'e' };
            libc::write(ready_w.as_raw_fd(), (&b as *const u8).cast(), 1);
            let mut x = 0u8;
            // Returns 0 once the worker closes its end (or dies).
            libc::close(done_w.as_raw_fd());
            libc::read(done_r.as_raw_fd(), (&mut x as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(done_r);
    let result = (|| {
        let mut b = [0u8; 1];
        let n = std::io::Read::read(&mut std::fs::File::from(ready_r), &mut b)
            .context("reading from the user namespace holder")?;
        if n != 1 || b[0] != b'r' {
            bail!("user namespace holder: unshare(CLONE_NEWUSER) failed");
        }
        let text = map_text(map);
        for f in ["uid_map", "gid_map"] {
            let p = format!("/proc/{pid}/{f}");
            std::fs::write(&p, &text)
                .with_context(|| format!("writing {} to {p}", text.trim().replace('\n', ", ")))?;
        }
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .context("opening the holder's user namespace")?;
        Ok(OwnedFd::from(ns))
    })();
    // Closing our end lets the holder exit; the namespace lives on through our fd.
    drop(done_w);
    let _ = crate::sys::wait_pid(pid);
    result
}

/// Body of `berth-worker __userns-hold` (kept for older workers' sake: nothing current
/// execs it): enter a new user namespace, say "ready", wait for stdin to close.
pub fn hold_main() -> i32 {
    // SAFETY: unshare with a flag constant; affects only this short-lived, single-threaded process.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        eprintln!(
            "berth-worker: unshare(CLONE_NEWUSER): {}",
            std::io::Error::last_os_error()
        );
        return 1;
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concourse_map_moves_only_root() {
        let m = concourse_mapping(4294967294);
        assert_eq!(to_host(&m, 0), Some(4294967294));
        assert_eq!(to_host(&m, 1000), Some(1000));
        assert_eq!(to_host(&m, 4294967293), Some(4294967293));
        assert_eq!(to_host(&m, 4294967294), None);
        assert_eq!(map_text(&m), "0 4294967294 1\n1 1 4294967293\n");
        let mm = mount_mapping(4294967294);
        assert_eq!(to_host(&mm, 4294967294), Some(0));
        assert_eq!(to_host(&mm, 0), Some(4294967294));
    }
}
