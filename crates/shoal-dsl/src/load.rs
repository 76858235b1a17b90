//! From bytes to a [`PipelineSpec`]: input checks, YAML syntax, document shape.
//!
//! The stages, each turning its failures into a located [`DslError`]:
//! 1. file checks: exists, not a directory, at most [`MAX_FILE_BYTES`];
//! 2. text checks: UTF-8, no NUL or other control characters;
//! 3. YAML syntax with serde_yaml into a `Value` (this also stops alias bombs,
//!    deep nesting and duplicate keys); the top level must be a map;
//! 4. the position pass ([`PositionMap`]) over the accepted text;
//! 5. the shape, with serde into the raw types (unknown keys, `type:` values, value
//!    types), with serde_yaml's messages rewritten and re-located;
//! 6. conversion and semantic checks ([`crate::convert`]).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use miette::NamedSource;

use crate::convert;
use crate::error::{DslError, Location};
use crate::positions::PositionMap;
use crate::raw::{self, RawPipeline};
use crate::spec::PipelineSpec;
use crate::suggest;

/// The largest pipeline file accepted, in bytes (1 MiB).
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// A pipeline that works, shown when the file is empty or not a map.
const MINIMAL_EXAMPLE: &str = "a minimal pipeline:
    sources:
      txns: { type: generator, count: 10 }
    sinks:
      out: { type: stdout, inputs: [txns] }";

/// Shared by every stage: the file name, its text (for labels) and positions.
pub(crate) struct Ctx {
    pub file: String,
    pub source: Arc<NamedSource<String>>,
    pub positions: Arc<PositionMap>,
}

impl Ctx {
    pub fn error(&self, loc: Option<Location>, message: impl Into<String>) -> DslError {
        let e = DslError::new(&self.file, message);
        match loc {
            Some(loc) => e.located(&self.source, loc),
            None => e,
        }
    }

    /// An error at the value of `path` (or its nearest parent, or 1:1).
    pub fn at_value(&self, path: &[&str], message: impl Into<String>) -> DslError {
        let loc = self
            .positions
            .nearest_value(path)
            .unwrap_or(Location::new(1, 1));
        self.error(Some(loc), message)
    }

    /// An error at the key naming `path` (or its nearest parent, or 1:1).
    pub fn at_key(&self, path: &[&str], message: impl Into<String>) -> DslError {
        let loc = self
            .positions
            .nearest_key(path)
            .unwrap_or(Location::new(1, 1));
        self.error(Some(loc), message)
    }
}

/// Read and parse a pipeline file.
///
/// Rejects, with a [`DslError`] and never a panic: a missing file, a directory, a file
/// over [`MAX_FILE_BYTES`], bytes that are not UTF-8 text, and everything
/// [`parse_str`] rejects.
pub fn load_file(path: &Path) -> Result<PipelineSpec, DslError> {
    let file = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| io_error(&file, &e))?;
    if meta.is_dir() {
        return Err(DslError::new(&file, "is a directory, not a pipeline file")
            .with_hint("pass the path of a YAML pipeline file, e.g. pipelines/example.yaml"));
    }
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(too_large(&file, meta.len()));
    }
    let f = std::fs::File::open(path).map_err(|e| io_error(&file, &e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(&file, &e))?;
    let mut spec = parse_bytes(&file, &bytes)?;
    spec.file = path.to_path_buf();
    Ok(spec)
}

/// Parse a pipeline from raw bytes (checked to be UTF-8 text first).
pub fn parse_bytes(file_name: &str, bytes: &[u8]) -> Result<PipelineSpec, DslError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_large(file_name, bytes.len() as u64));
    }
    let nul = bytes.iter().position(|&b| b == 0);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) if nul.is_none_or(|n| n > e.valid_up_to()) => {
            let at = e.valid_up_to();
            let loc = location_of_byte(bytes, at);
            let source = lossy_source(file_name, bytes);
            let mut err = DslError::new(
                file_name,
                format!(
                    "invalid UTF-8: byte 0x{:02x} at offset {at} is not text",
                    bytes[at]
                ),
            )
            .located(&source, loc);
            err = if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
                err.with_hint("the file looks like UTF-16; save it as UTF-8")
            } else {
                err.with_hint("pipeline files must be UTF-8 text; is this a binary file?")
            };
            return Err(err);
        }
        Err(_) => {
            // A NUL comes first; report it (from the valid prefix).
            let n = nul.unwrap_or(0);
            let source = lossy_source(file_name, bytes);
            return Err(nul_error(file_name, &source, location_of_byte(bytes, n), n));
        }
    };
    parse_str(file_name, text)
}

/// Parse a pipeline from text; `file_name` is used in messages and for the default
/// pipeline name (its stem).
pub fn parse_str(file_name: &str, text: &str) -> Result<PipelineSpec, DslError> {
    // A UTF-8 byte-order mark is invisible in editors (and confuses serde_yaml).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.len() > MAX_FILE_BYTES {
        return Err(too_large(file_name, text.len() as u64));
    }
    let source = Arc::new(NamedSource::new(file_name, text.to_string()).with_language("yaml"));
    let mut ctx = Ctx {
        file: file_name.to_string(),
        source,
        positions: Arc::new(PositionMap::default()),
    };

    check_characters(&ctx, text)?;
    if is_blank(text) {
        return Err(DslError::new(
            file_name,
            "the file is empty; a pipeline needs sources and sinks",
        )
        .with_hint(MINIMAL_EXAMPLE));
    }

    // The typed parse checks YAML syntax, alias bombs and nesting depth, and the
    // shape (unknown keys, `type:` values, value types).
    let typed: Result<RawPipeline, serde_yaml::Error> = serde_yaml::from_str(text);
    if let Err(e) = &typed {
        if !is_shape_error(e) {
            return Err(syntax_error(&ctx, text, e));
        }
        // serde stops at the first shape error; make sure the whole document is
        // sound (alias expansion, nesting depth, duplicate keys) and a map before
        // anything else looks at it.
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| syntax_error(&ctx, text, &e))?;
        check_top_level(&ctx, text, &value)?;
    }

    // serde_yaml accepted the YAML: now the positions (and duplicate keys, which a
    // map of ids would silently merge).
    let (positions, duplicate) = PositionMap::build(text);
    ctx.positions = Arc::new(positions);
    if let Some(dup) = duplicate {
        return Err(duplicate_error(&ctx, &dup));
    }
    match typed {
        Ok(raw) => convert::convert(raw, &ctx),
        Err(e) => Err(shape_error(&ctx, &e)),
    }
}

/// A serde data-model error (as opposed to YAML syntax, alias or depth errors).
fn is_shape_error(e: &serde_yaml::Error) -> bool {
    let (_, msg) = split_path_and_message(&strip_marks(&e.to_string()));
    SERDE_MESSAGES.iter().any(|m| msg.starts_with(m))
}

fn io_error(file: &str, e: &std::io::Error) -> DslError {
    match e.kind() {
        std::io::ErrorKind::NotFound => DslError::new(file, "no such file")
            .with_hint("check the path; `shoal validate FILE` takes a YAML file"),
        std::io::ErrorKind::PermissionDenied => DslError::new(file, "permission denied"),
        std::io::ErrorKind::IsADirectory => {
            DslError::new(file, "is a directory, not a pipeline file")
        }
        _ => DslError::new(file, format!("cannot read the file: {e}")),
    }
}

fn too_large(file: &str, len: u64) -> DslError {
    DslError::new(
        file,
        format!(
            "the file is {:.1} MiB; pipeline files are limited to 1 MiB",
            len as f64 / (1024.0 * 1024.0)
        ),
    )
    .with_hint("is this really a pipeline file? Put data in a file source instead")
}

fn lossy_source(file: &str, bytes: &[u8]) -> Arc<NamedSource<String>> {
    Arc::new(NamedSource::new(
        file,
        String::from_utf8_lossy(bytes).into_owned(),
    ))
}

/// Line and column (in characters, both 1-based) of byte `at`, from the UTF-8-valid
/// prefix of `bytes`.
fn location_of_byte(bytes: &[u8], at: usize) -> Location {
    let prefix = &bytes[..at.min(bytes.len())];
    let line_start = prefix
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = String::from_utf8_lossy(&prefix[line_start..])
        .chars()
        .count()
        + 1;
    Location::new(line, col)
}

fn nul_error(file: &str, source: &Arc<NamedSource<String>>, loc: Location, at: usize) -> DslError {
    DslError::new(
        file,
        format!("NUL byte at offset {at}: pipeline files are text"),
    )
    .located(source, loc)
    .with_hint("is this a binary file?")
}

/// NUL bytes and other control characters YAML forbids.
fn check_characters(ctx: &Ctx, text: &str) -> Result<(), DslError> {
    for (i, c) in text.char_indices() {
        let bad = match c {
            '\t' | '\n' | '\r' => false,
            '\u{85}' => false,
            c if (c as u32) < 0x20 || c == '\u{7f}' => true,
            '\u{80}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => true,
            _ => false,
        };
        if bad {
            let loc = location_of_byte(text.as_bytes(), i);
            if c == '\0' {
                return Err(nul_error(&ctx.file, &ctx.source, loc, i));
            }
            return Err(ctx
                .error(
                    Some(loc),
                    format!(
                        "control character U+{:04X} is not allowed in YAML",
                        c as u32
                    ),
                )
                .with_hint("remove it; is this a binary file?"));
        }
    }
    Ok(())
}

/// Only whitespace, comments and document markers.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// Where the document's content starts: the first character that is not blank, a
/// comment or a `---` marker.
fn first_content(text: &str) -> Location {
    for (n, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') || t == "---" {
            continue;
        }
        let col = l.chars().take_while(|c| c.is_whitespace()).count() + 1;
        return Location::new(n + 1, col);
    }
    Location::new(1, 1)
}

fn check_top_level(ctx: &Ctx, text: &str, value: &serde_yaml::Value) -> Result<(), DslError> {
    use serde_yaml::Value;
    let found = match value {
        Value::Mapping(_) => return Ok(()),
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            let more = if short.len() < s.len() { "..." } else { "" };
            format!("the string \"{short}{more}\"")
        }
        Value::Sequence(_) => "a list".to_string(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    };
    Err(ctx
        .error(
            Some(first_content(text)),
            format!(
                "expected a pipeline (a map with sources, transforms and sinks), found {found}"
            ),
        )
        .with_hint(MINIMAL_EXAMPLE))
}

fn duplicate_error(ctx: &Ctx, dup: &crate::positions::Duplicate) -> DslError {
    let where_ = if dup.map.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in {}", describe(&dup.map))
    };
    let section =
        dup.map.len() == 1 && matches!(dup.map[0].as_str(), "sources" | "transforms" | "sinks");
    let mut hint = format!(
        "\"{}\" is first defined at line {}",
        dup.key, dup.first.line
    );
    if section {
        hint.push_str("; ids must be unique, rename one of them");
    } else {
        hint.push_str("; remove one of them");
    }
    ctx.error(
        Some(dup.second),
        format!("duplicate key \"{}\" {where_}", dup.key),
    )
    .with_hint(hint)
}

/// `(line, column)` of every ` at line N column M` in a serde_yaml message.
fn marks_in(msg: &str) -> Vec<Location> {
    let mut out = Vec::new();
    let mut rest = msg;
    while let Some(i) = rest.find("line ") {
        rest = &rest[i + 5..];
        let line: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = &rest[line.len()..];
        if let Some(col_part) = after.strip_prefix(" column ") {
            let col: String = col_part.chars().take_while(char::is_ascii_digit).collect();
            if let (Ok(l), Ok(c)) = (line.parse(), col.parse()) {
                out.push(Location::new(l, c));
            }
        }
    }
    out
}

/// The message with ` at line N column M` and ` at position N` removed.
fn strip_marks(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    loop {
        let next = [" at line ", " at position "]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, *p)))
            .min();
        let Some((i, pat)) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..i]);
        let after = &rest[i + pat.len()..];
        // skip "N column M" or "N"
        let mut skip = after.chars().take_while(char::is_ascii_digit).count();
        if pat == " at line "
            && let Some(c) = after[skip..].strip_prefix(" column ")
        {
            skip += " column ".len() + c.chars().take_while(char::is_ascii_digit).count();
        }
        rest = &after[skip..];
    }
    out
}

/// The character at a location, if any.
fn char_at(text: &str, loc: Location) -> Option<char> {
    text.lines()
        .nth(loc.line.checked_sub(1)?)?
        .chars()
        .nth(loc.column.checked_sub(1)?)
}

/// The first tab in the indentation of line `line`, as a location.
fn indent_tab(text: &str, line: usize) -> Option<Location> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let indent: Vec<char> = l.chars().take_while(|c| c.is_whitespace()).collect();
    indent
        .iter()
        .position(|&c| c == '\t')
        .map(|i| Location::new(line, i + 1))
}

fn syntax_error(ctx: &Ctx, text: &str, e: &serde_yaml::Error) -> DslError {
    let full = e.to_string();
    let loc = e.location().map(|l| Location::new(l.line(), l.column()));
    let marks = marks_in(&full);
    let plain = strip_marks(&full);

    if plain.contains("duplicate entry with key") {
        // Syntactically fine: the position pass finds the second key exactly.
        let (positions, dup) = PositionMap::build(text);
        if let Some(dup) = dup {
            let ctx = Ctx {
                file: ctx.file.clone(),
                source: Arc::clone(&ctx.source),
                positions: Arc::new(positions),
            };
            return duplicate_error(&ctx, &dup);
        }
        return ctx.error(
            loc,
            plain.replace("duplicate entry with key", "duplicate key"),
        );
    }
    if plain.contains("recursion limit exceeded") {
        return ctx
            .error(
                loc,
                "the document is nested too deeply (more than 128 levels)",
            )
            .with_hint("a pipeline file needs only a few levels of nesting");
    }
    if plain.contains("repetition limit exceeded") {
        return ctx
            .error(
                None,
                "too many alias expansions (a \"billion laughs\" alias bomb?)",
            )
            .with_hint("expand the YAML aliases (*name) by hand or use fewer of them");
    }
    if plain.contains("more than one document") {
        let second = text
            .lines()
            .enumerate()
            .skip_while(|(_, l)| {
                l.trim().is_empty() || l.trim_start().starts_with('#') || l.starts_with("---")
            })
            .find(|(_, l)| l.starts_with("---"))
            .map(|(n, _)| Location::new(n + 1, 1));
        return ctx
            .error(second, "the file holds more than one YAML document")
            .with_hint("put one pipeline per file (remove the `---` separator)");
    }
    if plain.contains("unknown anchor") {
        return ctx
            .error(
                loc,
                "alias refers to an anchor that is not defined before it",
            )
            .with_hint("define `&name` before using `*name`");
    }

    // libyaml scanner/parser errors: "problem at MARK, context at MARK".
    let (problem, context) = match plain.split_once(", ") {
        Some((p, c)) => (p.trim().to_string(), Some(c.trim().to_string())),
        None => (plain.trim().to_string(), None),
    };
    let problem_loc = marks.first().copied().or(loc);
    let context_loc = marks.get(1).copied();

    // Tabs in indentation cause various errors: name the tab.
    for line in [problem_loc, context_loc]
        .into_iter()
        .flatten()
        .map(|l| l.line)
    {
        if let Some(tab) = indent_tab(text, line) {
            return ctx
                .error(
                    Some(tab),
                    "tab character used for indentation; YAML indentation must use spaces",
                )
                .with_hint("replace the tab with spaces");
        }
    }
    if problem_loc.and_then(|l| char_at(text, l)) == Some('\t') {
        return ctx
            .error(problem_loc, "tab character where YAML expects spaces")
            .with_hint("replace the tab with spaces");
    }
    let context = context.unwrap_or_default();
    if problem.contains("end of stream") && context.contains("quoted scalar") {
        let q = context_loc.and_then(|l| char_at(text, l)).unwrap_or('"');
        return ctx
            .error(
                context_loc.or(problem_loc),
                format!("unclosed quote: this {q}-quoted string never ends"),
            )
            .with_hint(format!("add the closing {q}"));
    }
    if problem.contains("end of stream")
        && (context.contains("flow sequence") || context.contains("flow mapping"))
    {
        let closing = if context.contains("sequence") {
            ']'
        } else {
            '}'
        };
        return ctx
            .error(
                context_loc.or(problem_loc),
                format!("unclosed bracket: no matching {closing}"),
            )
            .with_hint(format!("add the closing {closing}"));
    }
    let (message, hint) = if problem.contains("cannot start any token") {
        let c = problem_loc.and_then(|l| char_at(text, l));
        match c {
            Some(c @ ('@' | '`')) => (
                format!("`{c}` cannot start a plain value"),
                Some("quote the value, e.g. \"@value\"".to_string()),
            ),
            Some(c) => (
                format!("unexpected character `{c}`"),
                Some("quote the value".to_string()),
            ),
            None => (problem.clone(), None),
        }
    } else if problem.contains("mapping values are not allowed") {
        (
            "unexpected `:` (a key: value is not allowed here)".to_string(),
            Some(
                "check the indentation of this line and the one above; quote values containing \": \"".to_string(),
            ),
        )
    } else if problem.contains("did not find expected key") {
        (
            "expected a `key: value` line here".to_string(),
            Some("check the indentation of this line against its siblings".to_string()),
        )
    } else if problem.contains("did not find expected '-'") {
        (
            "expected a list item (`- ...`) here".to_string(),
            Some("check the indentation".to_string()),
        )
    } else if let Some(closing) = ["']'", "'}'"].iter().find(|c| problem.contains(**c)) {
        let closing = closing.trim_matches('\'');
        let opening = if closing == "]" { "[" } else { "{" };
        let opened = context_loc
            .map(|l| format!(" opened at line {}, column {}", l.line, l.column))
            .unwrap_or_default();
        (
            format!("expected `,` or `{closing}` here"),
            Some(format!(
                "the `{opening}`{opened} needs a matching `{closing}`; separate items with `,`"
            )),
        )
    } else if problem.contains("did not find expected") {
        (
            format!("{problem} {context}").trim().to_string(),
            Some("check brackets and commas".to_string()),
        )
    } else {
        let m = if context.is_empty() {
            problem.clone()
        } else {
            format!("{problem}, {context}")
        };
        (m, None)
    };
    ctx.error(problem_loc, message).with_hint_opt(hint)
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
        Some("sources") => raw::SOURCE_TYPES,
        Some("transforms") => raw::TRANSFORM_TYPES,
        Some("sinks") => raw::SINK_TYPES,
        Some("dead_letter") => raw::DEAD_LETTER_TYPES,
        _ => &[],
    }
}

/// Rewrite a serde shape error (unknown key, bad `type:`, wrong value type) into a
/// friendly message at the offending key or value.
fn shape_error(ctx: &Ctx, e: &serde_yaml::Error) -> DslError {
    let full = e.to_string();
    let serde_loc = e.location().map(|l| Location::new(l.line(), l.column()));
    let (msg_path, msg) = split_path_and_message(&strip_marks(&full));
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
    fn marks() {
        let m = "found unexpected end of stream at line 6 column 1, while scanning a quoted scalar at line 4 column 44";
        assert_eq!(marks_in(m), [Location::new(6, 1), Location::new(4, 44)]);
        assert_eq!(
            strip_marks(m),
            "found unexpected end of stream, while scanning a quoted scalar"
        );
        assert_eq!(
            strip_marks("control characters are not allowed at position 11"),
            "control characters are not allowed"
        );
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

    #[test]
    fn byte_locations() {
        assert_eq!(location_of_byte(b"ab\ncd", 4), Location::new(2, 2));
        assert_eq!(location_of_byte("é\nx".as_bytes(), 2), Location::new(1, 2));
        assert_eq!(location_of_byte(b"", 0), Location::new(1, 1));
    }
}
