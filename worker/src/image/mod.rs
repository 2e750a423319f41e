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
//! | a registry reference (`host:port/repo:tag`, `docker://…`, `…@sha256:…`) | not a path, not stored | pulled (registry.rs), then as an OCI layout |
//!
//! A run only ever uses `rootfs/` as an overlay lower layer, so images are never modified by a
//! run.
//!
//! The parts, each depending only on those listed before it:
//! - [`cancel`]: stopping a pull or an import at its next read on Ctrl-C;
//! - [`layer`]: applying one layer tar onto a root filesystem (whiteouts, owners, devices);
//! - [`oci`]: digests, OCI layouts, indexes, manifests, image configs;
//! - [`store`]: the content store (`<work-dir>/images/`) and the shifted copies;
//! - [`registry`]: the Registry HTTP API client; it fetches an image into an OCI layout in a
//!   directory the caller gives (a temporary directory of the store);
//! - this module: what `--image`, `rootfs_uri` and `image_resource` resolve to, and imports.

pub mod cancel;
pub mod layer;
pub mod oci;
pub mod registry;
pub mod store;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Seek};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

pub use cancel::Cancel;
pub use oci::ImageConfig;
pub use registry::Reference;
pub use store::{Image, Store};

use layer::{apply_layer_stream, decompress};
use oci::{blob_path, hex, tar_has_member, verify, HashingReader};
use store::tempdir_in;

impl Store {
    /// Resolve `--image` or `rootfs_uri` text: a path (dir, tar, OCI layout), a stored name,
    /// or a registry reference (pulled; a stored pull of the same name is re-checked against
    /// the registry, see [`pull`]). A path-looking text that names nothing is an error naming
    /// the path, never a registry lookup.
    pub fn resolve(&self, what: &str, cancel: &Cancel) -> Result<Image> {
        let p = Path::new(what);
        if p.exists() {
            return self.import(p, None, cancel);
        }
        if looks_like_path(what) {
            bail!("image path {what}: no such file or directory");
        }
        let reference = what.strip_prefix("docker://");
        if reference.is_none() {
            if let Some(img) = self.find(what)? {
                // A store key or a local import is final; a pulled tag is asked again.
                if !img.pulled || what.starts_with("sha256") {
                    return Ok(img);
                }
            }
        }
        let r = Reference::parse(reference.unwrap_or(what)).with_context(|| {
            format!(
                "image {what:?}: no such file, not in the store {}, and not an image reference",
                self.root().display()
            )
        })?;
        pull(self, &r, None, true, cancel).with_context(|| {
            format!(
                "image {what:?}: no such file and not in the store {}; pulling it from {} failed \
                 (or import it with `berth-worker images import PATH --name {what}`)",
                self.root().display(),
                r.host
            )
        })
    }

    /// An `image_resource` (`registry-image`): a pinned `version.digest` found in the store
    /// needs no network, nor does a name imported with `images import --name`; anything else
    /// is [`pull`]ed, i.e. its tag is resolved again on every run.
    pub fn resolve_resource(
        &self,
        repository: &str,
        tag: &str,
        digest: Option<&str>,
        creds: Option<(String, String)>,
        cancel: &Cancel,
    ) -> Result<Image> {
        if let Some(d) = digest {
            if let Some(img) = self.find(d)? {
                return Ok(img);
            }
        }
        let name = format!("{repository}:{tag}");
        if digest.is_none() {
            if let Some(img) = self.find(&name)? {
                if !img.pulled {
                    return Ok(img);
                }
            }
        }
        let mut r = Reference::parse(&name)
            .with_context(|| format!("image_resource.source.repository {repository:?}"))?;
        r.digest = digest.map(str::to_string);
        pull(self, &r, creds, true, cancel).with_context(|| {
            format!("image_resource: pulling {repository} failed; import it with `berth-worker images import PATH --name {name}`, or pass --image DIR|TAR|OCI")
        })
    }

    /// Make an image usable: a rootfs directory is used in place; archives and OCI layouts are
    /// unpacked into the store (once: a second import of the same content is a lookup).
    /// `name` tags the stored image. Stops at the next read once `cancel` is set.
    pub fn import(&self, path: &Path, name: Option<&str>, cancel: &Cancel) -> Result<Image> {
        let meta = fs::metadata(path).with_context(|| format!("image {}", path.display()))?;
        if meta.is_dir() {
            if path.join("oci-layout").exists() {
                return self.import_oci_layout(path, &path.display().to_string(), name, cancel);
            }
            if name.is_some() {
                bail!("{}: a rootfs directory is used in place and cannot be named; import a tarball or OCI layout instead", path.display());
            }
            let abs = fs::canonicalize(path)?;
            return Ok(Image {
                rootfs: abs.clone(),
                config: ImageConfig::default(),
                id: abs.display().to_string(),
                pulled: false,
            });
        }
        if !meta.is_file() {
            bail!(
                "image {}: not a directory or a regular file",
                path.display()
            );
        }
        if tar_has_member(path, "oci-layout")? {
            fs::create_dir_all(self.root())?;
            let tmp = tempdir_in(self.root(), ".archive-")?;
            let r = (|| {
                let f = File::open(path)?;
                let mut ar = tar::Archive::new(decompress(cancel.reader(BufReader::new(f)))?);
                ar.set_preserve_permissions(true);
                ar.unpack(&tmp)
                    .with_context(|| format!("extracting oci-archive {}", path.display()))?;
                self.import_oci_layout(&tmp, &path.display().to_string(), name, cancel)
            })();
            let _ = fs::remove_dir_all(&tmp);
            return r;
        }
        // A rootfs tarball: key = sha256 of the file.
        let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match io::Read::read(&mut f, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("hashing {}", path.display())),
            };
            h.update(&buf[..n]);
        }
        let key = format!("sha256-{}", hex(&h.finalize()));
        let source = path.display().to_string();
        self.store_as(&key, &source, name, ImageConfig::default(), |rootfs| {
            f.rewind()?;
            apply_layer_stream(cancel.reader(&mut f), rootfs)
                .with_context(|| format!("unpacking {}", path.display()))
        })
    }

    /// Unpack an OCI image layout (see [`oci::read_layout`]), each layer's sha256 checked
    /// against its descriptor while it is applied.
    fn import_oci_layout(
        &self,
        dir: &Path,
        source: &str,
        name: Option<&str>,
        cancel: &Cancel,
    ) -> Result<Image> {
        let m = oci::read_layout(dir, name)?;
        let key = m.digest.replace(':', "-");
        self.store_as(&key, source, name, m.config, |rootfs| {
            let tty = io::IsTerminal::is_terminal(&io::stderr());
            for (i, d) in m.layers.iter().enumerate() {
                let p = blob_path(dir, d)?;
                if tty {
                    let mb = fs::metadata(&p)
                        .map(|m| m.len() as f64 / 1048576.0)
                        .unwrap_or(0.0);
                    eprintln!(
                        "berth-worker: unpacking layer {}/{} {} ({mb:.1} MB)",
                        i + 1,
                        m.layers.len(),
                        &d[..d.len().min(19)]
                    );
                }
                let f = File::open(&p).with_context(|| format!("opening layer {}", p.display()))?;
                let mut hr = HashingReader::new(cancel.reader(f));
                apply_layer_stream(&mut hr, rootfs)
                    .with_context(|| format!("unpacking layer {d}"))?;
                io::copy(&mut hr, &mut io::sink())?;
                verify(d, &hr.hex(), &p)?;
            }
            Ok(())
        })
    }
}

/// Pull `r` into the store and return it. One manifest GET names the digest (a pinned digest
/// already stored needs none); a digest the store has is used as it is, anything else is
/// downloaded into a temporary OCI layout under the store, imported like any other layout
/// and removed. With `fallback`, a registry that cannot be reached is not fatal when the
/// store holds an earlier pull of the same name: it is used, with a warning naming the
/// registry (Concourse would keep the last version its check found).
pub fn pull(
    store: &Store,
    r: &Reference,
    creds: Option<(String, String)>,
    fallback: bool,
    cancel: &Cancel,
) -> Result<Image> {
    if let Some(d) = &r.digest {
        if let Some(img) = store.find(d)? {
            return Ok(img);
        }
    }
    let mut c = registry::Client::new(r, creds, cancel);
    let res = match c.resolve() {
        Ok(res) => res,
        Err(e) => {
            let stored = match e.downcast_ref::<registry::Unreachable>() {
                Some(_) if fallback && r.digest.is_none() => store.find(&r.name())?,
                _ => None,
            };
            let Some(img) = stored else { return Err(e) };
            eprintln!(
                "berth-worker: warning: {e:#}; using the stored {} ({}) from an earlier pull",
                r.name(),
                img.id
            );
            return Ok(img);
        }
    };
    if let Some(img) = store.find(&res.digest)? {
        store.tag(&img.id, &r.name())?;
        return Ok(img);
    }
    let digest = res.digest.clone();
    fs::create_dir_all(store.root())
        .with_context(|| format!("creating {}", store.root().display()))?;
    let tmp = tempdir_in(store.root(), ".pull-")?;
    let out = c.fetch(res, &tmp).and_then(|()| {
        store.import_oci_layout(
            &tmp,
            &format!("docker://{}@{digest}", r.name()),
            Some(&r.name()),
            cancel,
        )
    });
    let _ = fs::remove_dir_all(&tmp);
    out
}

/// Does an `--image`/`rootfs_uri` text mean a file? Absolute and `./`, `../`, `~` paths, archive
/// names, and `dir/…` where `dir` exists here. Such a text is never sent to a registry (Docker
/// Hub would answer "not found" for a typo in a path).
fn looks_like_path(what: &str) -> bool {
    const ARCHIVES: [&str; 6] = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst", ".oci"];
    what.starts_with('/')
        || what.starts_with("./")
        || what.starts_with("../")
        || what.starts_with('~')
        || what == "."
        || what == ".."
        || ARCHIVES.iter().any(|x| what.ends_with(x))
        || what
            .split_once('/')
            .is_some_and(|(first, _)| Path::new(first).is_dir())
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

    #[test]
    fn path_looking_images() {
        for p in [
            "/no/such", "./rootfs", "../x", "~/img", "img.tar", "a.tar.gz", "x.tzst",
        ] {
            assert!(looks_like_path(p), "{p}");
        }
        for r in [
            "busybox",
            "busybox:1.36",
            "127.0.0.1:5000/a/b:1",
            "ghcr.io/a/b@sha256:ab",
        ] {
            assert!(!looks_like_path(r), "{r}");
        }
        // Tests run in the crate's directory, which has src/.
        assert!(looks_like_path("src/no-such-rootfs"));
    }
}
