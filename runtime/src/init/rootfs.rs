//! Init steps that build the container's filesystem view: propagation, the
//! rootfs bind, every mount, the cgroup view, /dev links, pivot_root,
//! masked and read-only paths.
//!
//! Every destination is resolved *inside* the rootfs with openat2
//! (RESOLVE_IN_ROOT) and mounted through its `/proc/self/fd/N` path, so a
//! symlink in the image can never aim a mount at the host — the class of
//! bug behind runc's CVE-2021-30465.

use super::Ctx;
use crate::plan::MountStep;
use crate::sys::{self, fd_path, open_in_root};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// `mount --make-<flags> /` (before building the rootfs, and on the new root).
pub(super) fn set_propagation(flags: u64) -> io::Result<()> {
    sys::mount(None, Path::new("/"), None, flags, None)
}

pub(super) fn bind_rootfs(ctx: &mut Ctx, rootfs: &Path) -> io::Result<()> {
    parent_mount_private(rootfs)?;
    sys::mount(
        Some(rootfs),
        rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    ctx.root = Some(sys::open(rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)?);
    Ok(())
}

/// Remount a path inside the (new) root read-only in place.
pub(super) fn remount_readonly_in_root(ctx: &Ctx, path: &Path) -> io::Result<()> {
    let fd = open_in_root(root(ctx)?.as_raw_fd(), path, libc::O_PATH)?;
    remount_ro(&fd_path(&fd))
}

/// Make the mount that holds `path` private (runc's
/// rootfsParentMountPrivate): MS_PRIVATE on a path that is not a mount point
/// fails with EINVAL, so walk up until one takes it.
fn parent_mount_private(path: &Path) -> io::Result<()> {
    let mut p = path;
    loop {
        match sys::mount(None, p, None, libc::MS_PRIVATE, None) {
            Ok(()) => return Ok(()),
            Err(e) if sys::errno(&e) == Some(libc::EINVAL) => match p.parent() {
                Some(up) => p = up,
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

pub(super) fn root<'a>(ctx: &'a Ctx) -> io::Result<&'a OwnedFd> {
    ctx.root
        .as_ref()
        .ok_or_else(|| io::Error::other("rootfs is not open yet"))
}

/// Make `path` (and its parents) exist inside the root, as a directory or
/// as an empty file, and return an O_PATH fd to it.
///
/// Symlinks met on the way are followed *inside* the root (an absolute
/// target restarts at the root, `..` never climbs above it), the way runc's
/// securejoin does, so `/escape -> /../../host` creates `<rootfs>/host`.
pub fn ensure_in_root(root: &OwnedFd, path: &Path, file: bool) -> io::Result<OwnedFd> {
    match open_in_root(root.as_raw_fd(), path, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if sys::errno(&e) == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let mut pending: std::collections::VecDeque<std::ffi::OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut so_far = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            so_far.pop();
            continue;
        }
        let parent = open_in_root(root.as_raw_fd(), &so_far, libc::O_PATH | libc::O_DIRECTORY)?;
        let cname = sys::cstr(&name)?;
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstatat into a live struct, on an fd we hold.
        let r = unsafe {
            libc::fstatat(
                parent.as_raw_fd(),
                cname.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH,
            )
        };
        if r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            hops += 1;
            if hops > 40 {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = nix::fcntl::readlinkat(&parent, name.as_os_str()).map_err(|e| {
                sys::err(
                    format_args!("readlink {}", so_far.join(&name).display()),
                    e.into(),
                )
            })?;
            let target = PathBuf::from(target);
            if target.is_absolute() {
                so_far = PathBuf::from("/");
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => pending.push_front(n.to_os_string()),
                    Component::ParentDir => pending.push_front("..".into()),
                    _ => {}
                }
            }
            continue;
        }
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(sys::err(
                    format_args!("stat {}", so_far.join(&name).display()),
                    e,
                ));
            }
            let last = pending.is_empty();
            // SAFETY: mkdirat/openat on an fd we hold with a valid C string.
            let made = unsafe {
                if last && file {
                    // O_NOFOLLOW|O_EXCL: never create through a symlink swapped in.
                    let fd = libc::openat(
                        parent.as_raw_fd(),
                        cname.as_ptr(),
                        libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_WRONLY
                            | libc::O_CLOEXEC,
                        0o644,
                    );
                    if fd >= 0 {
                        libc::close(fd);
                    }
                    fd >= 0
                } else {
                    libc::mkdirat(parent.as_raw_fd(), cname.as_ptr(), 0o755) == 0
                }
            };
            if !made {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(sys::err(
                        format_args!("create {} in the rootfs", so_far.join(&name).display()),
                        e,
                    ));
                }
            }
        }
        so_far.push(&name);
    }
    open_in_root(root.as_raw_fd(), &so_far, libc::O_PATH)
}

/// The mount flags the kernel locked on the mount at `path` (nosuid, nodev,
/// noexec, …). A remount inside a user namespace must repeat them or it
/// fails with EPERM.
fn locked_flags(path: &Path) -> io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| sys::err(format_args!("statvfs {}", path.display()), e.into()))?;
    use nix::sys::statvfs::FsFlags;
    let f = st.flags();
    let mut out = 0;
    for (ff, mf) in [
        (FsFlags::ST_NOSUID, libc::MS_NOSUID),
        (FsFlags::ST_NODEV, libc::MS_NODEV),
        (FsFlags::ST_NOEXEC, libc::MS_NOEXEC),
        (FsFlags::ST_NOATIME, libc::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, libc::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, libc::MS_RELATIME),
        (FsFlags::ST_RDONLY, libc::MS_RDONLY),
    ] {
        if f.contains(ff) {
            out |= mf;
        }
    }
    Ok(out)
}

fn remount(path: &Path, flags: u64) -> io::Result<()> {
    let locked = locked_flags(path)?;
    sys::mount(
        None,
        path,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | flags | locked,
        None,
    )
}

pub(super) fn remount_ro(path: &Path) -> io::Result<()> {
    remount(path, libc::MS_RDONLY)
}

/// proc and sysfs are mounted only on an ordinary directory of the image:
/// never through a symlink (`/proc -> /symlink`), which has been an attack
/// path (runc: "must be mounted on ordinary directory"). A missing
/// destination is fine: it is created as a directory.
fn check_ordinary_dir(root: &OwnedFd, m: &MountStep) -> io::Result<()> {
    let Some(fs @ ("proc" | "sysfs")) = m.fstype.as_deref() else {
        return Ok(());
    };
    let refuse = |why: &str| {
        io::Error::other(format!(
            "filesystem {fs:?} must be mounted on ordinary directory: {} {why}",
            m.destination.display()
        ))
    };
    match sys::open_in_root_no_symlinks(root.as_raw_fd(), &m.destination, libc::O_PATH) {
        Ok(fd) => {
            if std::fs::metadata(fd_path(&fd)).is_ok_and(|md| !md.is_dir()) {
                return Err(refuse("is not a directory"));
            }
            Ok(())
        }
        Err(e) if sys::errno(&e) == Some(libc::ELOOP) => Err(refuse("goes through a symlink")),
        Err(e) if sys::errno(&e) == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `source_fd`: the bind source the runtime opened as host root
/// (`OpenMountSources`); it is mounted through `/proc/self/fd/N`, which
/// needs no search permission on the source's parents.
pub(super) fn mount(root: &OwnedFd, m: &MountStep, source_fd: Option<OwnedFd>) -> io::Result<()> {
    check_ordinary_dir(root, m)?;
    let source = match &source_fd {
        Some(fd) => Some(fd_path(fd)),
        None => m.source.clone(),
    };
    let source_is_file = m.bind
        && source
            .as_ref()
            .is_some_and(|s| s.metadata().map(|md| !md.is_dir()).unwrap_or(false));
    if m.bind && source_fd.is_none() {
        if let Some(src) = &m.source {
            if let Err(e) = std::fs::symlink_metadata(src) {
                return Err(sys::err(format_args!("bind source {}", src.display()), e));
            }
        }
    }
    let dest = ensure_in_root(root, &m.destination, source_is_file)?;
    let target = fd_path(&dest);
    let data = (!m.data.is_empty()).then_some(m.data.as_str());
    let result = sys::mount(
        source.as_deref(),
        &target,
        m.fstype.as_deref(),
        m.flags,
        data,
    );
    match (result, m.fstype.as_deref()) {
        (Ok(()), _) => {}
        // devpts: `gid=5` is invalid when gid 5 is not mapped in the user
        // namespace; runc retries without it, so do we.
        (Err(e), Some("devpts"))
            if crate::sys::errno(&e) == Some(libc::EINVAL) && m.data.contains("gid=") =>
        {
            let data: Vec<&str> = m
                .data
                .split(',')
                .filter(|o| !o.starts_with("gid="))
                .collect();
            sys::mount(
                m.source.as_deref(),
                &target,
                m.fstype.as_deref(),
                m.flags,
                Some(&data.join(",")),
            )?;
        }
        // sysfs needs a network namespace owned by our user namespace, and
        // mqueue an IPC one: when the container shares the host's, bind the
        // host's instead (runc does the same for sysfs).
        (Err(e), Some(fs @ ("sysfs" | "mqueue"))) if crate::sys::errno(&e) == Some(libc::EPERM) => {
            let host = if fs == "sysfs" { "/sys" } else { "/dev/mqueue" };
            sys::mount(
                Some(Path::new(host)),
                &target,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )?;
            let again = open_in_root(root.as_raw_fd(), &m.destination, libc::O_PATH)?;
            remount(
                &fd_path(&again),
                m.flags & (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC),
            )?;
        }
        (Err(e), _) => return Err(e),
    }
    if m.remount_flags.is_none() && m.propagation.is_empty() && !m.recursive_readonly {
        return Ok(());
    }
    // The old fd names the directory *under* the new mount: reopen.
    let mounted = open_in_root(root.as_raw_fd(), &m.destination, libc::O_PATH)?;
    let target = fd_path(&mounted);
    if let Some(flags) = m.remount_flags {
        remount(&target, flags)?;
    }
    for p in &m.propagation {
        sys::mount(None, &target, None, *p, None)?;
    }
    if m.recursive_readonly {
        mount_setattr_rdonly(&mounted)?;
    }
    Ok(())
}

/// `rro`: read-only for the whole subtree (mount_setattr, Linux 5.12).
fn mount_setattr_rdonly(fd: &OwnedFd) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 1;
    const AT_RECURSIVE: libc::c_int = 0x8000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: attr is a valid mount_attr of the size passed; "" with
    // AT_EMPTY_PATH names the fd itself.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(sys::last("mount_setattr (rro)"));
    }
    Ok(())
}

/// Show the container its own cgroup: bind the host directories of its
/// cgroup under the destination (a tmpfs when there are several).
pub(super) fn mount_cgroups(
    root: &OwnedFd,
    dest: &Path,
    binds: &[(PathBuf, PathBuf)],
    symlinks: &[(PathBuf, PathBuf)],
    readonly: bool,
) -> io::Result<()> {
    let single = binds.len() == 1 && binds[0].1.as_os_str().is_empty();
    if !single {
        let d = ensure_in_root(root, dest, false)?;
        sys::mount(
            Some(Path::new("tmpfs")),
            &fd_path(&d),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=755"),
        )?;
    }
    for (host, rel) in binds {
        let inside = dest.join(rel);
        let d = ensure_in_root(root, &inside, false)?;
        sys::mount(
            Some(host),
            &fd_path(&d),
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?;
        let m = open_in_root(root.as_raw_fd(), &inside, libc::O_PATH)?;
        let ro = if readonly { libc::MS_RDONLY } else { 0 };
        remount(
            &fd_path(&m),
            ro | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        )?;
    }
    for (link, target) in symlinks {
        symlink(root, target, &dest.join(link))?;
    }
    if readonly && !single {
        let m = open_in_root(root.as_raw_fd(), dest, libc::O_PATH)?;
        remount(
            &fd_path(&m),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        )?;
    }
    Ok(())
}

pub(super) fn symlink(root: &OwnedFd, target: &Path, link: &Path) -> io::Result<()> {
    let parent = link.parent().unwrap_or(Path::new("/"));
    let name = link.file_name().unwrap_or(OsStr::new(""));
    let dir = ensure_in_root(root, parent, false)?;
    let dir = open_in_root(
        dir.as_raw_fd(),
        Path::new("."),
        libc::O_PATH | libc::O_DIRECTORY,
    )?;
    let t = sys::cstr(target.as_os_str())?;
    let n = sys::cstr(name)?;
    // SAFETY: valid C strings and an fd we hold.
    let r = unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if crate::sys::errno(&e) != Some(libc::EEXIST) {
            return Err(sys::err(format_args!("symlink {}", link.display()), e));
        }
    }
    Ok(())
}

/// chdir into the rootfs through the fd opened after the bind.
fn enter_rootfs(ctx: &Ctx) -> io::Result<()> {
    // SAFETY: fchdir on an O_PATH directory fd we hold.
    if unsafe { libc::fchdir(root(ctx)?.as_raw_fd()) } != 0 {
        return Err(sys::last("fchdir rootfs"));
    }
    Ok(())
}

/// After the switch: cwd at the new `/`, and the root fd naming it.
fn settle_in_new_root(ctx: &mut Ctx) -> io::Result<()> {
    std::env::set_current_dir("/").map_err(|e| sys::err("chdir /", e))?;
    ctx.root = Some(sys::open(
        Path::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )?);
    Ok(())
}

pub(super) fn pivot_root(ctx: &mut Ctx) -> io::Result<()> {
    enter_rootfs(ctx)?;
    // pivot_root(".", "."): the old root is stacked on top of the new one,
    // so no directory inside the image is needed to hold it.
    sys::pivot_root(Path::new("."), Path::new("."))?;
    // Make the old root a slave first so the detach does not propagate
    // back to the host's mounts.
    sys::mount(
        None,
        Path::new("."),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )?;
    sys::umount2(Path::new("."), libc::MNT_DETACH)?;
    settle_in_new_root(ctx)
}

pub(super) fn chroot_no_pivot(ctx: &mut Ctx) -> io::Result<()> {
    hide_host_proc_and_sysfs(&ctx.plan.rootfs)?;
    enter_rootfs(ctx)?;
    sys::mount(
        Some(Path::new(".")),
        Path::new("/"),
        None,
        libc::MS_MOVE,
        None,
    )?;
    nix::unistd::chroot(".").map_err(|e| sys::err("chroot .", e.into()))?;
    settle_in_new_root(ctx)
}

/// Before `--no-pivot`'s chroot: detach every *full* proc or sysfs mount
/// outside the rootfs (runc's msMoveRoot). chroot leaves the host's `/proc`
/// in the mount namespace; while a fully visible procfs exists there, the
/// kernel lets the container mount a fresh, unmasked one in a user
/// namespace of its own (`unshare -mrpf mount -t proc …`: runc's
/// no_pivot.bats). Where it cannot be unmounted, a tmpfs covers it.
fn hide_host_proc_and_sysfs(rootfs: &Path) -> io::Result<()> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| sys::err("read /proc/self/mountinfo", e))?;
    let targets: Vec<PathBuf> = text
        .lines()
        .filter_map(full_proc_or_sysfs_mount)
        .filter(|p| !p.starts_with(rootfs))
        .collect();
    for p in targets {
        // Slave first, so the unmount does not propagate to the host.
        match sys::mount(None, &p, None, libc::MS_SLAVE | libc::MS_REC, None) {
            Ok(()) => {}
            // A parent already detached took it along.
            Err(e) if sys::errno(&e) == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        }
        match sys::umount2(&p, libc::MNT_DETACH) {
            Ok(()) => {}
            Err(e) if matches!(sys::errno(&e), Some(libc::EINVAL | libc::EPERM)) => {
                sys::mount(Some(Path::new("tmpfs")), &p, Some("tmpfs"), 0, None)?
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The mount point of a mountinfo line if it is a whole (root `/`) proc or
/// sysfs mount.
fn full_proc_or_sysfs_mount(line: &str) -> Option<PathBuf> {
    // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw"
    let (left, right) = line.split_once(" - ")?;
    let f: Vec<&str> = left.split(' ').collect();
    let fstype = right.split(' ').next()?;
    (f.len() >= 5 && f[3] == "/" && matches!(fstype, "proc" | "sysfs"))
        .then(|| PathBuf::from(sys::unescape_mountinfo(f[4])))
}

pub(super) fn mask(root: &OwnedFd, path: &Path) -> io::Result<()> {
    let fd = match open_in_root(root.as_raw_fd(), path, libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) if crate::sys::errno(&e) == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let target = fd_path(&fd);
    let is_dir = std::fs::metadata(&target)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    if is_dir {
        sys::mount(
            Some(Path::new("tmpfs")),
            &target,
            Some("tmpfs"),
            libc::MS_RDONLY,
            None,
        )
    } else {
        sys::mount(
            Some(Path::new("/dev/null")),
            &target,
            None,
            libc::MS_BIND,
            None,
        )
    }
}

pub(super) fn readonly(root: &OwnedFd, path: &Path) -> io::Result<()> {
    let fd = match open_in_root(root.as_raw_fd(), path, libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) if crate::sys::errno(&e) == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    sys::mount(
        Some(&fd_path(&fd)),
        &fd_path(&fd),
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    let again = open_in_root(root.as_raw_fd(), path, libc::O_PATH)?;
    remount_ro(&fd_path(&again))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_proc_and_sysfs_mounts_are_found() {
        let lines = [
            "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw",
            "23 1 0:22 / /sys rw,nosuid shared:6 - sysfs sysfs rw",
            "40 22 0:21 /sys /proc/sys ro - proc proc rw",
            "41 1 0:23 / /run rw - tmpfs tmpfs rw",
            "42 1 0:21 / /mnt/a\\040b rw - proc proc rw",
        ];
        let found: Vec<PathBuf> = lines
            .iter()
            .filter_map(|l| full_proc_or_sysfs_mount(l))
            .collect();
        assert_eq!(
            found,
            [
                PathBuf::from("/proc"),
                PathBuf::from("/sys"),
                PathBuf::from("/mnt/a b")
            ]
        );
    }
}
