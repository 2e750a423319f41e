//! Uid-shifted ("namespaced") trees: the fallback for kernels without idmapped overlay layers,
//! and the conversion of volumes that cross between privileged and unprivileged containers.
//!
//! Two id spaces exist on disk (Concourse's baggageclaim has the same two, `uidgid/`):
//!
//! - **host space**: on-disk id = the id a privileged container sees (root is 0). Images,
//!   `-i`/`-o` directories and privileged caches are in host space.
//! - **namespaced space**: on-disk id = the host id an unprivileged container's id maps to
//!   (Concourse's mapping: root is *max*, every other id is itself). An unprivileged container
//!   sees such a tree with the right owners through a plain bind mount or overlay.
//!
//! Converting is a walk that `lchown`s every entry: [`to_ns`] moves 0 to *max*, [`to_host`]
//! moves *max* to 0, every other id stays (baggageclaim's translator does exactly this). Both
//! maps are idempotent, so an interrupted conversion is finished by running it again and a
//! hard-linked inode seen twice is harmless. `chown` clears set-id bits and
//! `security.capability`; both are put back.
//!
//! The walks are parallel (a shared queue of directories, one thread per slot): on big trees
//! they are bound by metadata syscalls, not by one core.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use anyhow::{anyhow, Context, Result};
use sha2::{Digest, Sha256};

/// A direction of conversion between the two id spaces (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    /// Host space → namespaced space (0 → max).
    ToNs(u32),
    /// Namespaced space → host space (max → 0).
    ToHost(u32),
    /// Leave ids as they are (a plain copy).
    None,
    /// Every owner becomes this uid and gid: what a `tar x` by that (non-root) user gives,
    /// which is how fly writes `-o` outputs.
    Owner(u32, u32),
}

impl Shift {
    /// Map one uid.
    pub fn uid(self, id: u32) -> u32 {
        match self {
            Shift::Owner(uid, _) => uid,
            other => other.map(id),
        }
    }

    /// Map one gid.
    pub fn gid(self, id: u32) -> u32 {
        match self {
            Shift::Owner(_, gid) => gid,
            other => other.map(id),
        }
    }

    /// Map one id of a space shift (uids and gids move alike).
    fn map(self, id: u32) -> u32 {
        match self {
            Shift::ToNs(max) => to_ns(id, max),
            Shift::ToHost(max) => to_host(id, max),
            Shift::None | Shift::Owner(..) => id,
        }
    }
}

/// Host space → namespaced space: root becomes *max*, every other id stays.
pub fn to_ns(id: u32, max: u32) -> u32 {
    if id == 0 {
        max
    } else {
        id
    }
}

/// Namespaced space → host space: *max* becomes root, every other id stays.
pub fn to_host(id: u32, max: u32) -> u32 {
    if id == max {
        0
    } else {
        id
    }
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int, what: &str, p: &Path) -> Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error()).with_context(|| format!("{what} {}", p.display()))
    } else {
        Ok(())
    }
}

/// All extended attributes of `p` (not following a symlink). A filesystem without xattrs
/// gives none.
fn xattrs(p: &Path) -> Result<Vec<(CString, Vec<u8>)>> {
    let c = cstr(p)?;
    let mut names = vec![0u8; 4096];
    loop {
        // SAFETY: c is a valid path; names is a writable buffer of the given length.
        let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            names.truncate(n as usize);
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(vec![]),
            _ => return Err(e).with_context(|| format!("listing xattrs of {}", p.display())),
        }
    }
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = CString::new(name).expect("no NUL inside a split part");
        if let Some(v) = getxattr(&c, &name).with_context(|| {
            format!(
                "reading xattr {} of {}",
                name.to_string_lossy(),
                p.display()
            )
        })? {
            out.push((name, v));
        }
    }
    Ok(out)
}

fn getxattr(path: &CString, name: &CString) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid C strings; buf is writable for its length.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            _ => return Err(e),
        }
    }
}

fn setxattr(p: &Path, name: &CString, v: &[u8]) -> Result<()> {
    let c = cstr(p)?;
    // SAFETY: valid C strings; v is readable for its length.
    let rc = unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).with_context(|| {
            format!(
                "setting xattr {} on {}",
                name.to_string_lossy(),
                p.display()
            )
        });
    }
    Ok(())
}

fn lchown(p: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .with_context(|| format!("chown {uid}:{gid} {}", p.display()))
}

fn chmod(p: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode & 0o7777))
        .with_context(|| format!("chmod {:o} {}", mode & 0o7777, p.display()))
}

/// How many walkers: metadata syscalls block on the disk, so a few more threads than cores.
fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .saturating_mul(2)
        .clamp(2, 16)
}

/// Process a tree of directory jobs in parallel: `visit(job, push)` handles one directory and
/// calls `push` for every subdirectory to process. Stops at the first error.
fn par_dirs<T: Send>(root: T, visit: impl Fn(T, &dyn Fn(T)) -> Result<()> + Sync) -> Result<()> {
    struct State<T> {
        jobs: Vec<T>,
        active: usize,
        err: Option<anyhow::Error>,
    }
    let st = Mutex::new(State {
        jobs: vec![root],
        active: 0,
        err: None,
    });
    let cv = Condvar::new();
    let push = |j: T| {
        st.lock().expect("walk lock").jobs.push(j);
        cv.notify_one();
    };
    std::thread::scope(|s| {
        for _ in 0..threads() {
            s.spawn(|| loop {
                let job = {
                    let mut g = st.lock().expect("walk lock");
                    loop {
                        if g.err.is_some() {
                            return;
                        }
                        if let Some(j) = g.jobs.pop() {
                            g.active += 1;
                            break j;
                        }
                        if g.active == 0 {
                            cv.notify_all();
                            return;
                        }
                        g = cv.wait(g).expect("walk lock");
                    }
                };
                let r = visit(job, &push);
                let mut g = st.lock().expect("walk lock");
                g.active -= 1;
                if let Err(e) = r {
                    g.err.get_or_insert(e);
                }
                cv.notify_all();
            });
        }
    });
    match st.into_inner().expect("walk lock").err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Give `dst` the owner (shifted), xattrs, and mode of `src` (described by `m`).
fn copy_attrs(src: &Path, dst: &Path, m: &fs::Metadata, shift: Shift) -> Result<()> {
    lchown(dst, shift.uid(m.uid()), shift.gid(m.gid()))?;
    // After chown, which would drop security.capability again.
    for (name, v) in xattrs(src)? {
        match setxattr(dst, &name, &v) {
            // Some filesystems refuse some namespaces (e.g. user.* on a symlink); the copy is
            // still faithful for what the destination can hold.
            Err(e)
                if matches!(
                    e.downcast_ref::<io::Error>().and_then(|e| e.raw_os_error()),
                    Some(libc::ENOTSUP) | Some(libc::EPERM)
                ) => {}
            r => r?,
        }
    }
    if !m.file_type().is_symlink() {
        chmod(dst, m.mode())?;
    }
    Ok(())
}

/// Remove whatever is at `p` (a merge replaces non-directories).
fn remove_any(p: &Path) -> Result<()> {
    crate::sys::remove_any(p).with_context(|| format!("replacing {}", p.display()))
}

/// Copy one non-directory entry.
fn copy_entry(src: &Path, dst: &Path, m: &fs::Metadata, shift: Shift) -> Result<()> {
    let ft = m.file_type();
    if ft.is_file() {
        let mut from = fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
        let mut to = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)
            .with_context(|| format!("creating {}", dst.display()))?;
        // std's copy uses copy_file_range: in-kernel, and a reflink where the fs can.
        io::copy(&mut from, &mut to)
            .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src).with_context(|| format!("reading {}", src.display()))?;
        std::os::unix::fs::symlink(&target, dst)
            .with_context(|| format!("creating symlink {}", dst.display()))?;
    } else {
        // Devices, FIFOs, sockets.
        let c = cstr(dst)?;
        let kind = m.mode() & libc::S_IFMT;
        // SAFETY: valid C string; mknod has no memory side effects.
        let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o600, m.rdev()) };
        check(rc, "mknod", dst)?;
    }
    copy_attrs(src, dst, m, shift)?;
    crate::sys::set_times(dst, m)
}

/// Copy the tree `src` into `dst` with every owner mapped by `shift`, keeping modes (set-id
/// bits too), xattrs (file capabilities too), hard links, symlinks, devices, FIFOs and times.
/// `dst` may exist: directories merge, other entries are replaced (like `cp -a src/. dst`).
pub fn copy_tree(src: &Path, dst: &Path, shift: Shift) -> Result<()> {
    copy_tree_with(src, dst, shift, true)
}

/// [`copy_tree`] into the existing directory `dst`, whose own owner, mode and times stay as
/// they are (an `-o DIR` the user made is never re-owned or re-moded).
pub fn copy_into(src: &Path, dst: &Path, shift: Shift) -> Result<()> {
    copy_tree_with(src, dst, shift, false)
}

fn copy_tree_with(src: &Path, dst: &Path, shift: Shift, root_attrs: bool) -> Result<()> {
    let m = fs::metadata(src).with_context(|| format!("{}", src.display()))?;
    if !m.is_dir() {
        return Err(anyhow!("{}: not a directory", src.display()));
    }
    match fs::symlink_metadata(dst) {
        Ok(d) if d.is_dir() => {}
        Ok(_) => {
            remove_any(dst)?;
            fs::create_dir(dst).with_context(|| format!("creating {}", dst.display()))?;
        }
        Err(_) => fs::create_dir(dst).with_context(|| format!("creating {}", dst.display()))?,
    }
    if root_attrs {
        copy_attrs(src, dst, &m, shift)?;
    }
    // Hard links: the first name of an inode creates the copy (under the lock, so a second
    // name never links to a file that does not exist yet).
    let links: Mutex<HashMap<(u64, u64), PathBuf>> = Mutex::new(HashMap::new());
    // Directory times are set last: creating children changes them.
    let dir_times: Mutex<Vec<(PathBuf, fs::Metadata)>> = Mutex::new(if root_attrs {
        vec![(dst.into(), m)]
    } else {
        vec![]
    });
    par_dirs((src.to_path_buf(), dst.to_path_buf()), |(s, d), push| {
        for e in fs::read_dir(&s).with_context(|| format!("reading {}", s.display()))? {
            let e = e.with_context(|| format!("reading {}", s.display()))?;
            let (sp, dp) = (e.path(), d.join(e.file_name()));
            let m = fs::symlink_metadata(&sp).with_context(|| format!("{}", sp.display()))?;
            if m.is_dir() {
                match fs::symlink_metadata(&dp) {
                    Ok(x) if x.is_dir() => {}
                    Ok(_) => {
                        remove_any(&dp)?;
                        fs::create_dir(&dp)
                            .with_context(|| format!("creating {}", dp.display()))?;
                    }
                    Err(_) => {
                        fs::create_dir(&dp).with_context(|| format!("creating {}", dp.display()))?
                    }
                }
                copy_attrs(&sp, &dp, &m, shift)?;
                dir_times.lock().expect("lock").push((dp.clone(), m));
                push((sp, dp));
                continue;
            }
            if fs::symlink_metadata(&dp).is_ok() {
                remove_any(&dp)?;
            }
            if m.nlink() > 1 {
                let mut l = links.lock().expect("lock");
                if let Some(first) = l.get(&(m.dev(), m.ino())) {
                    fs::hard_link(first, &dp).with_context(|| {
                        format!("hard link {} -> {}", dp.display(), first.display())
                    })?;
                    continue;
                }
                l.insert((m.dev(), m.ino()), dp.clone());
                copy_entry(&sp, &dp, &m, shift)?;
                continue;
            }
            copy_entry(&sp, &dp, &m, shift)?;
        }
        Ok(())
    })?;
    for (d, m) in dir_times.into_inner().expect("lock").iter().rev() {
        crate::sys::set_times(d, m)?;
    }
    Ok(())
}

/// A fingerprint of a tree's names and inode metadata (inode, ctime, mtime, size, mode,
/// owner): any write, chmod, chown, rename, create or delete inside changes it. Used to
/// notice that a rootfs directory used in place changed since its shifted copy was made.
pub fn fingerprint(root: &Path) -> Result<String> {
    let rows: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let row = |rel: &Path, m: &fs::Metadata| {
        format!(
            "{}\0{} {} {} {} {} {} {} {}",
            rel.display(),
            m.ino(),
            m.ctime(),
            m.ctime_nsec(),
            m.mtime_nsec(),
            m.size(),
            m.mode(),
            m.uid(),
            m.gid()
        )
    };
    let m = fs::metadata(root).with_context(|| format!("{}", root.display()))?;
    rows.lock().expect("lock").push(row(Path::new(""), &m));
    par_dirs(root.to_path_buf(), |dir: PathBuf, push| {
        let mut local = Vec::new();
        for e in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let e = e.with_context(|| format!("reading {}", dir.display()))?;
            let p = e.path();
            let m = fs::symlink_metadata(&p).with_context(|| format!("{}", p.display()))?;
            local.push(row(p.strip_prefix(root).unwrap_or(&p), &m));
            if m.is_dir() {
                push(p);
            }
        }
        rows.lock().expect("lock").extend(local);
        Ok(())
    })?;
    let mut rows = rows.into_inner().expect("lock");
    rows.sort_unstable();
    let mut h = Sha256::new();
    for r in &rows {
        h.update(r.as_bytes());
        h.update(b"\n");
    }
    Ok(h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_idempotent_and_undo_each_other() {
        let max = 4294967294;
        for id in [0, 1, 1000, 65534, max] {
            assert_eq!(to_ns(to_ns(id, max), max), to_ns(id, max));
            assert_eq!(to_host(to_host(id, max), max), to_host(id, max));
        }
        assert_eq!(to_ns(0, max), max);
        assert_eq!(to_host(max, max), 0);
        assert_eq!(to_host(to_ns(0, max), max), 0);
        assert_eq!(to_ns(1000, max), 1000);
        assert_eq!(Shift::None.map(0), 0);
    }

    /// Runs as root (as the whole test suite does): chown needs it.
    #[test]
    fn copy_keeps_links_modes_and_content() {
        let t = tempfile::tempdir().unwrap();
        let (s, d) = (t.path().join("s"), t.path().join("d"));
        fs::create_dir_all(s.join("sub/deeper")).unwrap();
        fs::write(s.join("sub/f"), "data").unwrap();
        fs::hard_link(s.join("sub/f"), s.join("link")).unwrap();
        std::os::unix::fs::symlink("sub/f", s.join("sym")).unwrap();
        fs::set_permissions(s.join("sub/f"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::set_permissions(s.join("sub/deeper"), fs::Permissions::from_mode(0o500)).unwrap();
        copy_tree(&s, &d, Shift::None).unwrap();
        assert_eq!(fs::read_to_string(d.join("sub/f")).unwrap(), "data");
        let (a, b) = (
            fs::metadata(d.join("sub/f")).unwrap(),
            fs::metadata(d.join("link")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino(), "hard link kept");
        assert_eq!(a.mode() & 0o7777, 0o4755);
        assert_eq!(fs::read_link(d.join("sym")).unwrap(), Path::new("sub/f"));
        assert_eq!(
            fs::metadata(d.join("sub/deeper")).unwrap().mode() & 0o7777,
            0o500
        );
        assert_eq!(
            fs::metadata(d.join("sub")).unwrap().mtime(),
            fs::metadata(s.join("sub")).unwrap().mtime()
        );
        let f1 = fingerprint(&s).unwrap();
        assert_eq!(f1, fingerprint(&s).unwrap());
        fs::write(s.join("sub/f"), "changed").unwrap();
        assert_ne!(f1, fingerprint(&s).unwrap());
    }
}
