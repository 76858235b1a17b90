//! Shape errors: serde's messages about the document's structure (unknown key,
//! unknown `type:`, missing key, wrong value type) rewritten with a hint and moved
//! to the offending key or value with the position map.
//!
//! serde_yaml locates errors inside internally tagged enums only at the enclosing
//! entry, so the exact position is recovered from what the message names (a key,
//! a value) and the position map.

use crate::error::{DslError, Location};
use crate::load::Ctx;
use crate::raw;
use crate::suggest;
use crate::syntax::strip_marks;

/// A serde data-model error (as opposed to YAML syntax, alias or depth errors).
pub(crate) fn is_shape_error(e: &serde_yaml::Error) -> bool {
    let (_, msg) = split_path_and_message(&strip_marks(&e.to_string()));
    SERDE_MESSAGES.iter().any(|m| msg.starts_with(m))
}

/// Turn a serde_yaml path like `sources.txns.inputs[0]` into path segments.
fn split_serde_path(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in p.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(rest[..i].to_string());
            }
            rest = &rest[i..];
            while let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').unwrap_or(r.len());
                out.push(r[..end].to_string());
                rest = r.get(end + 1..).unwrap_or("");
            }
        } else if !rest.is_empty() && rest != "?" {
            out.push(rest.to_string());
        }
    }
    out
}

const SERDE_MESSAGES: &[&str] = &[
    "unknown field",
    "unknown variant",
    "missing field",
    "invalid type",
    "invalid value",
    "invalid length",
    "duplicate field",
    "data did not match",
];

/// Split `path: message` as serde_yaml writes it.
fn split_path_and_message(msg: &str) -> (Vec<String>, String) {
    for pat in SERDE_MESSAGES {
        if let Some(i) = msg.find(pat) {
            if let Some(prefix) = msg[..i].strip_suffix(": ") {
                return (split_serde_path(prefix), msg[i..].to_string());
            }
            return (Vec::new(), msg[i..].to_string());
        }
    }
    match msg.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (split_serde_path(p), m.to_string()),
        _ => (Vec::new(), msg.to_string()),
    }
}

/// Names between backticks: "expected `a`, `b` or `c`" -> [a, b, c].
fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// A path for messages: `source "txns"`, `"event_time.column" of source "txns"`.
pub(crate) fn describe(path: &[String]) -> String {
    fn tail(parts: &[String]) -> String {
        let mut s = String::new();
        for p in parts {
            if p.parse::<usize>().is_ok() && !s.is_empty() {
                s.push_str(&format!("[{p}]"));
            } else {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(p);
            }
        }
        s
    }
    let section = path.first().map(|s| match s.as_str() {
        "sources" => Some("source"),
        "transforms" => Some("transform"),
        "sinks" => Some("sink"),
        _ => None,
    });
    match (section.flatten(), path.len()) {
        (_, 0) => "the pipeline".to_string(),
        (Some(kind), 2) => format!("{kind} \"{}\"", path[1]),
        (Some(kind), n) if n > 2 => format!("\"{}\" of {kind} \"{}\"", tail(&path[2..]), path[1]),
        _ => format!("\"{}\"", tail(path)),
    }
}

fn friendly_type(t: &str) -> String {
    let t = t.trim();
    match t {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".to_string(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a string" | "a borrowed string" | "string" => "a string".to_string(),
        "a sequence" | "sequence" => "a list".to_string(),
        "a map" | "map" => "a map".to_string(),
        "a boolean" => "true or false".to_string(),
        "unit value" => "an empty value (null)".to_string(),
        t if t.starts_with("struct") => "a map".to_string(),
        t if t.starts_with("internally tagged enum") => "a map with a \"type\" key".to_string(),
        t if t.starts_with("integer `")
            || t.starts_with("floating point `")
            || t.starts_with("boolean `") =>
        {
            // integer `5` -> integer 5
            let v = backticked(t).into_iter().next().unwrap_or_default();
            let kind = t.split(' ').next().unwrap_or("value");
            let kind = if kind == "floating" { "number" } else { kind };
            format!("{kind} {v}")
        }
        other => other.to_string(),
    }
}

/// The literal in serde's "found" part: integer `5` -> 5, string "abc" -> abc.
fn found_literal(found: &str) -> Option<String> {
    if let Some(v) = backticked(found).into_iter().next() {
        return Some(v);
    }
    let s = found.strip_prefix("string ")?;
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        return None;
    }
    Some(inner.to_string())
}

fn section_kind(path: &[String]) -> &'static str {
    match path.first().map(String::as_str) {
        Some("sources") => "source",
        Some("transforms") => "transform",
        Some("sinks") => "sink",
        Some("dead_letter") => "dead_letter",
        _ => "",
    }
}

fn types_for(path: &[String]) -> &'static [&'static str] {
    match path.first().map(String::as_str) {
        Some("transforms") => raw::TRANSFORM_TYPES,
        Some("dead_letter") => raw::DEAD_LETTER_TYPES,
        _ => &[],
    }
}

/// Rewrite a serde shape error (unknown key, bad `type:`, wrong value type) into a
/// friendly message at the offending key or value.
pub(crate) fn shape_error(ctx: &Ctx, e: &serde_yaml::Error) -> DslError {
    let serde_loc = e.location().map(|l| Location::new(l.line(), l.column()));
    shape_error_in(ctx, &e.to_string(), serde_loc)
}

/// [`shape_error`] from serde's message (`path: message`) and, when serde
/// knew it, its location.
pub(crate) fn shape_error_in(ctx: &Ctx, full: &str, serde_loc: Option<Location>) -> DslError {
    let (msg_path, msg) = split_path_and_message(&strip_marks(full));
    let pos = &ctx.positions;
    // The node serde was at: the deepest node at serde's location under its path.
    let anchor: Vec<String> = serde_loc
        .and_then(|l| pos.deepest_containing(l, &msg_path, false))
        .map(|n| n.path.clone())
        .unwrap_or_else(|| msg_path.clone());
    let anchor_loc = pos.node(&anchor).map(|n| n.value).or(serde_loc);

    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default().to_string();
        let expected = backticked(rest.split_once("expected").map(|x| x.1).unwrap_or(""));
        let found = if anchor.last() == Some(&field) {
            pos.node(&anchor)
        } else {
            pos.find_key_under(&anchor, &field)
                .or_else(|| pos.find_key_under(&msg_path, &field))
                .or_else(|| pos.find_key_under(&[], &field))
        };
        let (loc, parent) = match found {
            Some(n) => (n.key.or(Some(n.value)), n.path[..n.path.len() - 1].to_vec()),
            None => (serde_loc, anchor.clone()),
        };
        let mut message = format!("unknown key \"{field}\"");
        if !parent.is_empty() {
            message.push_str(&format!(" in {}", describe(&parent)));
        }
        let choices: Vec<&str> = expected.iter().map(String::as_str).collect();
        let hint = if choices.is_empty() {
            format!("{} takes no other keys", describe(&parent))
        } else {
            suggest::hint_with_choices(&field, &choices, "keys")
        };
        return ctx.error(loc, message).with_hint(hint);
    }

    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let variant = rest.split('`').next().unwrap_or_default().to_string();
        let expected = backticked(rest.split_once("expected").map(|x| x.1).unwrap_or(""));
        let node = pos
            .node(&anchor)
            .filter(|n| n.scalar.as_deref() == Some(variant.as_str()))
            .or_else(|| pos.find_scalar_under(&anchor, &variant))
            .or_else(|| pos.find_scalar_under(&msg_path, &variant));
        let path = node
            .as_ref()
            .map(|n| n.path.clone())
            .unwrap_or_else(|| anchor.clone());
        let loc = node.map(|n| n.value).or(serde_loc);
        let choices: Vec<&str> = expected.iter().map(String::as_str).collect();
        let is_type = path.last().map(String::as_str) == Some("type");
        let message = if is_type {
            format!("unknown {} type \"{variant}\"", section_kind(&path))
                .replace("unknown  type", "unknown type")
        } else {
            format!("unknown value \"{variant}\" for {}", describe(&path))
        };
        let what = if is_type { "types" } else { "values" };
        return ctx
            .error(loc, message)
            .with_hint(suggest::hint_with_choices(&variant, &choices, what));
    }

    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default().to_string();
        // For the path use serde's (precise for whole entries); event_time is nested.
        let mut map =
            if let Some(n) = serde_loc.and_then(|l| pos.deepest_containing(l, &msg_path, true)) {
                n.path.clone()
            } else {
                msg_path.clone()
            };
        if field == "column"
            && let Some(et) = pos.find_key_under(&map, "event_time")
        {
            map = et.path.clone();
        }
        let loc = pos.node(&map).map(|n| n.value).or(serde_loc);
        let message = format!("{} is missing the required key \"{field}\"", describe(&map));
        let hint = if field == "type" {
            let types = types_for(&map);
            if types.is_empty() {
                "add a `type:`".to_string()
            } else {
                format!(
                    "add `type:` with one of: {}",
                    suggest::list(types.iter().copied())
                )
            }
        } else {
            format!("add `{field}: ...`")
        };
        return ctx.error(loc, message).with_hint(hint);
    }

    if let Some(rest) = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))
    {
        let (found, expected) = rest
            .rsplit_once(", expected ")
            .unwrap_or((rest, "something else"));
        let node = found_literal(found).and_then(|lit| {
            pos.node(&anchor)
                .filter(|n| n.scalar.as_deref() == Some(lit.as_str()))
                .or_else(|| pos.find_scalar_under(&anchor, &lit))
        });
        let (path, loc) = match node {
            Some(n) => (n.path.clone(), Some(n.value)),
            None => (anchor.clone(), anchor_loc),
        };
        let expected = friendly_type(expected);
        let message = if path.is_empty() {
            format!("expected {expected}, found {}", friendly_type(found))
        } else {
            format!(
                "invalid value for {}: expected {expected}, found {}",
                describe(&path),
                friendly_type(found)
            )
        };
        let hint = match path.last().map(String::as_str) {
            Some("inputs") => Some("write a list of ids, e.g. inputs: [txns]".to_string()),
            Some("sources" | "transforms" | "sinks") if path.len() == 1 => Some(format!(
                "\"{}\" maps each id to its settings, e.g.\n    {}:\n      my_id: {{ type: ... }}",
                path[0], path[0]
            )),
            Some("schema") => Some(
                "write the schema as a map, e.g. schema: { id: int64, name: utf8? }".to_string(),
            ),
            _ => None,
        };
        return ctx.error(loc, message).with_hint_opt(hint);
    }

    if msg.starts_with("data did not match any variant of untagged enum") {
        // Our untagged values are durations and rates; a list or map was given.
        const SCALAR_KEYS: &[&str] = &["rate", "interval", "timeout", "max_delay", "idle_timeout"];
        let node = pos.find_under(&anchor, |n| {
            n.is_collection() && n.key_name().is_some_and(|k| SCALAR_KEYS.contains(&k))
        });
        let (path, loc) = match node {
            Some(n) => (n.path.clone(), Some(n.value)),
            None => (anchor.clone(), anchor_loc),
        };
        return ctx
            .error(
                loc,
                format!(
                    "invalid value for {}: expected a number or a string",
                    describe(&path)
                ),
            )
            .with_hint("durations look like 5s or 250ms, rates like 50000/s");
    }

    let message = if anchor.is_empty() {
        msg
    } else {
        format!("{}: {msg}", describe(&anchor))
    };
    ctx.error(anchor_loc, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_paths() {
        assert_eq!(
            split_serde_path("sources.txns.inputs[0]"),
            ["sources", "txns", "inputs", "0"]
        );
        assert_eq!(split_serde_path("a[1][2].b"), ["a", "1", "2", "b"]);
        assert_eq!(split_serde_path("."), Vec::<String>::new());
        let (p, m) =
            split_path_and_message("transforms: unknown field `wher`, expected `a` or `b`");
        assert_eq!(p, ["transforms"]);
        assert_eq!(m, "unknown field `wher`, expected `a` or `b`");
        let (p, m) = split_path_and_message("unknown field `x`, there are no fields");
        assert!(p.is_empty());
        assert!(m.starts_with("unknown field"));
    }

    #[test]
    fn describing_paths() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(describe(&p(&[])), "the pipeline");
        assert_eq!(describe(&p(&["sources", "txns"])), "source \"txns\"");
        assert_eq!(
            describe(&p(&["sources", "txns", "event_time", "column"])),
            "\"event_time.column\" of source \"txns\""
        );
        assert_eq!(
            describe(&p(&["transforms", "big", "inputs", "1"])),
            "\"inputs[1]\" of transform \"big\""
        );
        assert_eq!(
            describe(&p(&["checkpoint", "interval"])),
            "\"checkpoint.interval\""
        );
        assert_eq!(describe(&p(&["sources"])), "\"sources\"");
    }
}
