//! Pulling an image over the Docker Registry HTTP API v2 (what Concourse's registry-image
//! resource does before a task runs): manifest (following an image index / manifest list to
//! linux/amd64), config and layers, every byte checked against its sha256 digest, written as an
//! OCI image layout into a directory the caller gives. This module knows nothing of the store:
//! image/mod.rs looks the digest up there first and imports the layout.
//!
//! Plain HTTP is used for `localhost`, `127.*` and `[::1]` registries and for hosts listed in
//! `BERTH_WORKER_INSECURE_REGISTRIES` (comma-separated); HTTPS otherwise. Anonymous bearer
//! tokens (the `WWW-Authenticate: Bearer realm=…` dance) and `source.username/password` are
//! supported.

use std::fs;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::cancel::Cancel;
use super::oci::{self, sha256_hex};

/// A parsed reference: `[host[:port]/]repo[:tag][@sha256:…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub host: String,
    pub repo: String,
    pub tag: String,
    pub digest: Option<String>,
}

impl Reference {
    /// Parse a reference the way Docker does: the first component is a host when it has a `.`
    /// or `:` or is `localhost`; Docker Hub names get `library/`.
    pub fn parse(s: &str) -> Result<Reference> {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (s, None),
        };
        let (host, path) = match rest.split_once('/') {
            Some((h, p)) if h.contains('.') || h.contains(':') || h == "localhost" => {
                (h.to_string(), p.to_string())
            }
            _ => ("registry-1.docker.io".to_string(), rest.to_string()),
        };
        let (repo, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => (path.clone(), "latest".to_string()),
        };
        if repo.is_empty()
            || repo
                .chars()
                .any(|c| c.is_ascii_uppercase() || c.is_whitespace())
        {
            bail!("invalid image reference {s:?}");
        }
        let repo = if host == "registry-1.docker.io" && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        Ok(Reference {
            host,
            repo,
            tag,
            digest,
        })
    }

    /// `host/repo:tag` (the name the pulled image gets in the store).
    pub fn name(&self) -> String {
        format!("{}/{}:{}", self.host, self.repo, self.tag)
    }

    fn base(&self) -> String {
        let insecure = std::env::var("BERTH_WORKER_INSECURE_REGISTRIES").unwrap_or_default();
        let hostname = self
            .host
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&self.host);
        let plain = hostname == "localhost"
            || hostname.starts_with("127.")
            || hostname == "[::1]"
            || insecure.split(',').any(|h| h.trim() == self.host);
        format!(
            "{}://{}/v2/{}",
            if plain { "http" } else { "https" },
            self.host,
            self.repo
        )
    }
}

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

impl Client {
    fn get(&mut self, url: &str, accept: Option<&str>) -> Result<ureq::Response> {
        for attempt in 0..2 {
            let mut req = self.agent.get(url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if let Some(t) = &self.auth {
                req = req.set("Authorization", t);
            }
            match req.call() {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(401, r)) if attempt == 0 => {
                    let chal = r.header("WWW-Authenticate").unwrap_or("").to_string();
                    self.auth = Some(
                        self.token(&chal)
                            .with_context(|| format!("authenticating for {url}"))?,
                    );
                }
                Err(ureq::Error::Status(code, r)) if code >= 500 => {
                    return Err(Unreachable {
                        host: self.r.host.clone(),
                        detail: format!("GET {url}: HTTP {code} {}", r.status_text()),
                    }
                    .into())
                }
                Err(ureq::Error::Status(code, r)) => {
                    let body = r.into_string().unwrap_or_default();
                    bail!("GET {url}: HTTP {code}: {}", body.trim());
                }
                Err(e) => {
                    return Err(Unreachable {
                        host: self.r.host.clone(),
                        detail: format!("GET {url}: {e}"),
                    }
                    .into())
                }
            }
        }
        bail!("GET {url}: still unauthorized after authenticating")
    }

    /// Answer a `WWW-Authenticate` challenge: Basic with the source's credentials, or a Bearer
    /// token from the realm (anonymous unless credentials are given).
    fn token(&self, challenge: &str) -> Result<String> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let (u, p) = self
                .basic
                .as_ref()
                .ok_or_else(|| anyhow!("registry wants credentials (source.username/password)"))?;
            return Ok(format!("Basic {}", base64(&format!("{u}:{p}"))));
        }
        let mut realm = String::new();
        let mut query = Vec::new();
        for part in params.split(',') {
            if let Some((k, v)) = part.trim().split_once('=') {
                let v = v.trim_matches('"').to_string();
                if k == "realm" {
                    realm = v;
                } else {
                    query.push((k.to_string(), v));
                }
            }
        }
        if realm.is_empty() {
            bail!("unsupported auth challenge {challenge:?}");
        }
        let mut req = self.agent.get(&realm);
        for (k, v) in &query {
            req = req.query(k, v);
        }
        if let Some((u, p)) = &self.basic {
            req = req.set(
                "Authorization",
                &format!("Basic {}", base64(&format!("{u}:{p}"))),
            );
        }
        let body = req
            .call()
            .with_context(|| format!("GET {realm}"))?
            .into_string()?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("{realm}: parsing the token reply"))?;
        let t = v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .ok_or_else(|| anyhow!("{realm}: no token in the reply"))?;
        Ok(format!("Bearer {t}"))
    }
}

fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What a tag (or digest) points at, from one manifest GET.
pub struct Resolved {
    /// The platform (linux/amd64) image manifest's digest: the image's identity.
    pub digest: String,
    /// The manifest itself when the GET returned it (not an index).
    manifest: Option<(Vec<u8>, serde_json::Value)>,
}

/// A registry that answered nothing (connection refused, DNS, TLS, timeout, HTTP 5xx): the
/// one case where a run may fall back to a stored image of the same name.
#[derive(Debug, thiserror::Error)]
#[error("registry {host} is unreachable: {detail}")]
pub struct Unreachable {
    pub host: String,
    pub detail: String,
}

/// A client for one repository.
pub struct Client {
    r: Reference,
    base: String,
    agent: ureq::Agent,
    auth: Option<String>,
    basic: Option<(String, String)>,
    cancel: Cancel,
}

impl Client {
    /// A client for `r`'s repository, with `source.username/password` if given. Downloads stop
    /// at their next read once `cancel` is set.
    pub fn new(r: &Reference, creds: Option<(String, String)>, cancel: &Cancel) -> Client {
        Client {
            cancel: cancel.clone(),
            r: r.clone(),
            base: r.base(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(15))
                // A registry that stops sending mid-blob: an error, not a hang.
                .timeout_read(Duration::from_secs(60))
                .build(),
            auth: None,
            basic: creds,
        }
    }

    /// One manifest GET for the reference's digest or tag. An image index is not followed: its
    /// linux/amd64 entry names the platform manifest's digest, which is all a store lookup needs.
    pub fn resolve(&mut self) -> Result<Resolved> {
        let what = self.r.digest.clone().unwrap_or_else(|| self.r.tag.clone());
        let (digest, body, m) = self.manifest(&what)?;
        if m.get("manifests").is_some() {
            let d = oci::pick_manifest(&m, None)
                .with_context(|| format!("{}: image index {digest}", self.r.name()))?;
            let d = d["digest"]
                .as_str()
                .ok_or_else(|| anyhow!("image index {digest}: entry without digest"))?;
            return Ok(Resolved {
                digest: d.to_string(),
                manifest: None,
            });
        }
        Ok(Resolved {
            digest,
            manifest: Some((body, m)),
        })
    }

    /// Download the resolved image into `dir` as an OCI image layout (`oci-layout`,
    /// `index.json`, `blobs/sha256/…`), every blob checked against its digest before it gets
    /// its name.
    pub fn fetch(&mut self, res: Resolved, dir: &Path) -> Result<()> {
        let (body, m) = match res.manifest {
            Some(x) => x,
            None => {
                let (_, body, m) = self.manifest(&res.digest)?;
                (body, m)
            }
        };
        if m.get("manifests").is_some() {
            bail!(
                "{}: image index {} inside an image index",
                self.r.name(),
                res.digest
            );
        }
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
        fs::write(oci::blob_path(dir, &res.digest)?, &body)?;
        let cfg_digest = oci::config_digest(&m, &res.digest)?;
        let cfg = read_all(self.get(&self.blob_url(&cfg_digest), None)?)?;
        oci::verify_digest(
            &cfg_digest,
            &sha256_hex(&cfg),
            &format!("config blob of {}", self.r.name()),
        )?;
        fs::write(oci::blob_path(dir, &cfg_digest)?, &cfg)?;
        let layers = oci::layers(&m, &res.digest)?;
        let tty = std::io::stderr().is_terminal();
        for (i, (d, size)) in layers.iter().enumerate() {
            self.cancel.check()?;
            let dest = oci::blob_path(dir, d)?;
            let partial = dest.with_extension("partial");
            let resp = self.get(&self.blob_url(d), None)?;
            let mut hr = oci::HashingReader::new(self.cancel.reader(resp.into_reader()));
            let f = fs::File::create(&partial)
                .with_context(|| format!("creating {}", partial.display()))?;
            let label = format!(
                "{} layer {}/{} {}",
                self.r.name(),
                i + 1,
                layers.len(),
                &d[..d.len().min(19)]
            );
            let mut out = Progress::new(f, tty.then_some(label), *size);
            std::io::copy(&mut hr, &mut out).with_context(|| format!("downloading layer {d}"))?;
            out.finish();
            oci::verify_digest(d, &hr.hex(), &format!("layer blob of {}", self.r.name()))?;
            fs::rename(&partial, &dest)?;
        }
        let media = m["mediaType"]
            .as_str()
            .unwrap_or("application/vnd.oci.image.manifest.v1+json");
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": media, "digest": res.digest, "size": body.len()}],
        });
        fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(())
    }

    fn blob_url(&self, digest: &str) -> String {
        format!("{}/blobs/{digest}", self.base)
    }

    /// GET a manifest by tag or digest: (its digest, its bytes, its JSON). A manifest asked
    /// for by digest must hash to it.
    fn manifest(&mut self, what: &str) -> Result<(String, Vec<u8>, serde_json::Value)> {
        let url = format!("{}/manifests/{what}", self.base);
        let resp = self.get(&url, Some(MANIFEST_TYPES))?;
        let header = resp.header("Docker-Content-Digest").map(str::to_string);
        let body = read_all(resp)?;
        let actual = format!("sha256:{}", sha256_hex(&body));
        if what.starts_with("sha256:") {
            oci::verify_digest(what, &sha256_hex(&body), &url)?;
        } else if let Some(h) = header {
            if h != actual {
                bail!(
                    "{url}: Docker-Content-Digest {h} does not match the manifest's sha256 {actual}"
                );
            }
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).with_context(|| format!("parsing {url}"))?;
        if v["schemaVersion"] == 1 {
            bail!("{url}: schema 1 manifests are not supported");
        }
        Ok((actual, body, v))
    }
}

/// A writer that shows bytes and rate on stderr while a blob is downloaded (only with a
/// label: stderr is a terminal). One line a layer, redrawn in place at most 10 times a second.
struct Progress<W> {
    inner: W,
    label: Option<String>,
    total: u64,
    done: u64,
    start: Instant,
    drawn: Option<Instant>,
}

impl<W: Write> Progress<W> {
    fn new(inner: W, label: Option<String>, total: u64) -> Self {
        Progress {
            inner,
            label,
            total,
            done: 0,
            start: Instant::now(),
            drawn: None,
        }
    }

    fn draw(&mut self, last: bool) {
        let Some(label) = &self.label else { return };
        let mb = |b: u64| b as f64 / 1048576.0;
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\r\x1b[Kberth-worker: pulling {label}: {:.1}/{:.1} MB {:.1} MB/s{}",
            mb(self.done),
            mb(self.total.max(self.done)),
            mb(self.done) / secs,
            if last { "\n" } else { "" }
        );
        self.drawn = Some(Instant::now());
    }

    fn finish(&mut self) {
        self.draw(true);
    }
}

impl<W: Write> Write for Progress<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        if !matches!(self.drawn, Some(t) if t.elapsed() < Duration::from_millis(100)) {
            self.draw(false);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn read_all(r: ureq::Response) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    r.into_reader().take(64 << 20).read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str(), r.tag.as_str()),
            ("registry-1.docker.io", "library/busybox", "latest")
        );
        let r = Reference::parse("127.0.0.1:5000/test/probe:1").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str(), r.tag.as_str()),
            ("127.0.0.1:5000", "test/probe", "1")
        );
        assert!(r.base().starts_with("http://127.0.0.1:5000/v2/test/probe"));
        let r = Reference::parse("ghcr.io/a/b@sha256:abc").unwrap();
        assert_eq!(r.digest.as_deref(), Some("sha256:abc"));
        assert!(r.base().starts_with("https://"));
        assert!(Reference::parse("Bad/Name").is_err());
    }

    #[test]
    fn base64_encoding() {
        assert_eq!(base64("user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64("a"), "YQ==");
        assert_eq!(base64("ab"), "YWI=");
    }
}
