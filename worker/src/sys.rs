//! The few raw Linux calls the worker makes on the host: overlay and idmapped mounts,
//! unmounting, reading `/proc/self/mountinfo`, pipes. Everything that happens *inside* a
//! container is done by the runtime binary, never here.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .with_context(|| format!("path {} contains a NUL byte", p.display()))
}

/// Remove whatever is at `p` (a directory with its contents, or anything else); nothing
/// there is fine.
pub fn remove_any(p: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Give `p` (a symlink itself, not its target) the access and modification times of `m`:
/// copies and shifted trees keep their source's times.
pub fn set_times(p: &Path, m: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let c = cstr(p)?;
    let ts = [
        libc::timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec(),
        },
        libc::timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        },
    ];
    // SAFETY: a valid C string and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("setting times of {}", p.display()));
    }
    Ok(())
}

/// overlayfs separates lowerdirs with `:` and options with `,`; both must be escaped in paths.
fn escape_overlay(p: &Path) -> String {
    let s = p.display().to_string();
    s.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// Mount an overlay at `target`: `lower` (read-only, never modified) under `upper`/`work`.
///
/// `volatile` (Linux ≥ 5.10) skips every sync of the upper layer: a task's upper layer is
/// thrown away after the run, and without it the unmount alone synced the whole upper
/// filesystem (~110 ms per run on this machine's ext4).
/// `extra`: more options, comma-separated (or empty).
pub fn mount_overlay(
    lower: &Path,
    upper: &Path,
    work: &Path,
    target: &Path,
    extra: &str,
) -> Result<()> {
    let mut opts = format!(
        "lowerdir={},upperdir={},workdir={},volatile",
        escape_overlay(lower),
        escape_overlay(upper),
        escape_overlay(work)
    );
    if !extra.is_empty() {
        opts.push(',');
        opts.push_str(extra);
    }
    let (src, tgt, fstype, data) = (
        cstr(Path::new("overlay"))?,
        cstr(target)?,
        cstr(Path::new("overlay"))?,
        CString::new(opts.clone())?,
    );
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        bail!("mounting overlay at {} ({opts}): {e}", target.display());
    }
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Make `target` an idmapped view of the mount at `src`: file owners are shifted through the
/// user namespace `userns` (on-disk uid 0 appears as the namespace's root), so a container in
/// that namespace sees its image as root-owned while nothing on disk is chowned.
///
/// This is `open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_IDMAP)` + `move_mount`,
/// the sequence `mount --map-users` and crun use. It needs Linux ≥ 5.12, and ≥ 5.19 when `src`
/// is an overlay.
pub fn idmap_mount(src: &Path, target: &Path, userns: &OwnedFd) -> Result<()> {
    let csrc = cstr(src)?;
    let ctgt = cstr(target)?;
    // SAFETY: csrc is a valid C string; the returned fd (if any) is owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            csrc.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        bail!(
            "open_tree({}, OPEN_TREE_CLONE): {}",
            src.display(),
            io::Error::last_os_error()
        );
    }
    // SAFETY: open_tree returned a fresh fd that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let empty = c"";
    // SAFETY: tree is a valid fd, `attr` is a properly sized, initialised struct on our stack.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(IdmapError {
            path: src.to_path_buf(),
            err: io::Error::last_os_error(),
        }
        .into());
    }
    // SAFETY: valid fd and C strings.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            ctgt.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        bail!(
            "move_mount({} -> {}): {}",
            src.display(),
            target.display(),
            io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Does an overlay built from idmapped layers work here? Builds one in a fresh directory
/// under `parent` (the filesystem the run's layers will live on), writes a file through it,
/// and removes everything again. The error says which step failed: `mount_setattr` on
/// kernels before 5.12 or on filesystems without idmap support, the overlay mount before 5.19.
pub fn probe_idmapped_overlay(parent: &Path, userns: &OwnedFd) -> Result<()> {
    let dir = parent.join(format!(".probe-{}-{}", std::process::id(), random_hex(4)));
    let r = (|| {
        for d in ["lower", "rw/upper", "rw/work", "lower-m", "rw-m", "merged"] {
            std::fs::create_dir_all(dir.join(d))
                .with_context(|| format!("creating {}", dir.join(d).display()))?;
        }
        idmap_mount(&dir.join("lower"), &dir.join("lower-m"), userns)?;
        idmap_mount(&dir.join("rw"), &dir.join("rw-m"), userns)?;
        mount_overlay(
            &dir.join("lower-m"),
            &dir.join("rw-m/upper"),
            &dir.join("rw-m/work"),
            &dir.join("merged"),
            "",
        )?;
        // A kernel that cannot do overlay bookkeeping through the idmapped upper mounts the
        // overlay read-only instead of failing.
        std::fs::write(dir.join("merged/probe"), b"")
            .context("writing through an overlay of idmapped layers")?;
        Ok(())
    })();
    let clean = umount_all_under(&dir).and_then(|()| {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
    });
    r.and(clean)
}

/// `mount_setattr(MOUNT_ATTR_IDMAP)` failed: the kernel (< 5.12) or the filesystem of `path`
/// cannot do idmapped mounts.
#[derive(Debug)]
pub struct IdmapError {
    pub path: PathBuf,
    pub err: io::Error,
}

impl std::fmt::Display for IdmapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mount_setattr({}, MOUNT_ATTR_IDMAP): {} (idmapped mounts need Linux >= 5.12 and a filesystem that supports them; overlay layers >= 5.19)",
            self.path.display(),
            self.err
        )
    }
}

impl std::error::Error for IdmapError {}

/// Whether `e` says that a path's filesystem (or the kernel) cannot be idmapped, as opposed
/// to any other failure of building the mount.
pub fn is_idmap_unsupported(e: &anyhow::Error) -> bool {
    e.downcast_ref::<IdmapError>().is_some_and(|i| {
        matches!(
            i.err.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EPERM)
        )
    })
}

/// Lazily unmount `target` (MNT_DETACH): it vanishes from the tree now, and the filesystem is
/// released when its last user goes.
pub fn umount(target: &Path) -> Result<()> {
    let c = cstr(target)?;
    // SAFETY: valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
            bail!("unmounting {}: {e}", target.display());
        }
    }
    Ok(())
}

/// Mount points at or below `dir`, deepest first (the order to unmount them in).
pub fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(berth::sys::unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    Ok(out)
}

/// Unmount everything at or below `dir` (repeating, since a detach can uncover another mount
/// stacked on the same point).
pub fn umount_all_under(dir: &Path) -> Result<()> {
    for _ in 0..8 {
        let ms = mounts_under(dir)?;
        if ms.is_empty() {
            return Ok(());
        }
        for m in ms {
            umount(&m)?;
        }
    }
    let left = mounts_under(dir)?;
    if left.is_empty() {
        Ok(())
    } else {
        bail!("mounts still present under {}: {left:?}", dir.display())
    }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid 2-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe2: {}", io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh fds that we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Become a child subreaper: orphaned descendants (the container's PID 1, once `<runtime>
/// create` has exited) are re-parented to us so we can `waitpid` them, as containerd's shim
/// does.
pub fn set_child_subreaper() -> Result<()> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        bail!(
            "prctl(PR_SET_CHILD_SUBREAPER): {}",
            io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Wait for `pid` (a child or re-parented descendant) and return its exit code, 128+N for
/// death by signal N. Blocking.
pub fn wait_pid(pid: i32) -> Result<i32> {
    loop {
        let mut st = 0;
        // SAFETY: st is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            if libc::WIFEXITED(st) {
                return Ok(libc::WEXITSTATUS(st));
            }
            if libc::WIFSIGNALED(st) {
                return Ok(128 + libc::WTERMSIG(st));
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        bail!("waitpid({pid}): {e}");
    }
}

/// The start time (clock ticks since boot) of a process: with the pid it identifies a process
/// across pid reuse. The runtime's own reading of /proc/PID/stat.
pub fn proc_start_time(pid: u32) -> Option<u64> {
    berth::sys::start_time(i32::try_from(pid).ok()?)
}

/// Is the process `pid`, started at `start_time`, still running? A zombie (killed, not yet
/// reaped by its parent) counts as gone: it can no longer clean anything up.
pub fn proc_alive(pid: u32, start_time: u64) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // One read: the state and the start time of the same process.
    matches!(berth::sys::proc_stat(pid), Some((state, start))
        if !matches!(state, 'Z' | 'X') && start == start_time)
}

/// `chown` without following symlinks.
pub fn lchown(p: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .with_context(|| format!("chown {uid}:{gid} {}", p.display()))
}

/// Random hex string from the kernel's CSPRNG (run ids).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // SAFETY: buf is valid for `bytes` bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), bytes, 0) };
    assert_eq!(n as usize, bytes, "getrandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bind-mount `src` onto `target` (an existing file or directory).
pub fn bind_mount(src: &Path, target: &Path) -> Result<()> {
    let (s, t) = (cstr(src)?, cstr(target)?);
    // SAFETY: valid C strings; a bind mount takes no fstype or data.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r != 0 {
        bail!(
            "bind-mounting {} on {}: {}",
            src.display(),
            target.display(),
            io::Error::last_os_error()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_escaping() {
        assert_eq!(escape_overlay(Path::new("/a:b,c")), r"/a\:b\,c");
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id();
        let t = proc_start_time(me).unwrap();
        assert!(proc_alive(me, t));
        assert!(
            !proc_alive(me, t + 1),
            "another start time is another process"
        );
    }
}
