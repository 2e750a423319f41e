//! The task config: Concourse's task schema (`atc/task.go` `TaskConfig`), read from YAML or JSON.
//!
//! Parsing happens in three passes so every error can name the file, the field and, when the
//! key is in the file, its line:
//!
//! 1. the document is read into a generic YAML value (syntax errors carry line:column);
//! 2. every mapping is checked against the schema's key set, and unknown keys are reported
//!    all at once as Concourse does (`unknown fields: [ouputs]`);
//! 3. the typed structs are filled through `serde_path_to_error`, so a type error names its
//!    path (`container_limits.cpu: cpu limit must be an integer`);
//!
//! and then [`TaskConfig::validate`] checks what types cannot express (required names,
//! duplicates, relative paths).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_norway::Value;

use crate::vars::Vars;

/// A task config error: `<file>[:<line>]: <field>: <msg>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// The task file as the user named it (`task.yml`).
    pub file: String,
    /// 1-based line of the offending key, when it is present in the file.
    pub line: Option<usize>,
    /// Dotted path of the field (`run.path`, `inputs[1].name`); empty for whole-document errors.
    pub field: String,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.msg)
        } else {
            write!(f, ": {}: {}", self.field, self.msg)
        }
    }
}

impl std::error::Error for TaskError {}

/// A Concourse task config (`TaskConfig`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct TaskConfig {
    /// Worker selection; berth runs `linux` tasks only.
    #[serde(default)]
    pub platform: String,
    /// The image to fetch (`type: registry-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_resource: Option<ImageResource>,
    /// `raw:///abs/dir`: a rootfs directory on the worker (used when no image_resource is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_uri: Option<String>,
    /// Artifacts mounted copy-on-write under the work dir.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<TaskInput>,
    /// Fresh directories under the work dir, copied out after success.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<TaskOutput>,
    /// Directories persisted across runs of the same task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<TaskCache>,
    /// Environment variables, in file order, values coerced like Concourse's `CoercedString`.
    #[serde(
        default,
        deserialize_with = "de_params",
        serialize_with = "ser_params",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub params: Vec<(String, String)>,
    /// What to execute.
    #[serde(default)]
    pub run: TaskRun,
    /// cgroup limits.
    #[serde(default, skip_serializing_if = "ContainerLimits::is_unlimited")]
    pub container_limits: ContainerLimits,
}

/// `image_resource`: a resource that produces the task's image.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ImageResource {
    /// Resource type: `registry-image` (or the older `docker-image`).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `repository` (required), `tag` (default `latest`), and registry options.
    #[serde(default)]
    pub source: serde_json::Map<String, serde_json::Value>,
    /// A pinned version: `{digest: sha256:…}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<serde_json::Map<String, serde_json::Value>>,
    /// Params for the resource's `get` (accepted, unused by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    /// Worker tags (accepted, unused by berth).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Display name (accepted, unused by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ImageResource {
    /// `source.repository`.
    pub fn repository(&self) -> Option<&str> {
        self.source.get("repository").and_then(|v| v.as_str())
    }
    /// `source.tag`, default `latest` as in registry-image-resource.
    pub fn tag(&self) -> String {
        match self.source.get("tag") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v @ serde_json::Value::Number(_)) => v.to_string(),
            _ => "latest".to_string(),
        }
    }
    /// `version.digest`, if pinned.
    pub fn digest(&self) -> Option<&str> {
        self.version.as_ref()?.get("digest")?.as_str()
    }
}

/// One entry of `inputs`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct TaskInput {
    /// Artifact name (`-i name=DIR`).
    #[serde(default)]
    pub name: String,
    /// Mount path relative to the work dir; default: the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A missing optional input is simply not mounted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

impl TaskInput {
    /// Where the input appears, relative to the work dir.
    pub fn mount_path(&self) -> &str {
        self.path
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(&self.name)
    }

    /// [`Self::mount_path`] normalized (no `.`, no empty or edge slashes); empty when the
    /// input *is* the work dir (`path: .`, as in concourse/examples).
    pub fn rel_path(&self) -> String {
        norm(self.mount_path())
    }
}

/// One entry of `outputs`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct TaskOutput {
    /// Artifact name (`-o name=DIR`).
    #[serde(default)]
    pub name: String,
    /// Path relative to the work dir; default: the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl TaskOutput {
    /// Where the output appears, relative to the work dir.
    pub fn mount_path(&self) -> &str {
        self.path
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(&self.name)
    }
}

/// One entry of `caches`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct TaskCache {
    /// Relative paths go under the work dir; absolute paths are kept.
    #[serde(default)]
    pub path: String,
}

/// `run`: the process.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct TaskRun {
    /// Executable; empty means the image's entrypoint (else cmd).
    #[serde(default)]
    pub path: String,
    /// argv[1:].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Working directory; relative to the work dir.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dir: String,
    /// User name or `uid[:gid]`, resolved against the image's /etc/passwd.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
}

/// `container_limits`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ContainerLimits {
    /// CPU shares (cgroup v1 `cpu.shares`); 0 or absent = unlimited.
    #[serde(
        default,
        deserialize_with = "de_cpu",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu: Option<u64>,
    /// Memory limit in bytes; 0 or absent = unlimited.
    #[serde(
        default,
        deserialize_with = "de_memory",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<u64>,
}

impl ContainerLimits {
    /// No limit set (left out of `check`'s output).
    pub fn is_unlimited(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none()
    }
}

/// Concourse's `CoercedString`: strings as they are, numbers as written, `null` as the empty
/// string, booleans/maps/lists as JSON.
pub fn coerce_param(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => yaml_to_json(other).to_string(),
    }
}

fn yaml_to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => serde_json::from_str(&n.to_string()).unwrap_or(serde_json::Value::Null),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Sequence(s) => serde_json::Value::Array(s.iter().map(yaml_to_json).collect()),
        Value::Mapping(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| (key_string(k), yaml_to_json(v)))
                .collect(),
        ),
        Value::Tagged(t) => yaml_to_json(&t.value),
    }
}

fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => coerce_param(other),
    }
}

/// `params` as a mapping, in file order, values as the task sees them (strings).
fn ser_params<S: Serializer>(p: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(p.len()))?;
    for (k, v) in p {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

fn de_params<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let m = Option::<serde_norway::Mapping>::deserialize(d)?.unwrap_or_default();
    Ok(m.iter()
        .map(|(k, v)| (key_string(k), coerce_param(v)))
        .collect())
}

fn de_cpu<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Ok(None),
            Some(v) => Ok(Some(v)),
            None => Err(D::Error::custom("cpu limit must be an integer")),
        },
        // Same message as Concourse's `CPULimit.UnmarshalJSON`.
        _ => Err(D::Error::custom("cpu limit must be an integer")),
    }
}

fn de_memory<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    let bytes = match Value::deserialize(d)? {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            D::Error::custom(format!(
                "memory limit must be a non-negative integer, got {n}"
            ))
        })?,
        Value::String(s) => parse_memory(&s).map_err(D::Error::custom)?,
        _ => {
            return Err(D::Error::custom(
                "memory limit must be a number of bytes or a size like 1GB",
            ))
        }
    };
    Ok((bytes != 0).then_some(bytes))
}

/// Parse a memory size the way Concourse's `ParseMemoryLimit` does: digits and an optional
/// unit `K`, `KB`, `KiB`, `M`, `MB`, `MiB`, `G`, `GB`, `GiB` (case-insensitive). All units are
/// **binary** (`1GB` = 1073741824), as in Concourse.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    let (num, unit) = t.split_at(digits);
    let bad = || format!("invalid memory limit {s:?} (want bytes or a size like 512MB, 1GB)");
    if num.is_empty() {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// The schema's key sets, for the unknown-field check. `None` means free-form (any keys).
fn known_keys(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "" => &[
            "platform",
            "image_resource",
            "rootfs_uri",
            "inputs",
            "outputs",
            "caches",
            "params",
            "run",
            "container_limits",
        ],
        "image_resource" => &["type", "source", "version", "params", "tags", "name"],
        "inputs[]" => &["name", "path", "optional"],
        "outputs[]" => &["name", "path"],
        "caches[]" => &["path"],
        "run" => &["path", "args", "dir", "user"],
        "container_limits" => &["cpu", "memory"],
        _ => return None,
    })
}

impl TaskConfig {
    /// Read and validate a task file, filling its `((var))` placeholders from `vars`.
    pub fn load(path: &Path, vars: &Vars) -> Result<TaskConfig, TaskError> {
        let name = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| TaskError {
            file: name.clone(),
            line: None,
            field: String::new(),
            msg: format!("reading task config: {e}"),
        })?;
        TaskConfig::parse_with(&name, &src, vars)
    }

    /// Parse and validate a task config without vars (any placeholder is undefined).
    #[cfg(test)]
    pub fn parse(file: &str, src: &str) -> Result<TaskConfig, TaskError> {
        TaskConfig::parse_with(file, src, &Vars::default())
    }

    /// Parse and validate a task config from text; `file` names it in errors. `((var))`
    /// placeholders are filled from `vars` first (see vars.rs); undefined ones are an error
    /// that names them all.
    pub fn parse_with(file: &str, src: &str, vars: &Vars) -> Result<TaskConfig, TaskError> {
        let err = |line, field: &str, msg: String| TaskError {
            file: file.to_string(),
            line,
            field: field.to_string(),
            msg,
        };
        // Pass 1: syntax.
        let mut doc: Value = serde_norway::from_str(src).map_err(|e| {
            let line = e.location().map(|l| l.line());
            err(line, "", strip_location(&e.to_string()))
        })?;
        match &doc {
            Value::Mapping(_) => {}
            Value::Null => return Err(err(None, "", "empty task config".into())),
            _ => return Err(err(Some(1), "", "task config must be a mapping".into())),
        }
        // Placeholders, on the parsed document as fly fills them.
        let missing = crate::vars::interpolate(&mut doc, vars).map_err(|msg| err(None, "", msg))?;
        if !missing.is_empty() {
            let line = missing.iter().find_map(|n| {
                src.lines()
                    .position(|l| l.contains(&format!("(({n}))")))
                    .map(|i| i + 1)
            });
            return Err(err(
                line,
                "",
                format!(
                    "undefined vars: {} (give them with -v NAME=VALUE, -y NAME=YAML or -l FILE)",
                    missing.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        // Pass 2: unknown keys, collected per mapping like Concourse's `unknown fields: [...]`.
        check_unknown(&doc, "", "", src).map_err(|(field, line, msg)| err(line, &field, msg))?;
        // Pass 3: types, with the failing path (lines are looked up in the source: the
        // document may have been interpolated).
        let cfg: TaskConfig = serde_path_to_error::deserialize(doc).map_err(|e| {
            let field = e.path().to_string();
            // serde_norway prefixes some messages with the enclosing path; the field says it.
            let mut msg = strip_location(&e.inner().to_string());
            let mut prefix = String::new();
            for seg in field.split('.') {
                prefix = if prefix.is_empty() {
                    seg.to_string()
                } else {
                    format!("{prefix}.{seg}")
                };
                if let Some(rest) = msg.strip_prefix(&format!("{prefix}: ")) {
                    msg = rest.to_string();
                    break;
                }
            }
            let line = e
                .inner()
                .location()
                .map(|l| l.line())
                .or_else(|| line_of(src, &field));
            err(line, &field, msg)
        })?;
        cfg.validate()
            .map_err(|(field, msg)| err(nearest_line(src, &field), &field, msg))?;
        Ok(cfg)
    }

    /// Semantic checks; returns `(field, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let e = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
        if self.platform.is_empty() {
            return e("platform", "required");
        }
        if self.platform != "linux" {
            return Err((
                "platform".into(),
                format!(
                    "berth runs linux tasks; {:?} is not supported",
                    self.platform
                ),
            ));
        }
        if let Some(ir) = &self.image_resource {
            if ir.kind.is_empty() {
                return e("image_resource.type", "required");
            }
            if ir.kind != "registry-image" && ir.kind != "docker-image" {
                return Err((
                    "image_resource.type".into(),
                    format!("unsupported type {:?} (want registry-image)", ir.kind),
                ));
            }
            if ir.repository().is_none_or(str::is_empty) {
                return e("image_resource.source.repository", "required");
            }
        }
        if let Some(uri) = &self.rootfs_uri {
            if !uri.starts_with("raw:///") {
                return Err((
                    "rootfs_uri".into(),
                    format!("{uri:?}: only raw:///absolute/dir is supported"),
                ));
            }
        }
        let mut names = BTreeSet::new();
        let mut paths = BTreeSet::new();
        for (i, inp) in self.inputs.iter().enumerate() {
            let f = format!("inputs[{i}]");
            if inp.name.is_empty() {
                return e(&format!("{f}.name"), "required");
            }
            if !names.insert(inp.name.clone()) {
                return Err((
                    format!("{f}.name"),
                    format!("duplicate input name {:?}", inp.name),
                ));
            }
            // `path: .` mounts the input at the work dir itself (Concourse allows it).
            check_rel(&format!("{f}.path"), inp.mount_path(), true)?;
            if !paths.insert(norm(inp.mount_path())) {
                return Err((
                    format!("{f}.path"),
                    format!("{:?} is already used by another input", inp.mount_path()),
                ));
            }
        }
        let mut onames = BTreeSet::new();
        for (i, out) in self.outputs.iter().enumerate() {
            let f = format!("outputs[{i}]");
            if out.name.is_empty() {
                return e(&format!("{f}.name"), "required");
            }
            if !onames.insert(out.name.clone()) {
                return Err((
                    format!("{f}.name"),
                    format!("duplicate output name {:?}", out.name),
                ));
            }
            check_rel(&format!("{f}.path"), out.mount_path(), false)?;
        }
        for (i, c) in self.caches.iter().enumerate() {
            if c.path.is_empty() {
                return e(&format!("caches[{i}].path"), "required");
            }
            if c.path.split('/').any(|s| s == "..") {
                return e(&format!("caches[{i}].path"), "must not contain ..");
            }
        }
        for (k, _) in &self.params {
            if k.is_empty() || k.contains('=') {
                return Err(("params".into(), format!("invalid variable name {k:?}")));
            }
        }
        Ok(())
    }
}

fn norm(p: &str) -> String {
    p.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn check_rel(field: &str, p: &str, may_be_workdir: bool) -> Result<(), (String, String)> {
    if p.starts_with('/') {
        return Err((
            field.into(),
            format!("{p:?} must be relative to the work dir"),
        ));
    }
    if p.split('/').any(|s| s == "..") {
        return Err((field.into(), format!("{p:?} must not contain ..")));
    }
    if norm(p).is_empty() && !may_be_workdir {
        return Err((field.into(), format!("{p:?} names the work dir itself")));
    }
    Ok(())
}

/// serde_norway appends " at line L column C" to messages; the line is reported separately.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

type UnknownErr = (String, Option<usize>, String);

fn check_unknown(v: &Value, schema: &str, field: &str, src: &str) -> Result<(), UnknownErr> {
    match v {
        Value::Mapping(m) => {
            let Some(known) = known_keys(schema) else {
                return Ok(());
            };
            let unknown: Vec<String> = m
                .keys()
                .map(key_string)
                .filter(|k| !known.contains(&k.as_str()))
                .collect();
            if !unknown.is_empty() {
                let first = if field.is_empty() {
                    unknown[0].clone()
                } else {
                    format!("{field}.{}", unknown[0])
                };
                return Err((
                    field.to_string(),
                    line_of(src, &first),
                    format!("unknown fields: [{}]", unknown.join(", ")),
                ));
            }
            for (k, val) in m {
                let k = key_string(k);
                let sub_schema = if schema.is_empty() {
                    k.clone()
                } else {
                    format!("{schema}.{k}")
                };
                let sub_field = if field.is_empty() {
                    k.clone()
                } else {
                    format!("{field}.{k}")
                };
                check_unknown(val, &sub_schema, &sub_field, src)?;
            }
            Ok(())
        }
        Value::Sequence(s) => {
            for (i, item) in s.iter().enumerate() {
                check_unknown(item, &format!("{schema}[]"), &format!("{field}[{i}]"), src)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The line of `field`, else of its closest present parent (a missing `inputs[0].name` is
/// reported at the list item). Top-level keys that are absent have no line.
fn nearest_line(src: &str, field: &str) -> Option<usize> {
    let mut f = field;
    loop {
        if let Some(l) = line_of(src, f) {
            return Some(l);
        }
        f = &f[..f.rfind(['.', '['])?];
    }
}

/// Best-effort line of a dotted field path (`run.path`, `inputs[1].name`) in a block-style
/// YAML or JSON document: each segment's key is searched below the previous one, deeper
/// indented. Returns `None` when the key is absent (e.g. a missing required field is
/// reported at its parent's line instead).
pub fn line_of(src: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = src.lines().collect();
    let mut start = 0usize;
    let mut indent: isize = -1;
    let mut found: Option<usize> = None;
    let block = !src.trim_start().starts_with('{');
    let mut item_line: Option<usize> = None;
    for seg in field.split('.') {
        let (key, idx) = match seg.find('[') {
            Some(b) => (
                &seg[..b],
                seg[b + 1..].trim_end_matches(']').parse::<usize>().ok(),
            ),
            None => (seg, None),
        };
        let mut hit = None;
        for (n, l) in lines.iter().enumerate().skip(start) {
            let ind = l.len() - l.trim_start().len();
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            let t = t.trim_start_matches(['"', '\'']);
            // Left the parent block (YAML block style)? The list item line itself is inside.
            if block
                && found.is_some()
                && item_line != Some(n)
                && (ind as isize) <= indent
                && !l.trim().is_empty()
            {
                break;
            }
            if let Some(rest) = t.strip_prefix(key) {
                let rest = rest.trim_start_matches(['"', '\'']).trim_start();
                if rest.starts_with(':') {
                    hit = Some((n, ind));
                    break;
                }
            }
        }
        let (n, ind) = hit?;
        item_line = None;
        found = Some(n + 1);
        start = n + 1;
        indent = ind as isize;
        if let Some(i) = idx {
            // Skip to the i-th list item ("- ") below the key.
            let mut count = 0;
            for (m, l) in lines.iter().enumerate().skip(start) {
                if l.trim_start().starts_with("- ") || l.trim() == "-" {
                    if count == i {
                        found = Some(m + 1);
                        start = m;
                        item_line = Some(m);
                        indent = (l.len() - l.trim_start().len()) as isize;
                        break;
                    }
                    count += 1;
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
platform: linux
image_resource:
  type: registry-image
  source: {repository: busybox, tag: "1.36"}
  version: {digest: "sha256:abcd"}
inputs:
- name: src
- name: other
  path: deps/other
  optional: true
outputs:
- name: out
caches:
- path: .cache
params:
  STR: hello
  NUM: 42
  FLOAT: 1.5
  BOOL: true
  NOTHING: ~
  LIST: [1, "a"]
  MAP: {a: 1}
run:
  path: sh
  args: [-c, "echo hi"]
  dir: src
  user: nobody
container_limits:
  cpu: 512
  memory: 1GB
"#;

    #[test]
    fn full_schema_parses() {
        let c = TaskConfig::parse("task.yml", FULL).unwrap();
        assert_eq!(c.platform, "linux");
        let ir = c.image_resource.as_ref().unwrap();
        assert_eq!(ir.repository(), Some("busybox"));
        assert_eq!(ir.tag(), "1.36");
        assert_eq!(ir.digest(), Some("sha256:abcd"));
        assert_eq!(c.inputs[1].mount_path(), "deps/other");
        assert!(c.inputs[1].optional);
        assert_eq!(c.inputs[0].mount_path(), "src");
        assert_eq!(c.outputs[0].mount_path(), "out");
        assert_eq!(c.caches[0].path, ".cache");
        assert_eq!(c.run.args, vec!["-c", "echo hi"]);
        assert_eq!(c.run.dir, "src");
        assert_eq!(c.run.user, "nobody");
        assert_eq!(c.container_limits.cpu, Some(512));
        assert_eq!(c.container_limits.memory, Some(1 << 30));
        let p: Vec<(&str, &str)> = c
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            p,
            vec![
                ("STR", "hello"),
                ("NUM", "42"),
                ("FLOAT", "1.5"),
                ("BOOL", "true"),
                ("NOTHING", ""),
                ("LIST", r#"[1,"a"]"#),
                ("MAP", r#"{"a":1}"#),
            ]
        );
    }

    #[test]
    fn json_is_accepted() {
        let c = TaskConfig::parse(
            "task.json",
            r#"{"platform":"linux","run":{"path":"true"},"container_limits":{"memory":1048576}}"#,
        )
        .unwrap();
        assert_eq!(c.run.path, "true");
        assert_eq!(c.container_limits.memory, Some(1048576));
    }

    #[test]
    fn unknown_fields_are_listed_like_concourse() {
        let e = TaskConfig::parse(
            "task.yml",
            "platform: linux\nouputs: []\nrun: {path: x}\nfoo: 1\n",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "task.yml:2: unknown fields: [ouputs, foo]");
        let e = TaskConfig::parse("task.yml", "platform: linux\nrun:\n  path: x\n  pth: y\n")
            .unwrap_err();
        assert_eq!(e.to_string(), "task.yml:4: run: unknown fields: [pth]");
    }

    #[test]
    fn missing_and_bad_fields_name_field_and_line() {
        let e = TaskConfig::parse("task.yml", "run: {path: x}\n").unwrap_err();
        assert_eq!(e.to_string(), "task.yml: platform: required");
        let e = TaskConfig::parse("task.yml", "platform: linux\ninputs:\n- path: a\n").unwrap_err();
        assert_eq!(e.to_string(), "task.yml:3: inputs[0].name: required");
        let e = TaskConfig::parse(
            "task.yml",
            "platform: linux\ncontainer_limits:\n  cpu: lots\n",
        )
        .unwrap_err();
        assert_eq!(e.field, "container_limits.cpu");
        assert_eq!(e.line, Some(3));
        assert_eq!(e.msg, "cpu limit must be an integer", "{e}");
        let e =
            TaskConfig::parse("task.yml", "platform: linux\nrun:\n  args: notalist\n").unwrap_err();
        assert_eq!(e.field, "run.args");
        assert_eq!(e.line, Some(3));
        let e = TaskConfig::parse("task.yml", "platform: [\n").unwrap_err();
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn validation() {
        let bad = [
            ("platform: darwin\n", "platform"),
            (
                "platform: linux\ninputs: [{name: a}, {name: a, path: b}]\n",
                "inputs[1].name",
            ),
            (
                "platform: linux\ninputs: [{name: a, path: /abs}]\n",
                "inputs[0].path",
            ),
            (
                "platform: linux\noutputs: [{name: o, path: ../x}]\n",
                "outputs[0].path",
            ),
            (
                "platform: linux\nimage_resource: {type: git, source: {}}\n",
                "image_resource.type",
            ),
            (
                "platform: linux\nimage_resource: {type: registry-image, source: {}}\n",
                "image_resource.source.repository",
            ),
            (
                "platform: linux\nrootfs_uri: docker:///busybox\n",
                "rootfs_uri",
            ),
            ("platform: linux\ncaches: [{path: ''}]\n", "caches[0].path"),
        ];
        for (src, field) in bad {
            let e = TaskConfig::parse("t.yml", src).unwrap_err();
            assert_eq!(e.field, field, "{src}: {e}");
        }
    }

    #[test]
    fn input_at_the_work_dir_itself() {
        let c = TaskConfig::parse(
            "t.yml",
            "platform: linux\ninputs: [{name: repo, path: .}, {name: b, path: ./x/}]\n",
        )
        .unwrap();
        assert_eq!(c.inputs[0].rel_path(), "");
        assert_eq!(c.inputs[1].rel_path(), "x");
        let e = TaskConfig::parse("t.yml", "platform: linux\noutputs: [{name: o, path: .}]\n")
            .unwrap_err();
        assert_eq!(e.field, "outputs[0].path");
    }

    #[test]
    fn vars_fill_then_validate() {
        let src = "platform: linux\ncontainer_limits: {cpu: ((cpu))}\nrun: {path: ((p)), args: [a((x))]}\n";
        let e = TaskConfig::parse("t.yml", src).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.msg.starts_with("undefined vars: cpu, p, x ("), "{e}");
        let v = Vars::from_flags(
            &[("p".into(), "sh".into()), ("x".into(), "b".into())],
            &[("cpu".into(), "512".into())],
            &[],
        )
        .unwrap();
        let c = TaskConfig::parse_with("t.yml", src, &v).unwrap();
        assert_eq!(c.container_limits.cpu, Some(512));
        assert_eq!((c.run.path.as_str(), c.run.args[0].as_str()), ("sh", "ab"));
        // A var of the wrong type is a type error at the field, with its line.
        let v = Vars::from_flags(&[("cpu".into(), "lots".into())], &[], &[]).unwrap();
        let e = TaskConfig::parse_with(
            "t.yml",
            "platform: linux\ncontainer_limits:\n  cpu: ((cpu))\n",
            &v,
        )
        .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.line),
            ("container_limits.cpu", Some(3))
        );
    }

    #[test]
    fn serializes_back_to_the_schema() {
        let c = TaskConfig::parse("task.yml", FULL).unwrap();
        let y = serde_norway::to_string(&c).unwrap();
        // What check prints parses to the same task.
        assert_eq!(TaskConfig::parse("again.yml", &y).unwrap(), c);
    }

    #[test]
    fn memory_units_are_binary() {
        assert_eq!(parse_memory("1024").unwrap(), 1024);
        assert_eq!(parse_memory("1KB").unwrap(), 1024);
        assert_eq!(parse_memory("2m").unwrap(), 2 << 20);
        assert_eq!(parse_memory("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1GB").unwrap(), 1073741824);
        assert!(parse_memory("1TB").is_err());
        assert!(parse_memory("GB").is_err());
        assert!(parse_memory("-1").is_err());
    }

    #[test]
    fn line_lookup() {
        assert_eq!(line_of(FULL, "run.user"), Some(28));
        assert_eq!(line_of(FULL, "inputs[1].path"), Some(10));
        assert_eq!(line_of(FULL, "container_limits.memory"), Some(31));
        assert_eq!(line_of(FULL, "nope"), None);
    }
}
