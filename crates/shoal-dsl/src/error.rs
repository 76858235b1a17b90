//! [`DslError`]: every problem with a pipeline file, located at `FILE:LINE:COLUMN`.
//!
//! All errors of this crate are *user* errors (a bad pipeline file, a missing file):
//! nothing here is retryable. The same type carries warnings (see
//! [`DslError::is_warning`]), which end up in
//! [`PipelineSpec::warnings`](crate::PipelineSpec::warnings).
//!
//! Three renderings are available:
//! - `Display` is one line, `pipeline.yaml:12:7: unknown input "txn"` (or
//!   `pipeline.yaml: message` when there is no position);
//! - [`DslError::render`] is the plain multi-line form the CLI prints: the
//!   `Display` line, the offending source line with a caret, then `hint: ...`;
//! - the [`miette::Diagnostic`] impl gives miette's renderers the file as named
//!   source, a labelled span and the hint as `help`.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode, SourceSpan};

/// A `Result` whose error is a [`DslError`].
pub type Result<T, E = DslError> = std::result::Result<T, E>;

/// A position in a pipeline file; both numbers are 1-based, columns count characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number in characters, starting at 1.
    pub column: usize,
}

impl Location {
    /// A location at `line`:`column` (both 1-based).
    pub fn new(line: usize, column: usize) -> Self {
        Self { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A problem with a pipeline file: where it is, what is wrong, and how to fix it.
///
/// `Display` is the one-line `FILE:LINE:COLUMN: message` form; [`DslError::render`]
/// adds the source line, a caret and the hint.
#[derive(Clone, thiserror::Error)]
#[error("{}", self.one_line())]
pub struct DslError {
    /// The file name as given by the user (or to [`parse_str_with`](crate::parse_str_with)).
    pub file: String,
    /// Where in the file the problem is, when known.
    pub location: Option<Location>,
    /// What is wrong, one line, no trailing period.
    pub message: String,
    /// How to fix it, e.g. `did you mean "transactions"?`.
    pub hint: Option<String>,
    warning: bool,
    /// The file text and the span of the offending token (boxed: keeps `Result`s small).
    label: Option<Box<(Arc<NamedSource<String>>, SourceSpan)>>,
}

impl fmt::Debug for DslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DslError")
            .field("file", &self.file)
            .field("location", &self.location)
            .field("message", &self.message)
            .field("hint", &self.hint)
            .field("warning", &self.warning)
            .finish_non_exhaustive()
    }
}

impl DslError {
    /// An error about `file` with no position (e.g. the file cannot be read).
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            location: None,
            message: message.into(),
            hint: None,
            warning: false,
            label: None,
        }
    }

    /// Builder: set the hint shown as `hint: ...` / miette `help`.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Builder: set an optional hint.
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Builder: turn this error into a warning (it does not stop the pipeline).
    pub fn into_warning(mut self) -> Self {
        self.warning = true;
        self
    }

    /// Whether this is a warning rather than an error.
    pub fn is_warning(&self) -> bool {
        self.warning
    }

    /// Builder: attach a position, with the file text so renderers can show the line.
    pub(crate) fn located(mut self, source: &Arc<NamedSource<String>>, loc: Location) -> Self {
        let text = source.inner();
        let (offset, len) = span_at(text, loc);
        self.location = Some(loc);
        self.label = Some(Box::new((
            Arc::clone(source),
            SourceSpan::new(offset.into(), len),
        )));
        self
    }

    fn one_line(&self) -> String {
        match self.location {
            Some(loc) => format!(
                "{}:{}:{}: {}",
                self.file, loc.line, loc.column, self.message
            ),
            None => format!("{}: {}", self.file, self.message),
        }
    }

    /// The plain multi-line rendering the CLI prints:
    ///
    /// ```text
    /// pipeline.yaml:6:27: unknown input "txn"
    ///     6 |   big: { type: filter, inputs: [txn], where: "amount > 1000" }
    ///       |                                 ^^^
    /// hint: did you mean "txns"?
    /// ```
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.warning {
            out.push_str("warning: ");
        }
        out.push_str(&self.one_line());
        if let (Some(loc), Some(label)) = (self.location, self.label.as_deref())
            && let Some(line) = label.0.inner().lines().nth(loc.line.saturating_sub(1))
        {
            let width = label.1.len();
            let (shown, caret_col, caret_len) = excerpt(line, loc.column, width);
            let gutter = loc.line.to_string().len().max(4);
            out.push('\n');
            out.push_str(&format!("{:>gutter$} | {}\n", loc.line, shown));
            out.push_str(&format!(
                "{:>gutter$} | {}{}",
                "",
                " ".repeat(caret_col.saturating_sub(1)),
                "^".repeat(caret_len.max(1))
            ));
        }
        if let Some(hint) = &self.hint {
            out.push_str("\nhint: ");
            out.push_str(hint);
        }
        out
    }
}

impl Diagnostic for DslError {
    fn severity(&self) -> Option<Severity> {
        Some(if self.warning {
            Severity::Warning
        } else {
            Severity::Error
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.label.as_deref().map(|(s, _)| &**s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.label.as_deref()?.1;
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(Some(self.message.clone()), span),
        )))
    }
}

/// Byte offset and byte length of the token starting at `loc` in `text`.
///
/// The token ends at whitespace or YAML flow punctuation; a quoted scalar runs to its
/// closing quote (on the same line). Positions past the end clamp to the end.
pub(crate) fn span_at(text: &str, loc: Location) -> (usize, usize) {
    let offset = byte_offset(text, loc);
    let rest = &text[offset..];
    let line_rest = rest.split('\n').next().unwrap_or("");
    let mut len;
    let mut chars = line_rest.char_indices();
    match chars.next() {
        None => return (offset, 0),
        Some((_, q @ ('"' | '\''))) => {
            len = 1;
            let mut escaped = false;
            for (i, c) in chars {
                len = i + c.len_utf8();
                if q == '"' && c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                if c == q && !escaped {
                    break;
                }
                escaped = false;
            }
        }
        Some((_, open @ ('[' | '{'))) => {
            // A flow collection: to its matching bracket on this line, if any.
            let close = if open == '[' { ']' } else { '}' };
            let mut depth = 1;
            len = 1;
            for (i, c) in chars {
                if c == open {
                    depth += 1;
                } else if c == close {
                    depth -= 1;
                    if depth == 0 {
                        len = i + 1;
                        break;
                    }
                }
            }
        }
        Some((_, c)) => {
            len = c.len_utf8();
            for (i, c) in chars {
                if c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#') || (c == ':') {
                    break;
                }
                len = i + c.len_utf8();
            }
        }
    }
    (offset, len.max(1).min(rest.len().max(1)))
}

/// Byte offset of a 1-based line and character column, clamped to the text.
pub(crate) fn byte_offset(text: &str, loc: Location) -> usize {
    let mut line_start = 0;
    if loc.line > 1 {
        let mut seen = 1;
        let mut found = false;
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                seen += 1;
                if seen == loc.line {
                    line_start = i + 1;
                    found = true;
                    break;
                }
            }
        }
        if !found {
            return text.len();
        }
    }
    let line = &text[line_start..];
    let line_end = line.find('\n').unwrap_or(line.len());
    let col = loc.column.saturating_sub(1);
    let within = line[..line_end]
        .char_indices()
        .nth(col)
        .map(|(i, _)| i)
        .unwrap_or(line_end);
    line_start + within
}

/// Cut a long line to a window around `column`; returns the shown text (tabs as
/// spaces), the caret column within it and the caret length, all in characters.
fn excerpt(line: &str, column: usize, span_bytes: usize) -> (String, usize, usize) {
    const WINDOW: usize = 60;
    let chars: Vec<char> = line.chars().collect();
    let col0 = column.saturating_sub(1).min(chars.len());
    // caret length: the span in characters, limited to the rest of the line
    let byte_start: usize = chars[..col0].iter().map(|c| c.len_utf8()).sum();
    let caret_len = line
        .get(byte_start..)
        .map(|rest| {
            let mut n = 0;
            let mut bytes = 0;
            for c in rest.chars() {
                if bytes >= span_bytes {
                    break;
                }
                bytes += c.len_utf8();
                n += 1;
            }
            n
        })
        .unwrap_or(1)
        .clamp(1, WINDOW);
    let (start, prefix) = if col0 > WINDOW {
        (col0 - WINDOW, "...")
    } else {
        (0, "")
    };
    let end = (col0 + WINDOW).min(chars.len());
    let suffix = if end < chars.len() { "..." } else { "" };
    let body: String = chars[start..end]
        .iter()
        .map(|&c| if c == '\t' || c.is_control() { ' ' } else { c })
        .collect();
    let shown = format!("{prefix}{body}{suffix}");
    let caret_col = prefix.len() + (col0 - start) + 1;
    (shown, caret_col, caret_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Arc<NamedSource<String>> {
        Arc::new(NamedSource::new("p.yaml", text.to_string()))
    }

    #[test]
    fn display_is_one_line() {
        let e = DslError::new("p.yaml", "boom");
        assert_eq!(e.to_string(), "p.yaml: boom");
        let e = DslError::new("p.yaml", "unknown input \"txn\"")
            .located(&src("a: 1\nb: [txn]\n"), Location::new(2, 5))
            .with_hint("did you mean \"txns\"?");
        assert_eq!(e.to_string(), "p.yaml:2:5: unknown input \"txn\"");
        assert_eq!(
            e.help().map(|h| h.to_string()).as_deref(),
            Some("did you mean \"txns\"?")
        );
    }

    #[test]
    fn render_has_caret_and_hint() {
        let e = DslError::new("p.yaml", "unknown input \"txn\"")
            .located(&src("a: 1\nb: [txn, x]\n"), Location::new(2, 5))
            .with_hint("did you mean \"txns\"?");
        let r = e.render();
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines[0], "p.yaml:2:5: unknown input \"txn\"");
        assert_eq!(lines[1], "   2 | b: [txn, x]");
        assert_eq!(lines[2], "     |     ^^^");
        assert_eq!(lines[3], "hint: did you mean \"txns\"?");
    }

    #[test]
    fn span_covers_token_and_quotes() {
        let t = "k: \"a b\" c\nxy: zz\n";
        assert_eq!(span_at(t, Location::new(1, 4)), (3, 5));
        assert_eq!(span_at(t, Location::new(2, 5)), (15, 2));
        assert_eq!(span_at(t, Location::new(2, 1)), (11, 2));
        assert_eq!(span_at("a: [1, [2]] x", Location::new(1, 4)), (3, 8));
        assert_eq!(span_at("a: {b: 1", Location::new(1, 4)), (3, 1));
        // past the end clamps
        assert_eq!(byte_offset(t, Location::new(9, 1)), t.len());
        assert_eq!(byte_offset("é: x", Location::new(1, 4)), 4);
    }

    #[test]
    fn long_lines_are_cut() {
        let line = format!("{}X{}", "a".repeat(500), "b".repeat(500));
        let e = DslError::new("p.yaml", "m").located(&src(&line), Location::new(1, 501));
        let r = e.render();
        let lines: Vec<&str> = r.lines().collect();
        assert!(lines[1].len() < 200, "{}", lines[1]);
        let caret = lines[2].find('^').unwrap();
        assert_eq!(&lines[1][caret..caret + 1], "X");
    }
}
