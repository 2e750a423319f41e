//! OCI content: digests, image layouts (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`),
//! image indexes, manifests and the image config. Parsing only: unpacking is layer.rs, storing
//! is store.rs.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layer::decompress;

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

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(b: &[u8]) -> String {
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

pub fn verify(expected: &str, actual_hex: &str, what: &Path) -> Result<()> {
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

pub fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
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

/// The run settings of an OCI image config blob.
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

/// What an image layout (or a registry) says an image is, ready to unpack.
pub struct Manifest {
    /// The platform manifest's digest (`sha256:…`): the image's identity and store key.
    pub digest: String,
    /// How to run it.
    pub config: ImageConfig,
    /// Layer blob digests, bottom first.
    pub layers: Vec<String>,
}

/// Read an OCI image layout: `index.json` → manifest (through nested image indexes, picking
/// the entry tagged `name`, else linux/amd64) → config. Every blob read is checked against
/// its digest; layers are only listed (their digests are checked while unpacking).
pub fn read_layout(dir: &Path, name: Option<&str>) -> Result<Manifest> {
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
    let (mdigest, m) = loop {
        let digest = desc["digest"]
            .as_str()
            .ok_or_else(|| anyhow!("index.json: manifest descriptor without digest"))?
            .to_string();
        let data = read_blob(&digest)?;
        let v: serde_json::Value =
            serde_json::from_slice(&data).with_context(|| format!("parsing manifest {digest}"))?;
        if v.get("manifests").is_some() {
            desc = pick_manifest(&v, None).with_context(|| format!("image index {digest}"))?;
            continue;
        }
        break (digest, v);
    };
    let cfg_digest = config_digest(&m, &mdigest)?;
    let cfg: serde_json::Value =
        serde_json::from_slice(&read_blob(&cfg_digest)?).context("parsing image config")?;
    Ok(Manifest {
        config: image_config(&cfg),
        layers: layers(&m, &mdigest)?.into_iter().map(|(d, _)| d).collect(),
        digest: mdigest,
    })
}

/// `config.digest` of an image manifest.
pub fn config_digest(m: &serde_json::Value, mdigest: &str) -> Result<String> {
    Ok(m["config"]["digest"]
        .as_str()
        .ok_or_else(|| anyhow!("manifest {mdigest}: no config.digest"))?
        .to_string())
}

/// The layers of an image manifest: (digest, size), bottom first.
pub fn layers(m: &serde_json::Value, mdigest: &str) -> Result<Vec<(String, u64)>> {
    m["layers"]
        .as_array()
        .ok_or_else(|| anyhow!("manifest {mdigest}: no layers"))?
        .iter()
        .map(|l| {
            Ok((
                l["digest"]
                    .as_str()
                    .ok_or_else(|| anyhow!("manifest {mdigest}: layer without digest"))?
                    .to_string(),
                l["size"].as_u64().unwrap_or(0),
            ))
        })
        .collect()
}

pub fn tar_has_member(path: &Path, member: &str) -> Result<bool> {
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
