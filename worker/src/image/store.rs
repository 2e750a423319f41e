//! The image store under `<work-dir>/images/`: `<key>/rootfs/` and `<key>/image.json`
//! (source, names, the OCI config's run settings), plus the uid-shifted copies unprivileged
//! runs use without idmapped mounts (`<key>/rootfs-ns-<max>/`, `<work-dir>/shifted/`).
//!
//! Everything is written in a temporary directory and renamed into place, so a crash never
//! leaves a half image under a real key.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::oci::{sha256_hex, ImageConfig};

/// `image.json` in the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Store key: `sha256-<hex>` of the manifest (OCI) or of the tarball.
    pub key: String,
    /// Where it was imported from.
    pub source: String,
    /// Names it can be found by (`busybox`, `busybox:latest`).
    #[serde(default)]
    pub names: Vec<String>,
    /// Run settings from the image config.
    #[serde(default)]
    pub config: ImageConfig,
}

/// A resolved image: a root filesystem to use as the read-only lower layer.
#[derive(Debug, Clone)]
pub struct Image {
    pub rootfs: PathBuf,
    pub config: ImageConfig,
    /// Human description (store key or path), for messages.
    pub id: String,
    /// Pulled from a registry (its tag is checked again on every run).
    pub pulled: bool,
}

/// The image store under `<work-dir>/images`.
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store at `<work_dir>/images`.
    pub fn new(work_dir: &Path) -> Store {
        Store {
            root: work_dir.join("images"),
        }
    }

    /// `<work-dir>/images`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn records(&self) -> Result<Vec<ImageRecord>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.root.display())),
        };
        for ent in rd {
            let ent = ent?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let p = ent.path().join("image.json");
            if let Ok(data) = fs::read(&p) {
                let rec: ImageRecord = serde_json::from_slice(&data)
                    .with_context(|| format!("parsing {}", p.display()))?;
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// All stored images.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        self.records()
    }

    fn image_of(&self, rec: &ImageRecord) -> Image {
        Image {
            rootfs: self.root.join(&rec.key).join("rootfs"),
            config: rec.config.clone(),
            id: rec.key.clone(),
            pulled: rec.source.starts_with("docker://"),
        }
    }

    /// Find a stored image by key (`sha256-…`/`sha256:…`, or a unique prefix) or by name.
    pub fn find(&self, what: &str) -> Result<Option<Image>> {
        let want = normalize_name(what);
        let key = what.replace(':', "-");
        let recs = self.records()?;
        if let Some(r) = recs
            .iter()
            .find(|r| r.names.iter().any(|n| normalize_name(n) == want))
        {
            return Ok(Some(self.image_of(r)));
        }
        let by_key: Vec<_> = recs
            .iter()
            .filter(|r| r.key == key || (key.len() >= 12 && r.key.starts_with(&key)))
            .collect();
        match by_key.len() {
            0 => Ok(None),
            1 => Ok(Some(self.image_of(by_key[0]))),
            _ => bail!("image {what:?} is ambiguous"),
        }
    }

    /// Remove a stored image by name or key.
    pub fn remove(&self, what: &str) -> Result<String> {
        let img = self.find(what)?.ok_or_else(|| {
            anyhow!(
                "image {what:?} is not in the store ({})",
                self.root.display()
            )
        })?;
        let dir = self.root.join(&img.id);
        crate::sys::umount_all_under(&dir)?;
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        Ok(img.id)
    }

    /// Unpack into a temp dir with `fill`, write image.json, rename into `<key>`; if the key
    /// already exists only add the name.
    pub fn store_as(
        &self,
        key: &str,
        source: &str,
        name: Option<&str>,
        config: ImageConfig,
        fill: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Image> {
        let final_dir = self.root.join(key);
        let rec_path = final_dir.join("image.json");
        if rec_path.exists() {
            let mut rec: ImageRecord = serde_json::from_slice(&fs::read(&rec_path)?)
                .with_context(|| format!("parsing {}", rec_path.display()))?;
            if let Some(n) = name {
                self.untag(n)?;
                if !rec.names.iter().any(|x| x == n) {
                    rec.names.push(n.to_string());
                    fs::write(&rec_path, serde_json::to_vec_pretty(&rec)?)?;
                }
            }
            return Ok(self.image_of(&rec));
        }
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        let tmp = tempdir_in(&self.root, ".import-")?;
        let r = (|| {
            let rootfs = tmp.join("rootfs");
            fs::create_dir(&rootfs)?;
            fill(&rootfs)?;
            // One sync of the whole filesystem instead of an fsync per file: the image must be
            // on disk before its key names it (a crash then never leaves a key whose files
            // are empty), and what was just unpacked is most of what is dirty anyway.
            syncfs(&rootfs)?;
            if let Some(n) = name {
                self.untag(n)?;
            }
            let rec = ImageRecord {
                key: key.to_string(),
                source: source.to_string(),
                names: name.map(|n| vec![n.to_string()]).unwrap_or_default(),
                config,
            };
            fs::write(tmp.join("image.json"), serde_json::to_vec_pretty(&rec)?)?;
            fs::rename(&tmp, &final_dir)
                .with_context(|| format!("moving the image into {}", final_dir.display()))?;
            Ok(self.image_of(&rec))
        })();
        if r.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        r
    }

    /// The uid-shifted ("namespaced") copy of `img`'s root filesystem, for unprivileged runs
    /// without idmapped mounts: every owner mapped host → namespaced space (root → `max`), made
    /// once and cached. Returns the copy and whether this call made it.
    ///
    /// A stored image never changes, so its copy sits next to it as `<key>/rootfs-ns-<max>/`.
    /// A rootfs directory used in place can change under us, so its copy is keyed by the
    /// directory's path and a [`fingerprint`](crate::shift::fingerprint) of the whole tree:
    /// `<work-dir>/shifted/<sha(path)>/<fingerprint>-<max>/`; a changed directory gets a new
    /// copy and the old ones go once no mount uses them.
    pub fn shifted_rootfs(&self, img: &Image, max: u32) -> Result<(PathBuf, bool)> {
        let (parent, name) = match img.rootfs.strip_prefix(&self.root) {
            Ok(rel) if rel.ends_with("rootfs") && rel.components().count() == 2 => (
                img.rootfs.parent().expect("key dir").to_path_buf(),
                format!("rootfs-ns-{max}"),
            ),
            _ => {
                let path_key = sha256_hex(img.rootfs.as_os_str().as_encoded_bytes());
                let dir = self
                    .root
                    .parent()
                    .unwrap_or(&self.root)
                    .join("shifted")
                    .join(&path_key[..16]);
                let fp = crate::shift::fingerprint(&img.rootfs).with_context(|| {
                    format!(
                        "fingerprinting the rootfs directory {}",
                        img.rootfs.display()
                    )
                })?;
                (dir, format!("{fp}-{max}"))
            }
        };
        let dst = parent.join(&name);
        if dst.is_dir() {
            return Ok((dst, false));
        }
        fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        remove_dead_temps(&parent);
        if parent.parent().is_some_and(|p| p.ends_with("shifted")) {
            // For `gc`: which directory these copies are of.
            fs::write(
                parent.join("source"),
                img.rootfs.as_os_str().as_encoded_bytes(),
            )
            .with_context(|| format!("writing {}", parent.join("source").display()))?;
        }
        let tmp = parent.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            crate::sys::random_hex(4)
        ));
        let r = crate::shift::copy_tree(&img.rootfs, &tmp, crate::shift::Shift::ToNs(max))
            .with_context(|| format!("making the shifted copy of {}", img.rootfs.display()));
        if let Err(e) = r {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if fs::rename(&tmp, &dst).is_err() {
            // Another run made it first: use theirs.
            let _ = fs::remove_dir_all(&tmp);
            if !dst.is_dir() {
                bail!("could not move the shifted copy into {}", dst.display());
            }
            return Ok((dst, false));
        }
        if parent.parent().is_some_and(|p| p.ends_with("shifted")) {
            // Older copies of a changed directory, unless a run still has one as a layer.
            let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            for e in fs::read_dir(&parent).into_iter().flatten().flatten() {
                let p = e.path();
                let n = e.file_name().to_string_lossy().into_owned();
                if n != name
                    && n != "source"
                    && !n.starts_with('.')
                    && !mounts.contains(&*p.to_string_lossy())
                {
                    let _ = fs::remove_dir_all(&p);
                }
            }
        }
        Ok((dst, true))
    }

    /// `gc`: remove shifted copies of rootfs directories that no longer exist, and copies
    /// half-made by a crashed worker. Copies a run still mounts are kept. Returns what went.
    pub fn gc_shifted(&self) -> Result<Vec<PathBuf>> {
        let mut gone = Vec::new();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let shifted = self.root.parent().unwrap_or(&self.root).join("shifted");
        for e in fs::read_dir(&shifted).into_iter().flatten().flatten() {
            let dir = e.path();
            remove_dead_temps(&dir);
            let source = fs::read(dir.join("source"))
                .map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)))
                .ok();
            if source.is_some_and(|s| !s.is_dir()) && !mounts.contains(&*dir.to_string_lossy()) {
                fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
                gone.push(dir);
            }
        }
        for r in self.records()? {
            remove_dead_temps(&self.root.join(&r.key));
        }
        // Imports and pulls that were killed.
        gone.extend(remove_dead_temps(&self.root));
        Ok(gone)
    }

    /// Add `name` to the stored image `key` (moving it from any other image).
    pub fn tag(&self, key: &str, name: &str) -> Result<()> {
        self.untag(name)?;
        let p = self.root.join(key).join("image.json");
        let mut rec: ImageRecord = serde_json::from_slice(&fs::read(&p)?)
            .with_context(|| format!("parsing {}", p.display()))?;
        rec.names.push(name.to_string());
        fs::write(&p, serde_json::to_vec_pretty(&rec)?)
            .with_context(|| format!("writing {}", p.display()))
    }

    /// A name points at one image: drop it from any other.
    fn untag(&self, name: &str) -> Result<()> {
        for mut rec in self.records()? {
            let before = rec.names.len();
            rec.names
                .retain(|n| normalize_name(n) != normalize_name(name));
            if rec.names.len() != before {
                fs::write(
                    self.root.join(&rec.key).join("image.json"),
                    serde_json::to_vec_pretty(&rec)?,
                )?;
            }
        }
        Ok(())
    }
}

/// `syncfs(2)` of the filesystem holding `dir`.
fn syncfs(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let d = fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    // SAFETY: d is an open fd for the duration of the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("syncing the filesystem of {}", dir.display()));
    }
    Ok(())
}

/// The hidden temporary directories of the store: `<prefix><pid>-<start>-<hex>`, made by process
/// `pid` (shifted copies, imports, pulls, extracted archives).
const TEMP_PREFIXES: [&str; 4] = [".tmp-", ".import-", ".pull-", ".archive-"];

/// Remove the temporary directories in `dir` whose process is gone (a crash, a kill, a second
/// Ctrl-C during a pull). Returns what went.
pub fn remove_dead_temps(dir: &Path) -> Vec<PathBuf> {
    let mut gone = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = TEMP_PREFIXES.iter().find_map(|p| n.strip_prefix(p)) else {
            continue;
        };
        // `<pid>-<start>-<hex>` (crate::layout::partial_name: a reused pid is told apart
        // by its start time) or the older `<pid>-<hex>`.
        let f: Vec<&str> = rest.split('-').collect();
        let Some(pid) = f.first().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = match (f.len(), f.get(1).and_then(|t| t.parse::<u64>().ok())) {
            (3, Some(start)) => crate::sys::proc_alive(pid, start),
            _ => Path::new(&format!("/proc/{pid}")).exists(),
        };
        if !alive && fs::remove_dir_all(e.path()).is_ok() {
            gone.push(e.path());
        }
    }
    gone
}

/// `busybox` and `busybox:latest` are the same name.
pub fn normalize_name(n: &str) -> String {
    let last = n.rsplit('/').next().unwrap_or(n);
    if last.contains(':') || n.contains('@') {
        n.to_string()
    } else {
        format!("{n}:latest")
    }
}

/// A new hidden directory `<prefix><pid>-<start>-<hex>` in `dir` (see [`remove_dead_temps`]).
pub fn tempdir_in(dir: &Path, prefix: &str) -> Result<PathBuf> {
    // Named after its process, so `gc` can remove it once that process is gone.
    let p = dir.join(crate::layout::partial_name(prefix));
    fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize_name("busybox"), "busybox:latest");
        assert_eq!(
            normalize_name("localhost:5000/busybox"),
            "localhost:5000/busybox:latest"
        );
        assert_eq!(normalize_name("busybox:1.36"), "busybox:1.36");
    }
}
