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
        let kind = e.header().entry_type();
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
}
