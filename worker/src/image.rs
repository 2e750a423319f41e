//! Images: where a task's root filesystem comes from, and the worker's image store.
//!
//! Accepted sources (`--image`, `images import`, the task's `rootfs_uri`/`image_resource`):
//!
//! | source | detected by | stored as |
//! |---|---|---|
//! | rootfs directory | a directory without `oci-layout` | used in place as the read-only overlay lower dir (never copied, never written) |
//! | rootfs tarball (`.tar`, gzip, zstd) | a file without an `oci-layout` member | unpacked once, keyed by the sha256 of the file |
//! | OCI image layout directory | `oci-layout` + `index.json` | unpacked once, keyed by the manifest digest |
//! | `oci-archive` tar (`podman save --format oci-archive`, `skopeo copy oci-archive:`) | a tar with an `oci-layout` member | extracted to a temp layout, then as above |
//! | a name (`busybox`, `busybox:1.36`) | not a path | looked up among the store's tagged images |
//!
//! Store layout (`<work-dir>/images/`): `<key>/rootfs/` and `<key>/image.json` (source, names,
//! the OCI config's env/user/entrypoint/cmd). Imports unpack into a temporary directory and
//! rename it into place, so a crash never leaves a half image under a real key. A run only ever
//! uses `rootfs/` as an overlay lower layer, so images are never modified by a run.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the image says about how to run it (the OCI image config's `config` object).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageConfig {
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
}

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
}

/// The image store under `<work-dir>/images`.
pub struct Store {
    root: PathBuf,
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R> HashingReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }
    /// Hex sha256 of everything read so far.
    pub fn hex(self) -> String {
        hex(&self.hasher.finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

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

impl Store {
    /// The store at `<work_dir>/images`.
    pub fn new(work_dir: &Path) -> Store {
        Store {
            root: work_dir.join("images"),
        }
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

    /// Resolve `--image` or `rootfs_uri` text: a path (dir, tar, OCI layout) or a stored name.
    pub fn resolve(&self, what: &str) -> Result<Image> {
        let p = Path::new(what);
        if p.exists() {
            return self.import(p, None);
        }
        if let Some(img) = self.find(what)? {
            return Ok(img);
        }
        let r = crate::registry::Reference::parse(what.strip_prefix("docker://").unwrap_or(what));
        let r = r.with_context(|| {
            format!(
                "image {what:?}: no such file, not in the store {}, and not an image reference",
                self.root.display()
            )
        })?;
        crate::registry::pull(self, &r, None).with_context(|| {
            format!(
                "image {what:?}: no such file and not in the store {}; pulling it from {} failed \
                 (or import it with `berth-worker images import PATH --name {what}`)",
                self.root.display(),
                r.host
            )
        })
    }

    /// Make an image usable: a rootfs directory is used in place; archives and OCI layouts are
    /// unpacked into the store (once: a second import of the same content is a lookup).
    /// `name` tags the stored image.
    pub fn import(&self, path: &Path, name: Option<&str>) -> Result<Image> {
        let meta = fs::metadata(path).with_context(|| format!("image {}", path.display()))?;
        if meta.is_dir() {
            if path.join("oci-layout").exists() {
                return self.import_oci_layout(path, &path.display().to_string(), name);
            }
            if name.is_some() {
                bail!("{}: a rootfs directory is used in place and cannot be named; import a tarball or OCI layout instead", path.display());
            }
            let abs = fs::canonicalize(path)?;
            return Ok(Image {
                rootfs: abs.clone(),
                config: ImageConfig::default(),
                id: abs.display().to_string(),
            });
        }
        if !meta.is_file() {
            bail!(
                "image {}: not a directory or a regular file",
                path.display()
            );
        }
        if tar_has_member(path, "oci-layout")? {
            fs::create_dir_all(&self.root)?;
            let tmp = tempdir_in(&self.root, ".archive-")?;
            let r = (|| {
                let f = File::open(path)?;
                let mut ar = tar::Archive::new(decompress(BufReader::new(f))?);
                ar.set_preserve_permissions(true);
                ar.unpack(&tmp)
                    .with_context(|| format!("extracting oci-archive {}", path.display()))?;
                self.import_oci_layout(&tmp, &path.display().to_string(), name)
            })();
            let _ = fs::remove_dir_all(&tmp);
            return r;
        }
        // A rootfs tarball: key = sha256 of the file.
        let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut h = Sha256::new();
        io::copy(&mut f, &mut h).with_context(|| format!("hashing {}", path.display()))?;
        let key = format!("sha256-{}", hex(&h.finalize()));
        let source = path.display().to_string();
        self.store_as(&key, &source, name, ImageConfig::default(), |rootfs| {
            f.rewind()?;
            apply_layer(decompress(BufReader::new(&mut f))?, rootfs)
                .with_context(|| format!("unpacking {}", path.display()))
        })
    }

    /// Unpack an OCI image layout: `index.json` → manifest (via an image index if needed, picking
    /// linux/amd64) → config + layers, each blob's sha256 checked against its descriptor.
    fn import_oci_layout(&self, dir: &Path, source: &str, name: Option<&str>) -> Result<Image> {
        let read_blob = |digest: &str| -> Result<Vec<u8>> {
            let p = blob_path(dir, digest)?;
            let data = fs::read(&p).with_context(|| format!("reading blob {}", p.display()))?;
            verify(digest, &sha256_hex(&data), &p)?;
            Ok(data)
        };
        let index: serde_json::Value = serde_json::from_slice(
            &fs::read(dir.join("index.json"))
                .with_context(|| format!("reading {}/index.json", dir.display()))?,
        )
        .context("parsing index.json")?;
        let mut desc =
            pick_manifest(&index, name).with_context(|| format!("{}/index.json", dir.display()))?;
        // Follow nested indexes (a multi-arch image inside a layout).
        let manifest = loop {
            let digest = desc["digest"]
                .as_str()
                .ok_or_else(|| anyhow!("index.json: manifest descriptor without digest"))?
                .to_string();
            let data = read_blob(&digest)?;
            let v: serde_json::Value = serde_json::from_slice(&data)
                .with_context(|| format!("parsing manifest {digest}"))?;
            if v.get("manifests").is_some() {
                desc = pick_manifest(&v, None).with_context(|| format!("image index {digest}"))?;
                continue;
            }
            break (digest, v);
        };
        let (mdigest, m) = manifest;
        let key = mdigest.replace(':', "-");
        let cfg_digest = m["config"]["digest"]
            .as_str()
            .ok_or_else(|| anyhow!("manifest {mdigest}: no config.digest"))?;
        let cfg: serde_json::Value =
            serde_json::from_slice(&read_blob(cfg_digest)?).context("parsing image config")?;
        let config = image_config(&cfg);
        let layers: Vec<String> = m["layers"]
            .as_array()
            .ok_or_else(|| anyhow!("manifest {mdigest}: no layers"))?
            .iter()
            .map(|l| {
                l["digest"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("manifest {mdigest}: layer without digest"))
            })
            .collect::<Result<_>>()?;
        self.store_as(&key, source, name, config, |rootfs| {
            let tty = io::IsTerminal::is_terminal(&io::stderr());
            for (i, d) in layers.iter().enumerate() {
                let p = blob_path(dir, d)?;
                if tty {
                    let mb = fs::metadata(&p)
                        .map(|m| m.len() as f64 / 1048576.0)
                        .unwrap_or(0.0);
                    eprintln!(
                        "berth-worker: unpacking layer {}/{} {} ({mb:.1} MB)",
                        i + 1,
                        layers.len(),
                        &d[..d.len().min(19)]
                    );
                }
                let f = File::open(&p).with_context(|| format!("opening layer {}", p.display()))?;
                let mut hr = HashingReader::new(BufReader::new(f));
                apply_layer(decompress(&mut hr)?, rootfs)
                    .with_context(|| format!("unpacking layer {d}"))?;
                io::copy(&mut hr, &mut io::sink())?;
                verify(d, &hr.hex(), &p)?;
            }
            Ok(())
        })
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

/// Remove `.tmp-<pid>-…` directories in `dir` whose process is gone (a crash during a copy).
pub fn remove_dead_temps(dir: &Path) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = n
            .strip_prefix(".tmp-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// `busybox` and `busybox:latest` are the same name.
fn normalize_name(n: &str) -> String {
    let last = n.rsplit('/').next().unwrap_or(n);
    if last.contains(':') || n.contains('@') {
        n.to_string()
    } else {
        format!("{n}:latest")
    }
}

fn verify(expected: &str, actual_hex: &str, what: &Path) -> Result<()> {
    verify_digest(expected, actual_hex, &what.display().to_string())
}

/// Check content against its descriptor's digest (`sha256:<hex>`).
pub fn verify_digest(expected: &str, actual_hex: &str, what: &str) -> Result<()> {
    let want = expected
        .strip_prefix("sha256:")
        .ok_or_else(|| anyhow!("unsupported digest algorithm in {expected:?} (want sha256)"))?;
    if want != actual_hex {
        bail!("{what}: digest mismatch: descriptor says sha256:{want}, content is sha256:{actual_hex}");
    }
    Ok(())
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    let (alg, hexpart) = digest
        .split_once(':')
        .ok_or_else(|| anyhow!("malformed digest {digest:?}"))?;
    if !hexpart.chars().all(|c| c.is_ascii_hexdigit()) || alg.contains('/') {
        bail!("malformed digest {digest:?}");
    }
    Ok(dir.join("blobs").join(alg).join(hexpart))
}

/// Choose a manifest from an index: the one tagged `name` (annotation
/// `org.opencontainers.image.ref.name`), else the linux/amd64 one, else the only one.
pub fn pick_manifest(index: &serde_json::Value, name: Option<&str>) -> Result<serde_json::Value> {
    let ms = index["manifests"]
        .as_array()
        .ok_or_else(|| anyhow!("no manifests"))?;
    if ms.is_empty() {
        bail!("no manifests");
    }
    if let Some(n) = name {
        let tag = n.rsplit(':').next().unwrap_or(n);
        if let Some(m) = ms
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag))
        {
            return Ok(m.clone());
        }
    }
    let fits = |m: &&serde_json::Value| {
        let p = &m["platform"];
        p.is_null() || (p["os"] == "linux" && p["architecture"] == "amd64")
    };
    let cands: Vec<_> = ms.iter().filter(fits).collect();
    match cands.first() {
        Some(m) => Ok((*m).clone()),
        None => bail!("no linux/amd64 manifest among {} entries", ms.len()),
    }
}

pub fn image_config(cfg: &serde_json::Value) -> ImageConfig {
    let c = &cfg["config"];
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    ImageConfig {
        env: strs(&c["Env"]),
        user: c["User"].as_str().unwrap_or("").to_string(),
        entrypoint: strs(&c["Entrypoint"]),
        cmd: strs(&c["Cmd"]),
        working_dir: c["WorkingDir"].as_str().unwrap_or("").to_string(),
    }
}

fn tempdir_in(dir: &Path, prefix: &str) -> Result<PathBuf> {
    let p = dir.join(format!("{prefix}{}", crate::sys::random_hex(6)));
    fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok(p)
}

fn tar_has_member(path: &Path, member: &str) -> Result<bool> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut ar = tar::Archive::new(decompress(BufReader::new(f))?);
    for e in ar
        .entries()
        .with_context(|| format!("{}: not a tar archive", path.display()))?
    {
        let e = e.with_context(|| format!("reading {}", path.display()))?;
        let p = e.path()?;
        let p = p.strip_prefix("./").unwrap_or(&p);
        if p == Path::new(member) {
            return Ok(true);
        }
    }
    Ok(false)
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

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Apply one layer (a tar stream) onto `root`, honouring OCI whiteouts:
/// `dir/.wh.NAME` deletes `dir/NAME` from the layers below, `dir/.wh..wh..opq` empties `dir`
/// of everything from below. Entries are applied in order; an opaque marker only removes what
/// existed before this layer (entries of this layer already written are kept).
pub fn apply_layer(r: impl Read, root: &Path) -> Result<()> {
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_unpack_xattrs(true);
    ar.set_overwrite(true);
    // Paths written by this layer, so an opaque marker seen after them spares them.
    let mut written: BTreeSet<PathBuf> = BTreeSet::new();
    let mut dirs: Vec<(PathBuf, tar::Header)> = Vec::new();
    let mut verified: BTreeSet<PathBuf> = BTreeSet::new();
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
        check_no_symlink_parents(root, &rel, &mut verified)?;
        if fname == ".wh..wh..opq" {
            let d = root.join(&parent);
            verified.clear();
            if let Ok(rd) = fs::read_dir(&d) {
                for ent in rd {
                    let ent = ent?;
                    let child = parent.join(ent.file_name());
                    if !written.contains(&child) {
                        remove_any(&ent.path()).with_context(|| {
                            format!("opaque whiteout: removing {}", ent.path().display())
                        })?;
                    }
                }
            }
            continue;
        }
        if let Some(target) = fname.strip_prefix(".wh.") {
            verified.clear();
            remove_any(&root.join(&parent).join(target))
                .with_context(|| format!("whiteout {}", rel.display()))?;
            continue;
        }
        let dest = root.join(&rel);
        let kind = e.header().entry_type();
        // Replace whatever is there unless both are directories (then merge).
        if let Ok(m) = fs::symlink_metadata(&dest) {
            if !(m.is_dir() && kind.is_dir()) {
                verified.clear();
                remove_any(&dest)?;
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
    for (d, h) in dirs.into_iter().rev() {
        if let Ok(mode) = h.mode() {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&d, fs::Permissions::from_mode(mode & 0o7777))
                .with_context(|| format!("chmod {}", d.display()))?;
        }
    }
    Ok(())
}

/// Is this path a char/block device or similar special file? (used by `images list` sizes)
pub fn is_special(m: &fs::Metadata) -> bool {
    let t = m.file_type();
    t.is_char_device() || t.is_block_device() || t.is_fifo() || t.is_socket()
}

/// Disk usage of a tree in bytes (for `images list`).
pub fn du(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    let mut seen = BTreeSet::new();
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if !is_special(&m) && seen.insert((m.dev(), m.ino())) {
                total += m.blocks() * 512;
            }
        }
    }
    total
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
        }
    }

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
