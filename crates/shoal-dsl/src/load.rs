//! From bytes to a [`PipelineSpec`]: input checks, YAML syntax, document shape.
//!
//! The stages, each turning its failures into a located [`DslError`]:
//! 1. file checks: exists, not a directory, at most [`MAX_FILE_BYTES`];
//! 2. text checks: UTF-8, no NUL or other control characters, not empty;
//! 3. one serde_yaml pass into the raw types ([`crate::raw`]): YAML syntax, alias
//!    bombs and nesting depth ([`crate::syntax`] words those errors) and the shape:
//!    unknown keys, `type:` values, value types ([`crate::shape`]). After a shape
//!    error the whole document is also loaded as a `Value`, so syntax problems
//!    further down and a non-map top level are reported first;
//! 4. the position pass ([`PositionMap`]) over the accepted text, which also finds
//!    duplicate keys (serde would silently merge duplicate ids);
//! 5. conversion and semantic checks ([`crate::convert`]).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use miette::NamedSource;

use crate::connector::Catalog;
use crate::convert;
use crate::error::{DslError, Location};
use crate::positions::PositionMap;
use crate::raw::RawPipeline;
use crate::shape::{is_shape_error, shape_error};
use crate::spec::PipelineSpec;
use crate::syntax::{duplicate_error, syntax_error};

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
/// [`parse_str_with`] rejects. `catalog` names the connectors `type:` may name.
pub fn load_file_with(path: &Path, catalog: &dyn Catalog) -> Result<PipelineSpec, DslError> {
    let file = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| io_error(&file, &e))?;
    if meta.is_dir() {
        return Err(DslError::new(&file, "is a directory, not a pipeline file")
            .with_hint("pass the path of a YAML pipeline file, e.g. pipelines/example.yaml"));
    }
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(too_large(&file, meta.len()));
    }
    let bytes = if meta.is_file() {
        read_bounded(path).map_err(|e| io_error(&file, &e))?
    } else {
        // A FIFO (or `<(…)` process substitution) blocks until a writer
        // comes: wait a while, not forever.
        read_special(path, &file)?
    };
    let mut spec = parse_bytes_with(&file, &bytes, catalog)?;
    spec.file = path.to_path_buf();
    Ok(spec)
}

/// How long a pipeline file that is not a regular file (a FIFO) may take
/// to deliver its text.
const SPECIAL_FILE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The file's bytes, at most one more than [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// [`read_bounded`] on a thread, given [`SPECIAL_FILE_WAIT`] to finish (a
/// FIFO nobody writes to would block the open or the read for ever; the
/// thread is left behind, the process exits).
fn read_special(path: &Path, file: &str) -> Result<Vec<u8>, DslError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(read_bounded(&owned));
    });
    match rx.recv_timeout(SPECIAL_FILE_WAIT) {
        Ok(r) => r.map_err(|e| io_error(file, &e)),
        Err(_) => Err(DslError::new(
            file,
            format!(
                "is not a regular file and gave no pipeline within {} s (a FIFO nobody writes to?)",
                SPECIAL_FILE_WAIT.as_secs()
            ),
        )
        .with_hint("write the pipeline to a file, or start the writer first")),
    }
}

/// Parse a pipeline from raw bytes (checked to be UTF-8 text first).
pub fn parse_bytes_with(
    file_name: &str,
    bytes: &[u8],
    catalog: &dyn Catalog,
) -> Result<PipelineSpec, DslError> {
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
    parse_str_with(file_name, text, catalog)
}

/// Parse a pipeline from text; `file_name` is used in messages and for the default
/// pipeline name (its stem); `catalog` names the connectors `type:` may name.
pub fn parse_str_with(
    file_name: &str,
    text: &str,
    catalog: &dyn Catalog,
) -> Result<PipelineSpec, DslError> {
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
        Ok(raw) => convert::convert(raw, &ctx, catalog),
        Err(e) => Err(shape_error(&ctx, &e)),
    }
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

pub(crate) fn check_top_level(
    ctx: &Ctx,
    text: &str,
    value: &serde_yaml::Value,
) -> Result<(), DslError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_locations() {
        assert_eq!(location_of_byte(b"ab\ncd", 4), Location::new(2, 2));
        assert_eq!(location_of_byte("é\nx".as_bytes(), 2), Location::new(1, 2));
        assert_eq!(location_of_byte(b"", 0), Location::new(1, 1));
    }
}
