//! Task caches as Concourse's cache volumes: every run gets a copy-on-write view of the cache
//! and, if it succeeds, its result becomes the cache (the last successful run wins; a failed run
//! changes nothing). Concurrent runs never see each other's writes.
//!
//! ```text
//! caches/<key>/lock            flock: taken briefly to read or switch `current`
//!              current         symlink → gens/<gen>, the committed cache
//!              gens/<gen>/     immutable generations, <gen> = <run id>-<space>
//!              gens/.new-<id>  a commit being assembled
//! ```
//!
//! A run holds a shared flock on the generation it mounted (as the overlay's lower layer) for
//! as long as it lives; generations that are not `current` and not locked are removed. A
//! commit links the run's base generation into a new one (hard links: no data copied) and
//! applies the overlay's upper layer to it (whiteouts delete, opaque directories replace);
//! files are never modified in place, so generations sharing inodes stay immutable. A cache in
//! the other id space than the run needs (privileged ↔ unprivileged) is converted by a
//! shifted copy into a new generation.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::plan::CachePlan;
use crate::shift::{self, Shift};

/// Mount options of a cache view: every change must show in the upper layer as plain files,
/// whiteouts and opaque directories (no directory renames by redirect, no metadata-only
/// copy-ups), so that [`commit`] can apply it.
pub const OVERLAY_OPTIONS: &str = "redirect_dir=off,metacopy=off,index=off";

/// A run's hold on a cache generation (released when dropped).
pub struct Lease {
    /// The generation mounted as the view's lower layer.
    pub lower: PathBuf,
    dir: PathBuf,
    _hold: fs::File,
}

fn flock(f: &fs::File, op: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid open fd; flock has no memory side effects.
    if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The cache's lock, held exclusively until dropped.
fn lock(dir: &Path) -> Result<fs::File> {
    fs::create_dir_all(dir.join("gens")).with_context(|| format!("creating {}", dir.display()))?;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .with_context(|| format!("opening {}/lock", dir.display()))?;
    flock(&f, libc::LOCK_EX).with_context(|| format!("locking {}", dir.display()))?;
    Ok(f)
}

fn current(dir: &Path) -> Option<String> {
    fs::read_link(dir.join("current"))
        .ok()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

fn set_current(dir: &Path, gen: &str) -> Result<()> {
    let tmp = dir.join(format!(".current-{}", crate::sys::random_hex(4)));
    std::os::unix::fs::symlink(Path::new("gens").join(gen), &tmp)
        .and_then(|()| fs::rename(&tmp, dir.join("current")))
        .with_context(|| format!("switching {}/current to {gen}", dir.display()))
}

/// The space a generation is in, from its name (`<id>-host`, `<id>-ns-<max>`).
fn space_of(gen: &str) -> &str {
    gen.split_once('-').map_or("", |(_, s)| s)
}

/// Remove generations no run holds, except `current`. Called with the lock held.
fn prune(dir: &Path) {
    let cur = current(dir);
    let Ok(rd) = fs::read_dir(dir.join("gens")) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if Some(&name) == cur.as_ref() {
            continue;
        }
        if let Some(rest) = name.strip_prefix(".new-") {
            // A commit in progress, or one whose worker died mid-way.
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()) {
                continue;
            }
        } else if let Ok(f) = fs::File::open(e.path()) {
            if flock(&f, libc::LOCK_EX | libc::LOCK_NB).is_err() {
                continue; // a run's lower layer
            }
        }
        let _ = fs::remove_dir_all(e.path());
    }
}

/// Caches made before generations existed were the directory itself, with their space in
/// `<key>.ids`: move such a cache into `gens/` as the current generation.
fn migrate(dir: &Path) -> Result<()> {
    let mut ids = dir.as_os_str().to_owned();
    ids.push(".ids");
    let ids = PathBuf::from(ids);
    if !dir.exists() || dir.join("gens").is_dir() && !ids.exists() {
        return Ok(());
    }
    let space = fs::read_to_string(&ids)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let old = dir.with_extension(format!("old-{}", crate::sys::random_hex(4)));
    fs::rename(dir, &old).with_context(|| format!("moving {}", dir.display()))?;
    fs::create_dir_all(dir.join("gens"))?;
    let gen = format!("legacy-{space}");
    fs::rename(&old, dir.join("gens").join(&gen))?;
    set_current(dir, &gen)?;
    let _ = fs::remove_file(&ids);
    Ok(())
}

/// Take the cache's current generation for run `run_id`, in the space the plan needs (made
/// empty, owned by `owner`, if the cache is new; converted by a shifted copy if it is in the
/// other space). Returns the lease and what was done worth reporting.
pub fn acquire(c: &CachePlan, run_id: &str, owner: (u32, u32)) -> Result<(Lease, Option<String>)> {
    migrate(&c.dir)?;
    let _lock = lock(&c.dir)?;
    let gens = c.dir.join("gens");
    let mut note = None;
    let gen = match current(&c.dir).filter(|g| gens.join(g).is_dir()) {
        None => {
            // Generation names: <run id>-… committed by that run, <run id>e-… made empty,
            // <run id>x-… converted for it.
            let g = format!("{run_id}e-{}", c.space);
            let p = gens.join(&g);
            fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
            crate::sys::lchown(&p, owner.0, owner.1)?;
            set_current(&c.dir, &g)?;
            g
        }
        Some(g) if space_of(&g) == c.space => g,
        Some(g) => {
            let have = space_of(&g).to_string();
            let t = std::time::Instant::now();
            let shift = match c.space.strip_prefix("ns-").and_then(|m| m.parse().ok()) {
                Some(max) => Shift::ToNs(max),
                None => Shift::ToHost(
                    have.strip_prefix("ns-")
                        .and_then(|m| m.parse().ok())
                        .unwrap_or(u32::MAX - 1),
                ),
            };
            let new = format!("{run_id}x-{}", c.space);
            let tmp = gens.join(format!(".new-{}-{run_id}", std::process::id()));
            shift::copy_tree(&gens.join(&g), &tmp, shift)
                .with_context(|| format!("converting cache {}", c.path))?;
            fs::rename(&tmp, gens.join(&new))?;
            set_current(&c.dir, &new)?;
            note = Some(format!(
                "converted from {have} to {} space ({:.2}s)",
                c.space,
                t.elapsed().as_secs_f64()
            ));
            new
        }
    };
    let lower = gens.join(&gen);
    let hold = fs::File::open(&lower).with_context(|| format!("opening {}", lower.display()))?;
    flock(&hold, libc::LOCK_SH).with_context(|| format!("locking {}", lower.display()))?;
    prune(&c.dir);
    Ok((
        Lease {
            lower,
            dir: c.dir.clone(),
            _hold: hold,
        },
        note,
    ))
}

/// Make the run's view the cache: a new generation = the base linked + the upper layer
/// applied, then `current` switches to it. The view must be unmounted first.
pub fn commit(lease: &Lease, c: &CachePlan, run_id: &str) -> Result<()> {
    let upper = c.layers.join("rw/upper");
    let gens = c.dir.join("gens");
    let tmp = gens.join(format!(".new-{}-{run_id}", std::process::id()));
    link_tree(&lease.lower, &tmp).with_context(|| format!("committing cache {}", c.path))?;
    // The view's root is the upper dir: its owner and mode are the cache root's.
    copy_meta(&upper, &tmp)?;
    apply_upper(&upper, &tmp).with_context(|| format!("committing cache {}", c.path))?;
    let _lock = lock(&lease.dir)?;
    let gen = format!("{run_id}-{}", c.space);
    fs::rename(&tmp, gens.join(&gen)).with_context(|| format!("committing cache {}", c.path))?;
    set_current(&lease.dir, &gen)?;
    prune(&lease.dir);
    Ok(())
}

/// Remove generations nobody holds and commits whose worker died (for `gc`).
pub fn gc(caches: &Path) {
    if let Ok(rd) = fs::read_dir(caches) {
        for e in rd.flatten() {
            if e.path().join("gens").is_dir() {
                if let Ok(_l) = lock(&e.path()) {
                    prune(&e.path());
                }
            }
        }
    }
}

/// A tree of hard links to `src` at `dst` (directories made, with their owners and modes).
fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir(dst).with_context(|| format!("creating {}", dst.display()))?;
    copy_meta(src, dst)?;
    for e in fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let e = e?;
        let (s, d) = (e.path(), dst.join(e.file_name()));
        if e.file_type()?.is_dir() {
            link_tree(&s, &d)?;
        } else {
            fs::hard_link(&s, &d)
                .with_context(|| format!("linking {} to {}", d.display(), s.display()))?;
        }
    }
    let m = fs::symlink_metadata(src)?;
    crate::sys::set_times(dst, &m)
}

/// Owner and mode of `src` onto the directory `dst`.
fn copy_meta(src: &Path, dst: &Path) -> Result<()> {
    let m = fs::symlink_metadata(src).with_context(|| format!("{}", src.display()))?;
    crate::sys::lchown(dst, m.uid(), m.gid())?;
    fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))
        .with_context(|| format!("chmod {}", dst.display()))
}

fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 16];
    // SAFETY: valid C strings and a buffer of the given length.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

/// Drop overlayfs' own `trusted.overlay.*` bookkeeping from an entry moved out of an upper
/// layer: in a generation that becomes a lower layer it would be misread.
fn strip_overlay_xattrs(p: &Path) {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return;
    };
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C string and buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return;
    }
    for name in buf[..n as usize].split(|b| *b == 0) {
        if name.starts_with(b"trusted.overlay.") {
            if let Ok(nc) = std::ffi::CString::new(name) {
                // SAFETY: valid C strings.
                unsafe { libc::lremovexattr(c.as_ptr(), nc.as_ptr()) };
            }
        }
    }
}

fn remove_any(p: &Path) -> Result<()> {
    crate::sys::remove_any(p).with_context(|| format!("removing {}", p.display()))
}

/// Apply an overlay upper layer onto `dst`: a whiteout (a 0:0 character device) deletes, an
/// opaque directory replaces, a directory merges, anything else replaces (moved, not copied).
fn apply_upper(upper: &Path, dst: &Path) -> Result<()> {
    for e in fs::read_dir(upper).with_context(|| format!("reading {}", upper.display()))? {
        let e = e?;
        let (u, d) = (e.path(), dst.join(e.file_name()));
        let m = fs::symlink_metadata(&u)?;
        let ft = m.file_type();
        if std::os::unix::fs::FileTypeExt::is_char_device(&ft) && m.rdev() == 0 {
            remove_any(&d)?;
        } else if ft.is_dir() {
            let opaque = getxattr(&u, "trusted.overlay.opaque").as_deref() == Some(b"y");
            let keep = !opaque && fs::symlink_metadata(&d).is_ok_and(|x| x.is_dir());
            if !keep {
                remove_any(&d)?;
                fs::create_dir(&d).with_context(|| format!("creating {}", d.display()))?;
            }
            copy_meta(&u, &d)?;
            apply_upper(&u, &d)?;
            crate::sys::set_times(&d, &m)?;
        } else {
            remove_any(&d)?;
            fs::rename(&u, &d)
                .with_context(|| format!("moving {} to {}", u.display(), d.display()))?;
            strip_overlay_xattrs(&d);
        }
    }
    Ok(())
}
