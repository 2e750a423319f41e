//! Thin, documented wrappers over the raw syscalls berth needs and that nix
//! does not cover (or covers awkwardly). Every `unsafe` block says why it is
//! sound; every error names the operation and its operand.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An `io::Error` that says which operation failed on which operand:
/// `mount /proc (proc): Operation not permitted`.
pub fn err(op: impl std::fmt::Display, e: io::Error) -> io::Error {
    let errno = errno(&e);
    io::Error::new(
        e.kind(),
        Context {
            msg: format!("{op}: {e}"),
            errno,
        },
    )
}

/// An error message with the errno it came from, so callers can still
/// match on ENOENT/EPERM after context was added.
#[derive(Debug)]
struct Context {
    msg: String,
    errno: Option<i32>,
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Context {}

/// The errno behind an error, through any context [`err`] added.
pub fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|i| i.downcast_ref::<Context>())
            .and_then(|c| c.errno)
    })
}

/// The last OS error, prefixed with the operation.
pub fn last(op: impl std::fmt::Display) -> io::Error {
    err(op, io::Error::last_os_error())
}

pub fn cstr(p: impl AsRef<std::ffi::OsStr>) -> io::Result<CString> {
    CString::new(p.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(ret: libc::c_int, op: impl std::fmt::Display) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(last(op))
    } else {
        Ok(ret)
    }
}

/// mount(2). `target` may be a `/proc/self/fd/N` path of an O_PATH fd, which
/// is how berth mounts onto a destination it resolved safely inside the rootfs.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = source.map(|s| cstr(s.as_os_str())).transpose()?;
    let tgt = cstr(target.as_os_str())?;
    let fs = fstype.map(cstr).transpose()?;
    let dat = data.map(cstr).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a valid NUL-terminated string
    // that outlives the call; mount(2) does not retain them.
    let ret = unsafe {
        libc::mount(
            ptr(&src),
            tgt.as_ptr(),
            ptr(&fs),
            flags,
            ptr(&dat) as *const libc::c_void,
        )
    };
    check(ret, format_args!("mount {}", target.display())).map(|_| ())
}

pub fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let t = cstr(target.as_os_str())?;
    // SAFETY: `t` is a valid C string for the duration of the call.
    check(
        unsafe { libc::umount2(t.as_ptr(), flags) },
        format_args!("umount {}", target.display()),
    )
    .map(|_| ())
}

pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let n = cstr(new_root.as_os_str())?;
    let o = cstr(put_old.as_os_str())?;
    // SAFETY: both are valid C strings; pivot_root has no libc wrapper.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
    check(ret as libc::c_int, "pivot_root").map(|_| ())
}

/// `struct open_how` for openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Open `path` as if `root` were `/`: absolute symlinks and `..` cannot
/// leave `root` (openat2 RESOLVE_IN_ROOT). This is how berth makes sure a
/// mount destination like `/etc/x -> /../../host` lands inside the rootfs.
pub fn open_in_root(root: RawFd, path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    openat2_in_root(root, path, flags, 0)
}

const RESOLVE_NO_SYMLINKS: u64 = 0x04;

/// [`open_in_root`] that also refuses any symlink on the way (ELOOP): for
/// destinations that must be ordinary directories (proc, sysfs).
pub fn open_in_root_no_symlinks(
    root: RawFd,
    path: &Path,
    flags: libc::c_int,
) -> io::Result<OwnedFd> {
    openat2_in_root(root, path, flags, RESOLVE_NO_SYMLINKS)
}

/// openat2 with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS plus `extra`.
fn openat2_in_root(
    root: RawFd,
    path: &Path,
    flags: libc::c_int,
    extra: u64,
) -> io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = cstr(rel.as_os_str())?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extra,
    };
    // SAFETY: `how` is a valid open_how of the size we pass; `c` is a valid
    // C string; the kernel returns a new fd we take ownership of.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(last(format_args!(
            "open {} inside the rootfs",
            path.display()
        )));
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn open(path: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: valid C string; the returned fd is owned by the OwnedFd.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    check(fd, format_args!("open {}", path.display()))?;
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// openat(2) relative to `dir`, close-on-exec.
pub fn openat(
    dir: RawFd,
    path: &Path,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: valid C string; the returned fd is owned by the OwnedFd.
    let fd = unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    check(fd, format_args!("open {}", path.display()))?;
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `/proc/self/fd/N` for an fd: a path the kernel resolves to exactly that
/// file, so a mount on it cannot be redirected by a symlink swapped in later.
pub fn fd_path(fd: &impl AsRawFd) -> std::path::PathBuf {
    format!("/proc/self/fd/{}", fd.as_raw_fd()).into()
}

/// `renameat2(a, b, RENAME_EXCHANGE)`: atomically swap two existing paths.
/// ENOENT when either is missing, EINVAL where the filesystem lacks it.
pub fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    let (ca, cb) = (cstr(a)?, cstr(b)?);
    // SAFETY: two valid NUL-terminated paths; renameat2 touches nothing else.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub fn setns(fd: RawFd, nstype: libc::c_int, what: &str) -> io::Result<()> {
    // SAFETY: plain syscall on an fd we hold.
    check(
        unsafe { libc::setns(fd, nstype) },
        format_args!("setns {what}"),
    )
    .map(|_| ())
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall with integer flags.
    check(
        unsafe { libc::unshare(flags) },
        format_args!("unshare {flags:#x}"),
    )
    .map(|_| ())
}

/// fork(2) for a single-threaded process. In the child, only async-signal-
/// safe work is strictly required, but berth's runtime never starts threads,
/// so ordinary Rust (allocation included) is fine there.
pub fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: the runtime is single-threaded (no async, no thread pools), so
    // the child gets a consistent copy of the whole address space.
    let pid = unsafe { libc::fork() };
    check(pid, "fork")
}

/// Block until one byte can be read from `fd`; false on EOF or an error.
pub fn read_one_byte(fd: &OwnedFd) -> bool {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: reading one byte into a live buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return n == 1;
    }
}

/// Write one byte to `fd`.
pub fn write_one_byte(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: writing one byte from a live buffer.
    let n = unsafe { libc::write(fd.as_raw_fd(), [0u8].as_ptr().cast(), 1) };
    if n == 1 {
        Ok(())
    } else {
        Err(last("write"))
    }
}

/// clone(2) like fork, but the new process becomes a child of *our* parent
/// (CLONE_PARENT). Stage 1 uses it so the container init is a direct child
/// of the runtime process, which can then wait for it.
pub fn fork_sibling() -> io::Result<libc::pid_t> {
    // SAFETY: with a NULL stack the kernel duplicates our stack like fork;
    // the process is single-threaded so the copy is consistent.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    check(pid as libc::c_int, "clone(CLONE_PARENT)")
}

pub fn prctl(op: libc::c_int, a: libc::c_ulong, what: &str) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(
        unsafe { libc::prctl(op, a, 0, 0, 0) },
        format_args!("prctl {what}"),
    )
    .map(|_| ())
}

/// Mark every fd from `first` on close-on-exec (close_range, Linux 5.11;
/// falls back to walking /proc/self/fd, or every fd number below
/// RLIMIT_NOFILE without procfs).
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            u32::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let dir = match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => d,
        // No procfs (a container without a mount namespace is chrooted
        // into a rootfs with nothing mounted): every possible fd number.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit fills the struct.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
            let last = lim.rlim_max.max(lim.rlim_cur).min(1 << 20) as RawFd;
            for fd in first..last {
                // SAFETY: as below; an fd number that is not open fails with EBADF.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
            return Ok(());
        }
        Err(e) => return Err(err("read /proc/self/fd", e)),
    };
    for entry in dir {
        let fd: RawFd = match entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse().ok())
        {
            Some(fd) => fd,
            None => continue,
        };
        if fd >= first {
            // SAFETY: setting FD_CLOEXEC on an fd number is harmless even if it just closed.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// Send one fd with a short payload over a unix socket (SCM_RIGHTS).
pub fn send_fd(sock: RawFd, payload: &[u8], fd: RawFd) -> io::Result<()> {
    let iov = [io::IoSlice::new(payload)];
    let fds = [fd];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    nix::sys::socket::sendmsg::<()>(sock, &iov, &cmsg, nix::sys::socket::MsgFlags::empty(), None)
        .map_err(|e| err("sendmsg (SCM_RIGHTS)", e.into()))?;
    Ok(())
}

/// Receive one fd (and its payload) sent with [`send_fd`].
pub fn recv_fd(sock: RawFd) -> io::Result<(Vec<u8>, OwnedFd)> {
    let mut buf = vec![0u8; 4096];
    let mut cbuf = nix::cmsg_space!([RawFd; 1]);
    let (n, fd) = {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            sock,
            &mut iov,
            Some(&mut cbuf),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| err("recvmsg (SCM_RIGHTS)", e.into()))?;
        let mut fd = None;
        for c in msg.cmsgs().map_err(|e| err("recvmsg", e.into()))? {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(v) = c {
                fd = v.first().copied();
            }
        }
        (msg.bytes, fd)
    };
    buf.truncate(n);
    let fd = fd.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no fd in message"))?;
    // SAFETY: the kernel installed this fd for us; nobody else owns it.
    Ok((buf, unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// State letter (`R`, `S`, `Z`, …) and start time (clock ticks since boot,
/// field 22) of a process, from one read of `/proc/<pid>/stat`, so both
/// describe the same moment; None if it is gone. Read as bytes: the command
/// name (field 2) need not be UTF-8, and may contain spaces and ')'.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 2..)?).ok()?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 was the state; field 22 is 18 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Undo /proc/*/mountinfo's octal escapes (`\040` is a space; tab, newline and backslash
/// likewise). Shared with berth-worker.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Start time of a process in clock ticks since boot (/proc/<pid>/stat field
/// 22). Together with the pid it names a process uniquely, so berth never
/// signals an unrelated process that reused a container's pid.
pub fn start_time(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(_, start)| start)
}

/// A pidfd (pidfd_open, Linux ≥ 5.3): becomes readable when the process
/// exits, so a wait on a pipe or socket can also watch for the peer's death
/// (with [`poll_readable`]) instead of hanging when it dies silently.
#[derive(Debug)]
pub struct Pidfd {
    fd: OwnedFd,
    pub pid: i32,
}

impl Pidfd {
    pub fn open(pid: i32) -> io::Result<Pidfd> {
        // SAFETY: pidfd_open(pid, 0) returns a new fd (O_CLOEXEC) or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(last(format_args!("pidfd_open {pid}")));
        }
        // SAFETY: a fresh fd owned by nobody else.
        Ok(Pidfd {
            fd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
            pid,
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Has the process exited (it may still be a zombie)?
    pub fn exited(&self) -> bool {
        poll_readable(&[self.raw()], 0).is_ok_and(|r| r[0])
    }
}

/// poll(2) for input on `fds` (a hang-up or error counts as ready): which
/// are ready, after at most `timeout_ms` (-1: no limit). EINTR is retried.
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: poll on a live array of pfds.len() pollfds.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if r >= 0 {
            return Ok(pfds.iter().map(|p| p.revents != 0).collect());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(err("poll", e));
        }
    }
}

/// How a child of ours ended, read without reaping it (waitid WNOWAIT), so
/// a later waitpid still gets the status: "exited with status 1", "killed by
/// signal 9". None while it runs (or if it is not our child).
pub fn peek_exit(pid: i32) -> Option<String> {
    // SAFETY: siginfo_t is plain data; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid with a live siginfo_t.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: si_pid/si_status are valid for a SIGCHLD siginfo.
    let (got, status) = unsafe { (info.si_pid(), info.si_status()) };
    if r != 0 || got == 0 {
        return None;
    }
    Some(match info.si_code {
        libc::CLD_EXITED => format!("exited with status {status}"),
        _ => format!("killed by signal {status}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/trailing\04"), r"/trailing\04");
    }
}
