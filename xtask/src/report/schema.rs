//! The reports' JSON Schema (`xtask/report.schema.json`, the one statement of their format) and a
//! check of a document against it that names the first field that does not match.
//!
//! The check understands the few keywords the schema file uses, and a unit test keeps the file to
//! them, so no rule in it is silently skipped here. The end-to-end suite validates real reports
//! with a complete validator (Python's jsonschema) as well.

use std::sync::OnceLock;

use serde_json::Value;

/// The schema version every document the xtask writes carries (`schema_version`).
pub(crate) const VERSION: u32 = 3;

pub(crate) const TEXT: &str = include_str!("../../report.schema.json");

/// The first place a document departs from the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// A JSON pointer to the field (`/targets/0/wall_secs`); empty for the whole document.
    pub(crate) field: String,
    pub(crate) problem: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = if self.field.is_empty() { "the document" } else { &self.field };
        write!(f, "{field}: {}", self.problem)
    }
}

pub(crate) fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(TEXT).expect("xtask/report.schema.json is JSON (a unit test says so)"))
}

/// Checks a document against one of the schema's definitions (`build`, `history_line`, `list`,
/// `compare`), or against the whole schema when `def` is empty.
pub(crate) fn check(doc: &Value, def: &str) -> Result<(), Mismatch> {
    let root = schema();
    let node = if def.is_empty() { root } else { &root["$defs"][def] };
    assert!(node.is_object(), "report.schema.json has no definition `{def}`");
    walk(root, node, doc, "").map_err(|m| hint(doc, m))
}

/// A report written before the schema had a version, or by another version, is said to be one.
fn hint(doc: &Value, mut m: Mismatch) -> Mismatch {
    if m.field == "/schema_version" {
        m.problem = match &doc["schema_version"] {
            Value::Null => {
                format!("missing: written before reports had a schema version (this xtask reads version {VERSION})")
            }
            v => format!("{v}: written by an xtask of another schema version (this one reads version {VERSION})"),
        };
    }
    m
}

fn mismatch(path: &str, problem: String) -> Mismatch {
    Mismatch { field: path.to_string(), problem }
}

fn walk(root: &Value, schema: &Value, value: &Value, path: &str) -> Result<(), Mismatch> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/$defs/").unwrap_or_else(|| panic!("report.schema.json: unsupported $ref {r}"));
        walk(root, &root["$defs"][name], value, path)?;
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let results: Vec<Result<(), Mismatch>> = options.iter().map(|o| walk(root, o, value, path)).collect();
        match results.iter().filter(|r| r.is_ok()).count() {
            1 => {}
            // The branch that got furthest into the document says best what is wrong.
            0 => return results.into_iter().filter_map(Result::err).max_by_key(|m| m.field.len()).map_or(Ok(()), Err),
            _ => return Err(mismatch(path, "matches more than one of the schema's alternatives".into())),
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.iter().any(|t| is_type(value, t)) {
            return Err(mismatch(path, format!("expected {}, found {}", types.join(" or "), kind(value))));
        }
    }
    if let Some(c) = schema.get("const") {
        if value != c {
            return Err(mismatch(path, format!("expected {c}, found {value}")));
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            let list: Vec<String> = options.iter().map(Value::to_string).collect();
            return Err(mismatch(path, format!("expected one of {}, found {value}", list.join(", "))));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| n < min) {
            return Err(mismatch(path, format!("{value} is below the minimum {}", schema["minimum"])));
        }
        if schema["maximum"].as_f64().is_some_and(|max| n > max) {
            return Err(mismatch(path, format!("{value} is above the maximum {}", schema["maximum"])));
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                return Err(mismatch(&pointer(path, name), "missing".into()));
            }
        }
        for (name, v) in object {
            let here = pointer(path, name);
            match (schema["properties"].get(name), schema.get("additionalProperties")) {
                (Some(sub), _) => walk(root, sub, v, &here)?,
                (None, Some(Value::Bool(false))) => {
                    return Err(mismatch(&here, format!("not a field of schema version {VERSION}")))
                }
                (None, Some(sub @ Value::Object(_))) => walk(root, sub, v, &here)?,
                (None, _) => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            walk(root, items, v, &format!("{path}/{i}"))?;
        }
    }
    Ok(())
}

fn is_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        other => panic!("report.schema.json: unknown type {other}"),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON pointer one level down (RFC 6901: `~` and `/` in a name are escaped).
fn pointer(path: &str, name: &str) -> String {
    format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The keywords [`check`] applies or may pass over (annotations); anything else in the schema
    /// file fails a unit test.
    const KEYWORDS: &[&str] = &[
        "$schema",
        "$id",
        "title",
        "description",
        "$defs",
        "$ref",
        "oneOf",
        "type",
        "enum",
        "const",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
    ];

    /// Every key of every schema object in the file, with where it is.
    fn keywords(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
        let Some(object) = v.as_object() else { return };
        for (k, sub) in object {
            out.push((k.clone(), path.to_string()));
            match k.as_str() {
                // Their values are maps from names to schemas, not schemas.
                "$defs" | "properties" => {
                    for (name, s) in sub.as_object().unwrap() {
                        keywords(s, &format!("{path}/{k}/{name}"), out);
                    }
                }
                "oneOf" => {
                    for (i, s) in sub.as_array().unwrap().iter().enumerate() {
                        keywords(s, &format!("{path}/oneOf/{i}"), out);
                    }
                }
                "items" | "additionalProperties" => keywords(sub, &format!("{path}/{k}"), out),
                _ => {}
            }
        }
    }

    #[test]
    fn the_schema_file_uses_only_keywords_the_check_applies() {
        let mut found = Vec::new();
        keywords(schema(), "", &mut found);
        let unknown: Vec<_> = found.iter().filter(|(k, _)| !KEYWORDS.contains(&k.as_str())).collect();
        assert!(unknown.is_empty(), "teach schema.rs these keywords or leave them out of the file: {unknown:?}");
        // Each version reads the documents of the versions before it: the newest one listed is VERSION.
        let listed = schema()["$defs"]["schema_version"]["enum"].as_array().unwrap();
        assert_eq!(listed.last().unwrap(), &Value::from(VERSION), "the file and VERSION agree");
    }

    #[test]
    fn a_mismatch_names_the_field_and_what_is_wrong() {
        let line = |targets: Value| json!({"id": "a", "started": "s", "status": "ok", "names": [], "wall_secs": 1.0, "targets": targets});
        assert_eq!(check(&line(json!([])), "history_line"), Ok(()));
        let bad = check(
            &line(json!([{"name": "b", "wall_secs": "9", "steps": 1, "cached": 0, "size_bytes": null}])),
            "history_line",
        );
        assert_eq!(bad.unwrap_err().to_string(), "/targets/0/wall_secs: expected number, found a string");
        let mut extra = line(json!([]));
        extra["colour"] = json!("red");
        assert_eq!(check(&extra, "history_line").unwrap_err().field, "/colour");
        let mut missing = line(json!([]));
        missing.as_object_mut().unwrap().remove("started");
        assert_eq!(check(&missing, "history_line").unwrap_err().to_string(), "/started: missing");
        let mut status = line(json!([]));
        status["status"] = json!("fine");
        assert!(check(&status, "history_line").unwrap_err().problem.starts_with("expected one of \"ok\""));
        let negative = check(
            &line(json!([{"name": "b", "wall_secs": -1, "steps": 1, "cached": 0, "size_bytes": null}])),
            "history_line",
        );
        assert_eq!(negative.unwrap_err().field, "/targets/0/wall_secs");
    }

    #[test]
    fn an_unversioned_report_is_said_to_be_older_and_names_in_pointers_are_escaped() {
        let m = check(&json!({"id": "x"}), "build").unwrap_err();
        assert_eq!(m.field, "/schema_version");
        assert!(m.problem.contains("written before reports had a schema version"), "{m}");
        assert_eq!(pointer("/platform_sizes", "linux/arm64"), "/platform_sizes/linux~1arm64");
        // Of the top level's three alternatives, the one that got furthest is named.
        let m = check(&json!({"schema_version": 1, "kind": "list", "builds": [{}], "unreadable": []}), "").unwrap_err();
        assert!(m.field.starts_with("/builds/0/"), "{m}");
    }
}
