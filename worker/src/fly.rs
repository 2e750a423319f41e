//! What `fly execute` does on the client before a task runs, done the same way here:
//!
//! - which directory feeds which task input (`executehelpers.DetermineInputs`): `-i NAME=DIR`,
//!   `-m TASK_INPUT=NAME` (the input fed by the artifact `NAME`), and the current directory
//!   when its name is an input's and no `-i` names it;
//! - `fly execute … -- ARGS` and the environment (`config.OverrideTaskParams`): extra args are
//!   appended to `run.args`, and a param whose name is set in the environment takes that
//!   value;
//! - which files of an input are uploaded (`executehelpers.Upload`): in a git work tree, the
//!   tracked and the untracked-but-not-ignored files, so `.gitignore`d paths and `.git` itself
//!   stay out unless `--include-ignored`.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::task::TaskConfig;

/// (task input name, dir) pairs, and the input the current directory feeds, if any.
pub type Inputs = (Vec<(String, PathBuf)>, Option<String>);

/// `DetermineInputs`: the directory of each task input that has one, as (task input name,
/// dir). `given` are the `-i` pairs, `mappings` the `-m TASK_INPUT=NAME` pairs, `cwd` the
/// current directory. Returns the pairs and, if the current directory was taken, the name
/// of the input it feeds.
pub fn determine_inputs(
    task: &TaskConfig,
    given: &[(String, PathBuf)],
    mappings: &[(String, String)],
    cwd: Option<&Path>,
) -> Result<Inputs> {
    let names: Vec<&str> = task.inputs.iter().map(|i| i.name.as_str()).collect();
    for (t, a) in mappings {
        if !names.contains(&t.as_str()) {
            bail!("-m {t}={a}: the task has no input named {t:?} (inputs: {names:?})");
        }
    }
    // The artifact name feeding each task input: its mapping, else its own name.
    let artifact = |input: &str| -> String {
        mappings
            .iter()
            .rev()
            .find(|(t, _)| t == input)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| input.to_string())
    };
    for (n, p) in given {
        if !task.inputs.iter().any(|i| artifact(&i.name) == *n) {
            bail!(
                "-i {n}={}: the task has no input named {n:?} (inputs: {names:?}{})",
                p.display(),
                if mappings.is_empty() {
                    String::new()
                } else {
                    ", or a name given with -m".to_string()
                }
            );
        }
    }
    let cwd_name = cwd.and_then(Path::file_name).and_then(OsStr::to_str);
    let mut out = Vec::new();
    let mut from_cwd = None;
    for i in &task.inputs {
        let a = artifact(&i.name);
        if let Some((_, p)) = given.iter().rev().find(|(n, _)| *n == a) {
            out.push((i.name.clone(), p.clone()));
        } else if cwd_name == Some(a.as_str()) {
            // fly: "if the current directory's name is an input's, it is that input".
            out.push((i.name.clone(), cwd.expect("has a name").to_path_buf()));
            from_cwd = Some(i.name.clone());
        }
    }
    Ok((out, from_cwd))
}

/// `OverrideTaskParams`: `extra` args appended to `run.args`; each param whose name is set in
/// the environment takes the environment's value.
pub fn override_task(
    task: &mut TaskConfig,
    extra: &[String],
    env: impl Fn(&str) -> Option<String>,
) {
    task.run.args.extend(extra.iter().cloned());
    for (k, v) in &mut task.params {
        if let Some(e) = env(k) {
            *v = e;
        }
    }
}

/// The paths under `dir` that `fly execute` would not upload: what git reports as ignored
/// (whole directories as one entry), and `.git` itself. `None` when `dir` is not in a git work
/// tree or git is not installed (fly then uploads everything too).
pub fn ignored_paths(dir: &Path) -> Option<Vec<PathBuf>> {
    let out = std::process::Command::new("git")
        // The caller's repository, read as root: trust its owner (git refuses "dubious
        // ownership" otherwise) and run none of its configured helpers.
        .args([
            "-c",
            "safe.directory=*",
            "-c",
            "core.fsmonitor=false",
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
        ])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut paths: Vec<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            use std::os::unix::ffi::OsStrExt;
            PathBuf::from(OsStr::from_bytes(s))
        })
        // Only plain relative paths below dir (git gives nothing else, but this is the root
        // worker acting on what a subprocess printed).
        .filter(|p| p.components().all(|c| matches!(c, Component::Normal(_))))
        .collect();
    if std::fs::symlink_metadata(dir.join(".git")).is_ok() {
        paths.push(PathBuf::from(".git"));
    }
    paths.sort();
    Some(paths)
}

/// Hide `paths` (relative to `lower`) from an overlay whose upper dir is `upper`, before it is
/// mounted: each gets a whiteout (a 0/0 character device) in the upper dir, under copies of
/// its lower parent directories (owner, mode, times: the upper's directory is what the
/// overlay shows). Nothing is copied and nothing under a hidden directory is visited.
/// Entries whose lower parents are not plain directories are left alone.
pub fn whiteout(lower: &Path, upper: &Path, paths: &[PathBuf]) -> Result<usize> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut n = 0;
    if !paths.is_empty() {
        std::fs::create_dir_all(upper).with_context(|| format!("creating {}", upper.display()))?;
    }
    'next: for rel in paths {
        let mut parent = PathBuf::new();
        let comps: Vec<_> = rel.components().collect();
        let Some((last, dirs)) = comps.split_last() else {
            continue;
        };
        for c in dirs {
            parent.push(c);
            let m = match std::fs::symlink_metadata(lower.join(&parent)) {
                Ok(m) if m.file_type().is_dir() => m,
                _ => continue 'next,
            };
            let u = upper.join(&parent);
            if std::fs::symlink_metadata(&u).is_err() {
                std::fs::create_dir(&u).with_context(|| format!("creating {}", u.display()))?;
                crate::sys::lchown(&u, m.uid(), m.gid())?;
                std::fs::set_permissions(&u, std::fs::Permissions::from_mode(m.mode() & 0o7777))
                    .with_context(|| format!("chmod {}", u.display()))?;
                crate::sys::set_times(&u, &m)?;
            }
        }
        let target = upper.join(&parent).join(last);
        if std::fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        mknod_whiteout(&target)?;
        n += 1;
    }
    // The parents' times again: the whiteouts just changed their mtimes.
    for rel in paths {
        let mut p = rel.parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            if let (Ok(m), true) = (
                std::fs::symlink_metadata(lower.join(d)),
                upper.join(d).is_dir(),
            ) {
                crate::sys::set_times(&upper.join(d), &m)?;
            }
            p = d.parent();
        }
    }
    Ok(n)
}

fn mknod_whiteout(p: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path; mknod does not keep it.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("creating whiteout {}", p.display()));
    }
    Ok(())
}

/// Remove `paths` (relative to `root`) from a plain copy of an input (the shifted-copy mode).
pub fn remove_paths(root: &Path, paths: &[PathBuf]) -> Result<()> {
    for rel in paths {
        let p = root.join(rel);
        // Never through a symlink: check each parent inside the copy.
        let mut ok = true;
        let mut cur = root.to_path_buf();
        for c in rel.parent().into_iter().flat_map(Path::components) {
            cur.push(c);
            ok &= std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_dir());
        }
        if !ok {
            continue;
        }
        let r = match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_dir() => std::fs::remove_dir_all(&p),
            Ok(_) => std::fs::remove_file(&p),
            Err(_) => Ok(()),
        };
        r.with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(src: &str) -> TaskConfig {
        TaskConfig::parse("t.yml", src).unwrap()
    }

    #[test]
    fn inputs_like_determine_inputs() {
        let t = task("platform: linux\ninputs: [{name: src}, {name: lib, optional: true}]\n");
        let p = |s: &str| PathBuf::from(s);
        // The current directory feeds the input of its name.
        let (v, cwd) = determine_inputs(&t, &[], &[], Some(Path::new("/home/u/src"))).unwrap();
        assert_eq!(v, vec![("src".to_string(), p("/home/u/src"))]);
        assert_eq!(cwd.as_deref(), Some("src"));
        // -i wins over it.
        let given = vec![("src".to_string(), p("/x"))];
        let (v, cwd) = determine_inputs(&t, &given, &[], Some(Path::new("/home/u/src"))).unwrap();
        assert_eq!(v, vec![("src".to_string(), p("/x"))]);
        assert!(cwd.is_none());
        // -m: the input lib is fed by the artifact named repo.
        let m = vec![("lib".to_string(), "repo".to_string())];
        let given = vec![("repo".to_string(), p("/r"))];
        let (v, _) = determine_inputs(&t, &given, &m, Some(Path::new("/"))).unwrap();
        assert_eq!(v, vec![("lib".to_string(), p("/r"))]);
        // Unknown names.
        assert!(determine_inputs(&t, &[("nope".into(), p("/"))], &[], None).is_err());
        assert!(determine_inputs(&t, &[], &[("nope".into(), "x".into())], None).is_err());
    }

    #[test]
    fn overrides_like_fly() {
        let mut t =
            task("platform: linux\nparams: {A: file, B: file}\nrun: {path: x, args: [a]}\n");
        override_task(&mut t, &["b".into(), "c".into()], |k| {
            (k == "B").then(|| "env".to_string())
        });
        assert_eq!(t.run.args, vec!["a", "b", "c"]);
        assert_eq!(
            t.params,
            vec![("A".into(), "file".into()), ("B".into(), "env".into())]
        );
    }
}
