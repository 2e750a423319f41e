//! Layer unpacking: one tar stream (plain, gzip or zstd) applied onto a root filesystem with
//! OCI whiteouts, owners, modes, device nodes and hard links, never writing outside the root.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

/// Compression of a stream, by magic number.
pub fn decompress<'a>(mut r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut magic[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = io::Cursor::new(magic[..got].to_vec());
    let chained = head.chain(r);
    Ok(if got >= 2 && magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(chained))
    } else if got == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::stream::read::Decoder::new(chained).context("starting zstd decoder")?)
    } else {
        Box::new(chained)
    })
}

/// Apply a layer stream (plain, gzip or zstd) onto `root` with [`apply_layer`], its
/// decompression (and whatever `r` does per read: hashing, cancelling) on a thread of its
/// own, 1 MiB ahead of the tar parsing: inflating gzip takes as long as writing the files
/// it holds, and the two now overlap instead of alternating on one thread.
pub fn apply_layer_stream(r: impl Read + Send, root: &Path) -> Result<()> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
        s.spawn(move || {
            let mut d = match decompress(r) {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(format!("{e:#}"))));
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let mut got = 0;
                let res = loop {
                    match d.read(&mut buf[got..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            got += n;
                            if got == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(got);
                let last = got == 0 || res.is_err();
                if got > 0 && tx.send(Ok(buf)).is_err() {
                    // The tar ended (or failed): nobody reads on.
                    return;
                }
                if let Err(e) = res {
                    let _ = tx.send(Err(e));
                }
                if last {
                    return;
                }
            }
        });
        apply_layer(
            ChunkReader {
                rx,
                cur: Vec::new(),
                pos: 0,
            },
            root,
        )
    })
}

/// Reads the chunks [`apply_layer_stream`]'s decompressing thread sends; EOF when it is done.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A path inside the rootfs from a tar entry name: relative, no `..` (rejected, not clamped:
/// a layer that tries to escape is broken or hostile).
fn safe_rel(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                bail!("tar entry {} escapes the rootfs", p.display())
            }
        }
    }
    Ok(out)
}

/// Refuse to go through a symlink inside the rootfs when creating or deleting (a layer could
/// plant `etc -> /etc` and then write `etc/passwd` to the host).
///
/// `verified` caches parent directories already checked in this layer (a layer has thousands
/// of entries under the same few directories; re-checking every component of every path made
/// unpacking 3x slower than GNU tar). Anything that removes a path clears it.
fn check_no_symlink_parents(
    root: &Path,
    rel: &Path,
    verified: &mut BTreeSet<PathBuf>,
) -> Result<()> {
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    if parent.as_os_str().is_empty() || verified.contains(parent) {
        return Ok(());
    }
    let mut cur = root.to_path_buf();
    let mut rel_cur = PathBuf::new();
    for c in parent.components() {
        cur.push(c);
        rel_cur.push(c);
        if verified.contains(&rel_cur) {
            continue;
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => bail!(
                "tar entry {} goes through the symlink {}",
                rel.display(),
                cur.display()
            ),
            Ok(m) if !m.is_dir() => {
                // A file where a directory is needed: replace it (a later layer can do that).
                fs::remove_file(&cur)?;
                verified.clear();
            }
            _ => {}
        }
    }
    // Every prefix is now a real directory or missing (created as one right after).
    let mut p = PathBuf::new();
    for c in parent.components() {
        p.push(c);
        verified.insert(p.clone());
    }
    Ok(())
}

/// mknod + owner + mode for a char/block device or FIFO entry.
fn make_node<R: Read>(e: &tar::Entry<'_, R>, kind: tar::EntryType, dest: &Path) -> Result<()> {
    let h = e.header();
    let mode = h.mode()? & 0o7777;
    let (typ, dev) = if kind.is_fifo() {
        (libc::S_IFIFO, 0)
    } else {
        let major = h.device_major()?.unwrap_or(0);
        let minor = h.device_minor()?.unwrap_or(0);
        (
            if kind.is_character_special() {
                libc::S_IFCHR
            } else {
                libc::S_IFBLK
            },
            libc::makedev(major, minor),
        )
    };
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dest.as_os_str()))?;
    // SAFETY: c is a valid NUL-terminated path; mknod has no memory side effects.
    if unsafe { libc::mknod(c.as_ptr(), typ | mode, dev) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    std::os::unix::fs::lchown(dest, Some(h.uid()? as u32), Some(h.gid()? as u32))?;
    // mknod's mode is filtered by the umask; set it exactly.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Regular files up to this size are read into memory and written by the writer threads;
/// larger ones (and sparse ones) are written by the reading thread itself, streamed.
const SMALL_FILE: u64 = 8 << 20;
/// At most this many bytes of file data wait for the writers at any time.
const IN_FLIGHT_BYTES: usize = 64 << 20;

/// A regular file for a writer thread: everything `tar` would apply, taken from the entry.
struct FileJob {
    dest: PathBuf,
    rel: PathBuf,
    data: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Seconds; 0 becomes 1 as the tar crate does (some tools choke on a zero mtime).
    mtime: i64,
    xattrs: Vec<(std::ffi::OsString, Vec<u8>)>,
}

/// What the writers share with the reading thread.
#[derive(Default)]
struct PoolState {
    /// Jobs handed out and not finished yet.
    jobs: usize,
    /// Their data bytes.
    bytes: usize,
    /// The first error a writer hit (later jobs are skipped).
    err: Option<anyhow::Error>,
    /// No more jobs will come.
    closed: bool,
    queue: std::collections::VecDeque<FileJob>,
}

/// A pool of writer threads for the regular files of a layer. Creating a file's inode is
/// what unpacking spends its time on (tens of µs each on ext4, most of it in the kernel's
/// inode allocator), and it runs in parallel across files: one reader parses the tar, the
/// writers create, fill, chown, chmod and date the files.
struct Pool {
    state: std::sync::Mutex<PoolState>,
    /// Signalled when a job is queued or the pool closes (writers wait on it).
    work: std::sync::Condvar,
    /// Signalled when a job finishes (the reader waits on it for room or for a flush).
    done: std::sync::Condvar,
    umask: u32,
}

impl Pool {
    fn new() -> Pool {
        Pool {
            state: Default::default(),
            work: Default::default(),
            done: Default::default(),
            umask: current_umask(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a job, waiting while too much data is in flight. Fails with a writer's error.
    fn submit(&self, job: FileJob) -> Result<()> {
        let mut st = self.lock();
        while st.err.is_none() && st.jobs > 0 && st.bytes + job.data.len() > IN_FLIGHT_BYTES {
            st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if let Some(e) = st.err.take() {
            return Err(e);
        }
        st.jobs += 1;
        st.bytes += job.data.len();
        st.queue.push_back(job);
        drop(st);
        self.work.notify_one();
        Ok(())
    }

    /// Wait until every queued file is written; the first writer error, if any.
    fn flush(&self) -> Result<()> {
        let mut st = self.lock();
        while st.jobs > 0 {
            st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        match st.err.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
    }

    /// A writer thread's loop.
    fn writer(&self) {
        loop {
            let job = {
                let mut st = self.lock();
                loop {
                    if let Some(j) = st.queue.pop_front() {
                        break j;
                    }
                    if st.closed {
                        return;
                    }
                    st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            let len = job.data.len();
            let failed = self.lock().err.is_some();
            let r = if failed {
                Ok(())
            } else {
                write_file(&job, self.umask)
                    .with_context(|| format!("unpacking {}", job.rel.display()))
            };
            let mut st = self.lock();
            st.jobs -= 1;
            st.bytes -= len;
            if let Err(e) = r {
                st.err.get_or_insert(e);
            }
            drop(st);
            self.done.notify_all();
        }
    }
}

/// The process umask (read from /proc: `umask(2)` cannot read it without setting it, which
/// would race with other threads creating files).
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Write one regular file as `tar::Entry::unpack` would: a new file (never through a symlink),
/// owner, then mode (after the owner: chown clears set-id bits), then xattrs (chown clears
/// `security.capability` too), then the times (atime = mtime, as the tar crate sets them).
fn write_file(job: &FileJob, umask: u32) -> Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(job.mode & 0o777)
        .open(&job.dest)?;
    f.write_all(&job.data)?;
    let fd = f.as_raw_fd();
    // SAFETY: fd is an open file owned by `f`; fchown has no memory side effects.
    if unsafe { libc::fchown(fd, job.uid, job.gid) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    // open() applied the umask and no set-id bits survive fchown: set the mode exactly
    // unless open() already did.
    if job.mode & (umask | 0o7000) != 0 {
        f.set_permissions(fs::Permissions::from_mode(job.mode))?;
    }
    for (k, v) in &job.xattrs {
        let name = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(k.as_os_str()))?;
        // SAFETY: fd is open, name is NUL-terminated, v is a valid buffer of v.len() bytes.
        if unsafe { libc::fsetxattr(fd, name.as_ptr(), v.as_ptr().cast(), v.len(), 0) } != 0 {
            return Err(io::Error::last_os_error()).with_context(|| {
                format!(
                    "setting the extended attribute {} on {}",
                    k.to_string_lossy(),
                    job.dest.display()
                )
            });
        }
    }
    let t = libc::timespec {
        tv_sec: job.mtime,
        tv_nsec: 0,
    };
    // SAFETY: fd is open; the array holds two valid timespecs.
    if unsafe { libc::futimens(fd, [t, t].as_ptr()) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

/// The `SCHILY.xattr.*` records of an entry's pax header (what the tar crate applies).
fn entry_xattrs<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<Vec<(std::ffi::OsString, Vec<u8>)>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    if let Some(exts) = e.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if let Some(k) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                out.push((
                    std::ffi::OsStr::from_bytes(k).to_os_string(),
                    ext.value_bytes().to_vec(),
                ));
            }
        }
    }
    Ok(out)
}

/// Is `rel` or one of its parents among the paths whose writes may still be pending?
fn touches_pending(pending: &std::collections::HashSet<PathBuf>, rel: &Path) -> bool {
    !pending.is_empty() && rel.ancestors().any(|a| pending.contains(a))
}

/// Apply one layer (a tar stream) onto `root`, honouring OCI whiteouts:
/// `dir/.wh.NAME` deletes `dir/NAME` from the layers below, `dir/.wh..wh..opq` empties `dir`
/// of everything from below. Entries are applied in order; an opaque marker only removes what
/// existed before this layer (entries of this layer already written are kept).
///
/// Regular files are written by a pool of threads (one per CPU, at least two) while this
/// thread reads on. Order still holds where it matters: directories, links and whiteouts are
/// applied by this thread, and before anything touches a path (or a parent of it) whose file
/// may still be in a writer's queue, the queue is drained. Nothing is fsynced here: the
/// store syncs the whole filesystem once, before the image is renamed into place.
pub fn apply_layer(r: impl Read, root: &Path) -> Result<()> {
    let pool = Pool::new();
    let writers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    std::thread::scope(|s| {
        for _ in 0..writers {
            s.spawn(|| pool.writer());
        }
        let r = apply_entries(r, root, &pool).and_then(|()| pool.flush());
        pool.close();
        r
    })
}

fn apply_entries(r: impl Read, root: &Path, pool: &Pool) -> Result<()> {
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_unpack_xattrs(true);
    ar.set_overwrite(true);
    // Paths written by this layer, so an opaque marker seen after them spares them.
    let mut written: BTreeSet<PathBuf> = BTreeSet::new();
    let mut dirs: Vec<(PathBuf, tar::Header)> = Vec::new();
    let mut verified: BTreeSet<PathBuf> = BTreeSet::new();
    // Files handed to the writers since the last flush.
    let mut pending: std::collections::HashSet<PathBuf> = Default::default();
    let flush = |pending: &mut std::collections::HashSet<PathBuf>| -> Result<()> {
        if !pending.is_empty() {
            pool.flush()?;
            pending.clear();
        }
        Ok(())
    };
    for entry in ar.entries().context("reading tar entries")? {
        let mut e = entry.context("reading tar entry")?;
        let raw = e.path()?.into_owned();
        let rel = safe_rel(&raw)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let fname = rel
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        let kind = e.header().entry_type();
        // Whiteouts remove and hard links read what is already there: every queued file must
        // be on disk first. So must a path (or a parent) a queued file is being written to.
        if fname.starts_with(".wh.") || kind.is_hard_link() || touches_pending(&pending, &rel) {
            flush(&mut pending)?;
        }
        check_no_symlink_parents(root, &rel, &mut verified)?;
        if fname == ".wh..wh..opq" {
            let d = root.join(&parent);
            verified.clear();
            if let Ok(rd) = fs::read_dir(&d) {
                for ent in rd {
                    let ent = ent?;
                    let child = parent.join(ent.file_name());
                    if !written.contains(&child) {
                        crate::sys::remove_any(&ent.path()).with_context(|| {
                            format!("opaque whiteout: removing {}", ent.path().display())
                        })?;
                    }
                }
            }
            continue;
        }
        if let Some(target) = fname.strip_prefix(".wh.") {
            verified.clear();
            crate::sys::remove_any(&root.join(&parent).join(target))
                .with_context(|| format!("whiteout {}", rel.display()))?;
            continue;
        }
        let dest = root.join(&rel);
        // Replace whatever is there unless both are directories (then merge).
        if let Ok(m) = fs::symlink_metadata(&dest) {
            if !(m.is_dir() && kind.is_dir()) {
                verified.clear();
                crate::sys::remove_any(&dest)?;
            }
        }
        if let Some(p) = dest.parent() {
            if !p.is_dir() {
                fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
            }
        }
        if kind.is_hard_link() {
            let link = e
                .link_name()?
                .ok_or_else(|| anyhow!("hard link {} without target", rel.display()))?;
            let src = root.join(safe_rel(&link)?);
            fs::hard_link(&src, &dest)
                .with_context(|| format!("hard link {} -> {}", dest.display(), src.display()))?;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            // The tar crate writes device nodes as empty regular files; make the real thing.
            make_node(&e, kind, &dest)
                .with_context(|| format!("creating device node {}", rel.display()))?;
        } else if (kind == tar::EntryType::Regular || kind == tar::EntryType::Continuous)
            && e.size() <= SMALL_FILE
        {
            let h = e.header();
            let (mode, uid, gid, mtime) = (h.mode()?, h.uid()?, h.gid()?, h.mtime()?);
            let xattrs = entry_xattrs(&mut e)?;
            let mut data = Vec::with_capacity(e.size() as usize);
            e.read_to_end(&mut data)
                .with_context(|| format!("reading {}", rel.display()))?;
            pool.submit(FileJob {
                dest: dest.clone(),
                rel: rel.clone(),
                data,
                mode: mode & 0o7777,
                uid: u32::try_from(uid).with_context(|| format!("{}: uid {uid}", rel.display()))?,
                gid: u32::try_from(gid).with_context(|| format!("{}: gid {gid}", rel.display()))?,
                mtime: mtime.max(1) as i64,
                xattrs,
            })?;
            pending.insert(rel.clone());
        } else {
            e.unpack(&dest)
                .with_context(|| format!("unpacking {}", rel.display()))?;
        }
        if kind.is_dir() {
            // Directory modes/times are set last: a read-only dir must still receive its children.
            dirs.push((dest.clone(), e.header().clone()));
        }
        written.insert(rel);
    }
    flush(&mut pending)?;
    for (d, h) in dirs.into_iter().rev() {
        if let Ok(mode) = h.mode() {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&d, fs::Permissions::from_mode(mode & 0o7777))
                .with_context(|| format!("chmod {}", d.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match content {
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(c.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, c.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_and_opaque_dirs() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        apply_layer(
            &layer(&[
                ("a/", None),
                ("a/keep", Some("1")),
                ("a/gone", Some("2")),
                ("o/", None),
                ("o/old", Some("3")),
            ])[..],
            root,
        )
        .unwrap();
        apply_layer(
            &layer(&[
                ("a/.wh.gone", Some("")),
                ("o/", None),
                ("o/new", Some("4")),
                ("o/.wh..wh..opq", Some("")),
            ])[..],
            root,
        )
        .unwrap();
        assert!(root.join("a/keep").exists());
        assert!(!root.join("a/gone").exists());
        assert!(
            !root.join("o/old").exists(),
            "opaque dir keeps lower content"
        );
        assert_eq!(
            fs::read_to_string(root.join("o/new")).unwrap(),
            "4",
            "opaque marker removed this layer's file"
        );
    }

    /// The writer threads must give what a sequential unpack gives: a path written twice keeps
    /// the later entry, a file replaced by a directory gets its children, a hard link and a
    /// whiteout see the files queued before them, and owner, set-id mode, xattr and mtime are
    /// all applied (the mode after the chown, which clears set-id bits).
    #[test]
    fn parallel_writers_keep_entry_order_and_metadata() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let mut b = tar::Builder::new(Vec::new());
        let header = |kind: tar::EntryType, size: usize, mode: u32, uid: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(size as u64);
            h.set_mode(mode);
            h.set_uid(uid);
            h.set_gid(uid);
            h.set_mtime(1_000_000);
            h
        };
        let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, body: &[u8], mode: u32, uid: u64| {
            let mut h = header(tar::EntryType::Regular, body.len(), mode, uid);
            b.append_data(&mut h, path, body).unwrap();
        };
        for i in 0..200 {
            file(
                &mut b,
                &format!("many/f{i}"),
                format!("{i}").as_bytes(),
                0o644,
                0,
            );
        }
        file(&mut b, "twice", b"first", 0o644, 0);
        file(&mut b, "twice", b"second", 0o600, 0);
        file(&mut b, "becomes-dir", b"file", 0o644, 0);
        let mut d = header(tar::EntryType::Directory, 0, 0o755, 0);
        b.append_data(&mut d, "becomes-dir", &[][..]).unwrap();
        file(&mut b, "becomes-dir/child", b"c", 0o644, 0);
        file(&mut b, "linked", b"L", 0o644, 0);
        let mut l = header(tar::EntryType::Link, 0, 0o644, 0);
        b.append_link(&mut l, "hardlink", "linked").unwrap();
        file(&mut b, "gone", b"g", 0o644, 0);
        file(&mut b, ".wh.gone", b"", 0o644, 0);
        file(&mut b, "suid", b"s", 0o4755, 1000);
        // A pax xattr record, as `tar --xattrs` writes it.
        let mut p = tar::Header::new_ustar();
        p.set_entry_type(tar::EntryType::XHeader);
        let rec = b"30 SCHILY.xattr.trusted.k=val\n";
        p.set_size(rec.len() as u64);
        b.append_data(&mut p, "PaxHeader", &rec[..]).unwrap();
        file(&mut b, "with-xattr", b"x", 0o640, 0);
        // Bigger than SMALL_FILE: written by the reading thread, streamed.
        let big = vec![7u8; (SMALL_FILE + 1) as usize];
        file(&mut b, "big", &big, 0o644, 0);
        let data = b.into_inner().unwrap();
        apply_layer_stream(&data[..], root).unwrap();

        for i in 0..200 {
            assert_eq!(
                fs::read_to_string(root.join(format!("many/f{i}"))).unwrap(),
                format!("{i}")
            );
        }
        assert_eq!(fs::read_to_string(root.join("twice")).unwrap(), "second");
        assert_eq!(
            fs::metadata(root.join("twice")).unwrap().mode() & 0o7777,
            0o600
        );
        assert_eq!(
            fs::read_to_string(root.join("becomes-dir/child")).unwrap(),
            "c"
        );
        let (a, h) = (
            fs::metadata(root.join("linked")).unwrap(),
            fs::metadata(root.join("hardlink")).unwrap(),
        );
        assert_eq!((a.ino(), a.nlink()), (h.ino(), 2));
        assert!(!root.join("gone").exists());
        let m = fs::metadata(root.join("suid")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1000, 0o4755));
        assert_eq!(m.mtime(), 1_000_000);
        let x = fs::metadata(root.join("with-xattr")).unwrap();
        assert_eq!(x.mode() & 0o7777, 0o640);
        // trusted.* (root only): ext4 and tmpfs both keep it, unlike user.* on older tmpfs.
        let mut buf = [0u8; 16];
        let c = std::ffi::CString::new(
            root.join("with-xattr")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        let k = std::ffi::CString::new("trusted.k").unwrap();
        // SAFETY: valid C strings and buffer.
        let n =
            unsafe { libc::getxattr(c.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(n, 3, "xattr trusted.k: {}", io::Error::last_os_error());
        assert_eq!(&buf[..3], b"val");
        assert_eq!(
            fs::metadata(root.join("big")).unwrap().len(),
            SMALL_FILE + 1
        );
    }

    #[test]
    fn symlinked_parent_is_refused_even_after_the_dir_was_seen() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_mode(0o644);
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h.clone(), "d/f", &b"1"[..]).unwrap();
        // Replace d with a symlink to outside, then write through it.
        let mut l = tar::Header::new_gnu();
        l.set_uid(0);
        l.set_gid(0);
        l.set_mtime(0);
        l.set_mode(0o777);
        l.set_size(0);
        l.set_entry_type(tar::EntryType::Symlink);
        b.append_link(&mut l, "d", outside.path()).unwrap();
        b.append_data(&mut h, "d/escape", &b"1"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let e = apply_layer(&data[..], t.path()).unwrap_err();
        assert!(
            format!("{e:#}").contains("goes through the symlink"),
            "{e:#}"
        );
        assert!(!outside.path().join("escape").exists());
    }

    #[test]
    fn escaping_entries_are_rejected() {
        assert!(safe_rel(Path::new("../etc/passwd")).is_err());
        assert_eq!(
            safe_rel(Path::new("/./etc/passwd")).unwrap(),
            PathBuf::from("etc/passwd")
        );
    }

    #[test]
    fn compressed_layers() {
        let raw = layer(&[("f", Some("x"))]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &raw).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&raw[..], 1).unwrap();
        for data in [raw.clone(), gz, zs] {
            let t = tempfile::tempdir().unwrap();
            apply_layer(decompress(&data[..]).unwrap(), t.path()).unwrap();
            assert_eq!(fs::read_to_string(t.path().join("f")).unwrap(), "x");
            let t = tempfile::tempdir().unwrap();
            apply_layer_stream(&data[..], t.path()).unwrap();
            assert_eq!(fs::read_to_string(t.path().join("f")).unwrap(), "x");
        }
    }
}
