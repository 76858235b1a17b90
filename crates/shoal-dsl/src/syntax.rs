//! YAML syntax errors: serde_yaml's (libyaml's) messages rewritten for people,
//! and located where the user must look (the opening quote of an unclosed string,
//! the tab in an indentation, the second of two duplicate keys).

use std::sync::Arc;

use crate::error::{DslError, Location};
use crate::load::Ctx;
use crate::positions::{Duplicate, PositionMap};
use crate::shape::describe;

pub(crate) fn duplicate_error(ctx: &Ctx, dup: &Duplicate) -> DslError {
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
pub(crate) fn strip_marks(msg: &str) -> String {
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

pub(crate) fn syntax_error(ctx: &Ctx, text: &str, e: &serde_yaml::Error) -> DslError {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
