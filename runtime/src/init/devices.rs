//! Device nodes in the container's /dev: mknod, or — inside a user
//! namespace, where the kernel refuses mknod — a bind mount of the host's
//! node (runc and crun do the same).

use super::Ctx;
use crate::plan::DeviceNode;
use crate::sys::{self, fd_path};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

pub(super) fn create(ctx: &mut Ctx, d: &DeviceNode) -> io::Result<()> {
    let DeviceNode {
        path,
        kind,
        major,
        minor,
        mode,
        uid,
        gid,
        bind,
    } = d;
    let root = ctx
        .root
        .as_ref()
        .ok_or_else(|| io::Error::other("rootfs is not open yet"))?;
    if *bind {
        let dest = super::rootfs::ensure_in_root(root, path, true)?;
        return sys::mount(Some(path), &fd_path(&dest), None, libc::MS_BIND, None);
    }
    let parent =
        super::rootfs::ensure_in_root(root, path.parent().unwrap_or(Path::new("/")), false)?;
    let parent = sys::open_in_root(
        parent.as_raw_fd(),
        Path::new("."),
        libc::O_PATH | libc::O_DIRECTORY,
    )?;
    let name = sys::cstr(path.file_name().unwrap_or_default())?;
    let ftype = match kind {
        'b' => libc::S_IFBLK,
        'p' => libc::S_IFIFO,
        _ => libc::S_IFCHR,
    };
    let dev = libc::makedev(*major as u32, *minor as u32);
    // SAFETY: an fd we hold and a valid C string. An existing node (e.g.
    // from the image) is replaced so its type and numbers are the ones asked.
    unsafe {
        libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), 0);
        if libc::mknodat(
            parent.as_raw_fd(),
            name.as_ptr(),
            ftype | (*mode & 0o7777),
            dev,
        ) != 0
        {
            return Err(sys::last(format_args!("mknod {}", path.display())));
        }
        if libc::fchownat(
            parent.as_raw_fd(),
            name.as_ptr(),
            *uid,
            *gid,
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            return Err(sys::last(format_args!("chown {}", path.display())));
        }
    }
    Ok(())
}
