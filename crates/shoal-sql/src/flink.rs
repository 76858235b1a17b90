//! Flink's window syntax, as most streaming-SQL users learned it, rewritten
//! into Shoal's window calls before DataFusion parses the query.
//!
//! ```sql
//! SELECT window_start, window_end, card_id, COUNT(*) AS n
//! FROM TABLE(TUMBLE(TABLE txns, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
//! GROUP BY window_start, window_end, card_id
//! ```
//!
//! becomes
//!
//! ```sql
//! SELECT tumble(ts, INTERVAL '1' MINUTE) AS window_start,
//!        tumble(ts, INTERVAL '1' MINUTE) + INTERVAL '1' MINUTE AS window_end, card_id, COUNT(*) AS n
//! FROM txns GROUP BY tumble(ts, INTERVAL '1' MINUTE), card_id
//! ```
//!
//! | Flink | Shoal | `window_end` |
//! |---|---|---|
//! | `TUMBLE(TABLE t, DESCRIPTOR(ts), size)` | `tumble(ts, size)` | `+ size` |
//! | `HOP(TABLE t, DESCRIPTOR(ts), slide, size)` | `hop(ts, slide, size)` | `+ size` |
//! | `SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), gap)` | `session(ts, gap)` (per `GROUP BY` key) | `MAX(ts) + gap` |
//!
//! `window_start` and `window_end` may be used anywhere in the query
//! (select list, `GROUP BY`, `HAVING`, `ORDER BY`); `window_end` leaves the
//! `GROUP BY` (it follows from `window_start`). `CUMULATE`, named arguments
//! and the legacy group-window functions (`TUMBLE_START`, `TUMBLE_END`, …)
//! are refused with the form to write instead.

use std::borrow::Cow;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, SelectItem, SetExpr, Statement, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Result, SqlError};

impl SqlError {
    fn hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(message).with_hint(hint)
    }
}

/// The legacy group-window functions of Flink, refused with a hint.
const LEGACY: &[&str] = &[
    "TUMBLE_START",
    "TUMBLE_END",
    "TUMBLE_ROWTIME",
    "TUMBLE_PROCTIME",
    "HOP_START",
    "HOP_END",
    "HOP_ROWTIME",
    "SESSION_START",
    "SESSION_END",
    "SESSION_ROWTIME",
];

/// One window table-valued function found in a query.
struct Tvf {
    /// Byte range of `TABLE(…)` in the query.
    range: std::ops::Range<usize>,
    table: String,
    start: String,
    end: String,
}

/// `sql` with Flink's window TVF rewritten (see the module docs); the
/// query itself when it has none.
pub(crate) fn rewrite(sql: &str) -> Result<Cow<'_, str>> {
    let upper = sql.to_ascii_uppercase();
    for f in LEGACY {
        if find_call(&upper, f, 0).is_some() {
            return Err(SqlError::hint(
                format!("Flink's legacy group window function {f} is not supported"),
                "write tumble(ts, INTERVAL …) in GROUP BY (its value is the window start; \
                 add the size for the end), or Flink's table-valued form \
                 FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL …)) with window_start/window_end",
            ));
        }
    }
    let Some(tvf) = find_tvf(sql, &upper)? else {
        return Ok(Cow::Borrowed(sql));
    };
    let replaced = format!(
        "{}{}{}",
        &sql[..tvf.range.start],
        tvf.table,
        &sql[tvf.range.end..]
    );
    let mut statements = Parser::parse_sql(&GenericDialect {}, &replaced)
        .map_err(|e| SqlError::new(format!("after rewriting Flink's window function: {e}")))?;
    let [Statement::Query(query)] = statements.as_mut_slice() else {
        return Err(SqlError::new("a window table function needs one SELECT"));
    };
    let start = parse_expr(&tvf.start)?;
    let end = parse_expr(&tvf.end)?;
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Err(SqlError::new(
            "a window table function works in a plain SELECT … FROM TABLE(…) GROUP BY …",
        ));
    };
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(Expr::Identifier(id)) = item
            && let Some(e) = window_column(&id.value, &start, &end)
        {
            *item = SelectItem::ExprWithAlias {
                expr: e,
                alias: Ident::new(id.value.to_ascii_lowercase()),
            };
        }
    }
    if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        exprs.retain(
            |e| !matches!(e, Expr::Identifier(id) if id.value.eq_ignore_ascii_case("window_end")),
        );
    }
    let _ = visit_expressions_mut(&mut statements, |e: &mut Expr| {
        let name = match e {
            Expr::Identifier(id) => Some(id.value.clone()),
            Expr::CompoundIdentifier(ids) => ids.last().map(|i| i.value.clone()),
            _ => None,
        };
        if let Some(n) = name
            && let Some(w) = window_column(&n, &start, &end)
        {
            *e = Expr::Nested(Box::new(w));
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(Cow::Owned(statements[0].to_string()))
}

fn window_column(name: &str, start: &Expr, end: &Expr) -> Option<Expr> {
    if name.eq_ignore_ascii_case("window_start") {
        Some(start.clone())
    } else if name.eq_ignore_ascii_case("window_end") {
        Some(end.clone())
    } else {
        None
    }
}

fn parse_expr(s: &str) -> Result<Expr> {
    Parser::new(&GenericDialect {})
        .try_with_sql(s)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::new(format!("window function argument `{s}`: {e}")))
}

/// The first `name(` at or after `from` in `upper` (a whole word).
fn find_call(upper: &str, name: &str, from: usize) -> Option<usize> {
    let b = upper.as_bytes();
    let mut i = from;
    while let Some(off) = upper[i..].find(name) {
        let at = i + off;
        let before_ok = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        let mut j = at + name.len();
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if before_ok && j < b.len() && b[j] == b'(' {
            return Some(at);
        }
        i = at + name.len();
    }
    None
}

/// The index of the `)` closing the `(` at `open` (quotes respected).
fn closing(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote = None;
    for (i, c) in s.char_indices().skip_while(|(i, _)| *i < open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `s` split at its top-level commas, each part trimmed.
fn split_args(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None, 0);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out
}

/// Finds `TABLE(TUMBLE|HOP|SESSION|CUMULATE(…))`.
fn find_tvf(sql: &str, upper: &str) -> Result<Option<Tvf>> {
    let mut from = 0;
    while let Some(at) = find_call(upper, "TABLE", from) {
        from = at + 5;
        let open = at + upper[at..].find('(').expect("find_call saw it");
        let inner = upper[open + 1..].trim_start();
        let kind = ["TUMBLE", "HOP", "SESSION", "CUMULATE"]
            .into_iter()
            .find(|k| find_call(inner, k, 0) == Some(0));
        let Some(kind) = kind else { continue };
        let close = closing(sql, open)
            .ok_or_else(|| SqlError::new(format!("TABLE({kind}(…)) is not closed")))?;
        let call_open = open + 1 + sql[open + 1..].find('(').expect("the call's parenthesis");
        let call_close = closing(sql, call_open)
            .ok_or_else(|| SqlError::new(format!("{kind}(…) is not closed")))?;
        let args = split_args(&sql[call_open + 1..call_close]);
        if kind == "CUMULATE" {
            return Err(SqlError::hint(
                "Flink's CUMULATE window is not supported",
                "use hop(ts, INTERVAL step, INTERVAL size) or a tumble window followed by a running SUM OVER",
            ));
        }
        if args.iter().any(|a| a.contains("=>")) {
            return Err(SqlError::hint(
                format!("named arguments of {kind} are not supported"),
                format!(
                    "write {kind}(TABLE t, DESCRIPTOR(ts), INTERVAL …) with positional arguments"
                ),
            ));
        }
        let usage = || {
            SqlError::hint(
                format!("{kind}(…) needs TABLE t, DESCRIPTOR(time column) and its intervals"),
                "e.g. TABLE(TUMBLE(TABLE txns, DESCRIPTOR(ts), INTERVAL '1' MINUTE)); \
                 HOP(TABLE t, DESCRIPTOR(ts), slide, size); SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), gap)",
            )
        };
        let table = args
            .first()
            .and_then(|a| {
                let mut words = a.split_whitespace();
                (words.next()?.eq_ignore_ascii_case("TABLE")).then(|| words.next())?
            })
            .ok_or_else(usage)?
            .to_owned();
        let desc = args.get(1).ok_or_else(usage)?;
        let col = desc
            .to_ascii_uppercase()
            .starts_with("DESCRIPTOR")
            .then(|| {
                let o = desc.find('(')?;
                let c = desc.rfind(')')?;
                Some(desc[o + 1..c].trim().to_owned())
            })
            .flatten()
            .ok_or_else(usage)?;
        let (start, end) = match (kind, &args[2..]) {
            ("TUMBLE", [size]) => {
                let w = format!("tumble({col}, {size})");
                (w.clone(), format!("{w} + {size}"))
            }
            ("HOP", [slide, size]) => {
                let w = format!("hop({col}, {slide}, {size})");
                (w.clone(), format!("{w} + {size}"))
            }
            ("SESSION", [gap]) => (
                format!("session({col}, {gap})"),
                format!("MAX({col}) + {gap}"),
            ),
            _ => return Err(usage()),
        };
        return Ok(Some(Tvf {
            range: at..close + 1,
            table,
            start,
            end,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn tumble_hop_and_session_become_shoal_windows() {
        let q = rewrite(
            "SELECT window_start, window_end, k, COUNT(*) AS n \
             FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) \
             GROUP BY window_start, window_end, k HAVING COUNT(*) > 1",
        )
        .unwrap();
        assert_eq!(
            norm(&q),
            "SELECT tumble(ts, INTERVAL '1' MINUTE) AS window_start, \
             tumble(ts, INTERVAL '1' MINUTE) + INTERVAL '1' MINUTE AS window_end, k, COUNT(*) AS n \
             FROM src GROUP BY (tumble(ts, INTERVAL '1' MINUTE)), k HAVING COUNT(*) > 1"
        );
        let q = rewrite(
            "select k, window_start as ws from table( hop(table src, descriptor(ts), INTERVAL '1' MINUTE, INTERVAL '5' MINUTE) ) \
             group by k, window_start",
        )
        .unwrap();
        assert!(
            norm(&q).contains("(hop(ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE)) AS ws"),
            "{q}"
        );
        let q = rewrite(
            "SELECT k, window_start, window_end FROM TABLE(SESSION(TABLE src PARTITION BY k, DESCRIPTOR(ts), INTERVAL '30' SECOND)) \
             GROUP BY k, window_start, window_end",
        )
        .unwrap();
        assert!(
            norm(&q).contains("MAX(ts) + INTERVAL '30' SECOND AS window_end"),
            "{q}"
        );
        // A query without one is left alone.
        assert!(matches!(
            rewrite("SELECT 1 FROM t").unwrap(),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn legacy_functions_and_cumulate_are_refused_with_the_form_to_write() {
        let e = rewrite("SELECT TUMBLE_START(ts, INTERVAL '1' MINUTE) FROM t GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE)")
            .unwrap_err()
            .to_string();
        assert!(e.contains("TUMBLE_START"), "{e}");
        let e = rewrite(
            "SELECT window_start FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '1' HOUR)) GROUP BY window_start",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("CUMULATE"), "{e}");
        let e = rewrite("SELECT 1 FROM TABLE(TUMBLE(TABLE t, INTERVAL '1' MINUTE)) GROUP BY 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("DESCRIPTOR"), "{e}");
    }
}
