//! `((var))` placeholders in task files, filled the way `fly execute` fills them (Concourse
//! `vars/` and fly's `templatehelpers.YamlTemplateWithParams`):
//!
//! - the values come from `-v NAME=STRING`, `-y NAME=YAML` (both may name a field path,
//!   `-v repo.branch=main`) and `-l FILE` (a YAML mapping). The flags are looked up first,
//!   then the files, the last `-l` first;
//! - `((name))`, `((name.field.sub))`, `(("dotted.name".field))`; a reference with a var source
//!   (`((vault:secret))`) is never found: berth has no credential managers;
//! - interpolation works on the parsed document: a string that is exactly one placeholder is
//!   replaced by the value with its type (a number stays a number, a mapping a mapping); inside
//!   a longer string the value is substituted as text, which only scalars can be;
//! - map keys are interpolated too.
//!
//! Unlike fly, which leaves unknown placeholders for the server's credential managers, the
//! caller gets every undefined name back, so `run` and `check` can refuse the task naming them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

/// A parsed `((…))` reference (Concourse `vars.Reference`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `source:` prefix (a credential manager's name in Concourse).
    pub source: Option<String>,
    /// The var's name.
    pub path: String,
    /// Fields below it (`((name.a.b))` → `[a, b]`).
    pub fields: Vec<String>,
}

/// `s.find(c)` outside double quotes.
fn find_unquoted(s: &str, c: char) -> Option<usize> {
    let mut quoted = false;
    for (i, ch) in s.char_indices() {
        if ch == '"' {
            quoted = !quoted;
        } else if ch == c && !quoted {
            return Some(i);
        }
    }
    None
}

impl Reference {
    /// Parse `[source:]name[.field…]`, fields optionally double-quoted (`"a.b"`), as
    /// Concourse's `ParseReference` does.
    pub fn parse(name: &str) -> Result<Reference, String> {
        let mut input = name;
        let mut source = None;
        if let Some(i) = find_unquoted(input, ':') {
            let s = &input[..i];
            if s.contains('"') {
                return Err(format!("invalid var '{name}': source must not be quoted"));
            }
            source = Some(s.to_string());
            input = &input[i + 1..];
        }
        let mut fields = Vec::new();
        loop {
            let (seg, rest) = match find_unquoted(input, '.') {
                Some(i) => (&input[..i], Some(&input[i + 1..])),
                None => (input, None),
            };
            let seg = seg.trim().replace('"', "");
            if seg.is_empty() {
                return Err(format!("invalid var '{name}': empty field"));
            }
            fields.push(seg);
            match rest {
                Some(r) => input = r,
                None => break,
            }
        }
        let path = fields.remove(0);
        Ok(Reference {
            source,
            path,
            fields,
        })
    }
}

impl std::fmt::Display for Reference {
    /// Concourse's `Reference.String`: segments with `,.:/ ` in them are quoted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seg = |s: &str| {
            if s.contains([',', '.', ':', '/', ' ']) {
                format!("{s:?}")
            } else {
                s.to_string()
            }
        };
        if let Some(s) = &self.source {
            write!(f, "{s}:")?;
        }
        write!(f, "{}", seg(&self.path))?;
        for x in &self.fields {
            write!(f, ".{}", seg(x))?;
        }
        Ok(())
    }
}

/// The values a task file's placeholders are filled from.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// Looked up in order: the flags' mapping first, then the files, last given first.
    layers: Vec<Mapping>,
}

/// Set `fields` below `out[path]`, making mappings on the way (Concourse `KVPairs.Expand`).
fn upsert(out: &mut Mapping, path: &str, fields: &[String], value: Value) {
    let key = Value::String(path.to_string());
    match (fields.split_first(), out.get_mut(&key)) {
        (None, _) => {
            out.insert(key, value);
        }
        (Some((f, rest)), Some(Value::Mapping(m))) => upsert(m, f, rest, value),
        (Some((f, rest)), _) => {
            let mut m = Mapping::new();
            upsert(&mut m, f, rest, value);
            out.insert(key, Value::Mapping(m));
        }
    }
}

impl Vars {
    /// From fly's flags: `-v NAME=STRING`, `-y NAME=YAML`, `-l FILE`. Errors name the flag.
    pub fn from_flags(
        strings: &[(String, String)],
        yamls: &[(String, String)],
        files: &[PathBuf],
    ) -> Result<Vars, String> {
        let mut flags = Mapping::new();
        for (k, v) in strings {
            let r = Reference::parse(k).map_err(|e| format!("-v {k}=…: {e}"))?;
            upsert(&mut flags, &r.path, &r.fields, Value::String(v.clone()));
        }
        for (k, v) in yamls {
            let r = Reference::parse(k).map_err(|e| format!("-y {k}=…: {e}"))?;
            let val: Value =
                serde_norway::from_str(v).map_err(|e| format!("-y {k}={v}: not YAML: {e}"))?;
            upsert(&mut flags, &r.path, &r.fields, val);
        }
        let mut layers = vec![flags];
        for f in files.iter().rev() {
            layers.push(load_file(f)?);
        }
        Ok(Vars { layers })
    }

    /// The value of `r`, `None` when undefined; an error when the var exists but a field
    /// does not (Concourse fails the same way).
    pub fn get(&self, r: &Reference) -> Result<Option<Value>, String> {
        if r.source.is_some() {
            return Ok(None);
        }
        for m in &self.layers {
            let Some(mut v) = m.get(Value::String(r.path.clone())) else {
                continue;
            };
            for f in &r.fields {
                v = match v {
                    Value::Mapping(m) => m
                        .get(Value::String(f.clone()))
                        .ok_or_else(|| format!("missing field '{f}' in var: {r}"))?,
                    other => {
                        return Err(format!(
                            "cannot access field '{f}' of non-map value ({}) from var: {r}",
                            kind(other)
                        ))
                    }
                };
            }
            return Ok(Some(v.clone()));
        }
        Ok(None)
    }
}

fn load_file(f: &Path) -> Result<Mapping, String> {
    let src = std::fs::read_to_string(f).map_err(|e| {
        format!(
            "-l {}: could not read template variables file: {e}",
            f.display()
        )
    })?;
    match serde_norway::from_str::<Value>(&src) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => Err(format!(
            "-l {}: want a YAML mapping of var names",
            f.display()
        )),
        Err(e) => Err(format!(
            "-l {}: could not unmarshal template variables: {e}",
            f.display()
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Sequence(_) => "list",
        Value::Mapping(_) => "map",
        Value::Tagged(_) => "tagged value",
    }
}

/// The `((…))` placeholders in `s`: (byte range, name), leftmost first, as Concourse's
/// `\(\((([-/\.\w\pL]+\:)?[-/\.:@"\w\pL]+)\)\)` finds them.
pub fn placeholders(s: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let ok = |c: char| c.is_alphanumeric() || "_-/.:@\"".contains(c);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = s[i..].find("((") {
        let start = i + off;
        let body = &s[start + 2..];
        let n = body.find(|c: char| !ok(c)).unwrap_or(body.len());
        if n > 0 && body[n..].starts_with("))") {
            out.push((start..start + 2 + n + 2, body[..n].to_string()));
            i = start + n + 4;
        } else {
            i = start + 1;
        }
    }
    out
}

/// Fill every placeholder in `doc` from `vars`. Returns the names that are undefined (their
/// placeholders are left as they are); errors for a missing field of a defined var and for a
/// non-scalar value inside a longer string.
pub fn interpolate(doc: &mut Value, vars: &Vars) -> Result<BTreeSet<String>, String> {
    let mut missing = BTreeSet::new();
    walk(doc, vars, &mut missing)?;
    Ok(missing)
}

fn walk(v: &mut Value, vars: &Vars, missing: &mut BTreeSet<String>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            if let Some(new) = fill(s, vars, missing)? {
                *v = new;
            }
        }
        Value::Sequence(items) => {
            for x in items {
                walk(x, vars, missing)?;
            }
        }
        Value::Mapping(m) => {
            let old = std::mem::take(m);
            for (mut k, mut val) in old {
                walk(&mut val, vars, missing)?;
                walk(&mut k, vars, missing)?;
                m.insert(k, val);
            }
        }
        Value::Tagged(t) => walk(&mut t.value, vars, missing)?,
        _ => {}
    }
    Ok(())
}

/// The interpolated value of the string `s`, or `None` when it has no defined placeholder.
fn fill(s: &str, vars: &Vars, missing: &mut BTreeSet<String>) -> Result<Option<Value>, String> {
    let found = placeholders(s);
    if found.is_empty() {
        return Ok(None);
    }
    let whole = found.len() == 1 && found[0].0 == (0..s.len());
    let mut out = s.to_string();
    let mut changed = false;
    for (_, name) in found {
        let r = Reference::parse(&name)?;
        let Some(val) = vars.get(&r)? else {
            missing.insert(r.to_string());
            continue;
        };
        if whole {
            return Ok(Some(val));
        }
        let text = match &val {
            Value::String(x) => x.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "cannot interpolate non-primitive value ({}) from var: {name}",
                    kind(other)
                ))
            }
        };
        out = out.replace(&format!("(({name}))"), &text);
        changed = true;
    }
    Ok(changed.then_some(Value::String(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)], y: &[(&str, &str)]) -> Vars {
        let own = |x: &[(&str, &str)]| {
            x.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        Vars::from_flags(&own(v), &own(y), &[]).unwrap()
    }

    fn interp(src: &str, v: &Vars) -> (Value, BTreeSet<String>) {
        let mut doc: Value = serde_norway::from_str(src).unwrap();
        let m = interpolate(&mut doc, v).unwrap();
        (doc, m)
    }

    #[test]
    fn references_parse_like_concourse() {
        let r = Reference::parse("a.b.c").unwrap();
        assert_eq!((r.path.as_str(), r.fields.len()), ("a", 2));
        let r = Reference::parse(r#"src:"x.y".z"#).unwrap();
        assert_eq!(r.source.as_deref(), Some("src"));
        assert_eq!(r.path, "x.y");
        assert_eq!(r.fields, vec!["z"]);
        assert_eq!(r.to_string(), r#"src:"x.y".z"#);
        assert!(Reference::parse("a..b").is_err());
        assert!(Reference::parse(r#""s":x"#).is_err());
    }

    #[test]
    fn scanner_matches_concourse_regex() {
        let p = placeholders("a ((x)) b (((y))) ((bad name)) ((z.w))");
        let names: Vec<&str> = p.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, vec!["x", "y", "z.w"]);
        assert!(placeholders("(())").is_empty());
    }

    #[test]
    fn whole_placeholders_keep_their_type() {
        let v = vars(&[("s", "text")], &[("n", "42"), ("m", "{a: 1, b: [x]}")]);
        let (doc, missing) = interp("a: ((n))\nb: ((m))\nc: ((s))\nd: ((m.b))\n", &v);
        assert!(missing.is_empty());
        assert_eq!(doc["a"], Value::Number(42.into()));
        assert_eq!(doc["b"]["a"], Value::Number(1.into()));
        assert_eq!(doc["c"], Value::String("text".into()));
        assert_eq!(doc["d"][0], Value::String("x".into()));
    }

    #[test]
    fn partial_placeholders_are_text() {
        let v = vars(
            &[("repo.branch", "main"), ("repo.name", "berth")],
            &[("n", "3")],
        );
        let (doc, _) = interp("a: ((repo.name))@((repo.branch)) x((n))\n", &v);
        assert_eq!(doc["a"], Value::String("berth@main x3".into()));
        let mut doc: Value = serde_norway::from_str("a: x((repo))\n").unwrap();
        let e = interpolate(&mut doc, &v).unwrap_err();
        assert!(e.contains("non-primitive"), "{e}");
    }

    #[test]
    fn undefined_are_collected_and_left() {
        let v = vars(&[("a", "1")], &[]);
        let (doc, missing) = interp("x: ((a))\ny: ((b)) and ((c.d))\nz: ((vault:s))\n", &v);
        assert_eq!(doc["y"], Value::String("((b)) and ((c.d))".into()));
        assert_eq!(
            missing.into_iter().collect::<Vec<_>>(),
            vec!["b", "c.d", "vault:s"]
        );
        let mut doc: Value = serde_norway::from_str("x: ((a.nope))\n").unwrap();
        let e = interpolate(&mut doc, &v).unwrap_err();
        assert!(e.contains("cannot access field 'nope'"), "{e}");
    }

    #[test]
    fn keys_flags_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let f1 = dir.path().join("1.yml");
        let f2 = dir.path().join("2.yml");
        std::fs::write(&f1, "k: from-1\nonly1: one\nobj: {x: 1}\n").unwrap();
        std::fs::write(&f2, "k: from-2\n").unwrap();
        let files = vec![f1, f2];
        let v = Vars::from_flags(&[], &[], &files).unwrap();
        let (doc, missing) = interp("((only1)): ((k))\nx: ((obj.x))\n", &v);
        assert!(missing.is_empty());
        assert_eq!(doc["one"], Value::String("from-2".into()));
        assert_eq!(doc["x"], Value::Number(1.into()));
        // Flags win over files.
        let v = Vars::from_flags(&[("k".into(), "flag".into())], &[], &files).unwrap();
        let (doc, _) = interp("a: ((k))\n", &v);
        assert_eq!(doc["a"], Value::String("flag".into()));
        assert!(Vars::from_flags(&[], &[], &[dir.path().join("none")]).is_err());
    }
}
