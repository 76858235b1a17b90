//! Checks on the parsed query that name the problem where DataFusion's
//! plan, or a later stage, would mislead: `SELECT DISTINCT` (it reached
//! the planner as "GROUP BY without a time window"), and a window call
//! (`tumble`, `hop`, `session`) outside `GROUP BY` (it passed `shoal
//! validate` and failed at run time).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Query, Select, SetExpr, Statement, TableFactor, visit_expressions,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Result, SqlError};

const WINDOWS: [&str; 3] = ["tumble", "hop", "session"];

/// Checks `sql`; a query the generic parser cannot read is left to
/// DataFusion, which reports it.
pub(crate) fn check(sql: &str) -> Result<()> {
    let Ok(statements) = Parser::parse_sql(&GenericDialect {}, sql) else {
        return Ok(());
    };
    for st in &statements {
        if let Statement::Query(q) = st {
            query(q)?;
        }
    }
    Ok(())
}

fn query(q: &Query) -> Result<()> {
    set_expr(&q.body)
}

fn set_expr(s: &SetExpr) -> Result<()> {
    match s {
        SetExpr::Select(s) => select(s),
        SetExpr::Query(q) => query(q),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr(left)?;
            set_expr(right)
        }
        _ => Ok(()),
    }
}

/// Names of the window functions called in `node`.
fn window_calls<V: datafusion::sql::sqlparser::ast::Visit>(node: &V) -> Vec<String> {
    let mut found = Vec::new();
    let _ = visit_expressions(node, |e: &Expr| {
        if let Expr::Function(f) = e {
            let name = f.name.to_string().to_ascii_lowercase();
            if WINDOWS.contains(&name.as_str()) && !found.contains(&name) {
                found.push(name);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

fn select(s: &Select) -> Result<()> {
    for t in &s.from {
        if let TableFactor::Derived { subquery, .. } = &t.relation {
            query(subquery)?;
        }
    }
    if s.distinct.is_some() {
        return Err(SqlError::new(
            "SELECT DISTINCT is not supported on a stream (it would keep every row it ever saw)",
        )
        .with_hint(
            "drop repeated records with a `dedup` transform (key: [...], within: 1h), \
             or count per window: GROUP BY tumble(ts, INTERVAL '1' MINUTE), your columns",
        ));
    }
    let grouped = match &s.group_by {
        GroupByExpr::Expressions(exprs, _) => window_calls(exprs),
        GroupByExpr::All(_) => Vec::new(),
    };
    for f in window_calls(&s.projection)
        .into_iter()
        .chain(window_calls(&s.selection))
        .chain(window_calls(&s.having))
    {
        if !grouped.contains(&f) {
            return Err(SqlError::new(format!(
                "{f}() is a window and belongs in GROUP BY (here it is used outside one)"
            ))
            .with_hint(format!(
                "GROUP BY {f}(ts, INTERVAL …), your keys — and select {f}(…) for the window start; \
                 to round a time without a window use date_bin(INTERVAL '1' MINUTE, ts)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_and_windows_outside_group_by_are_named() {
        let e = check("SELECT DISTINCT card FROM t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("SELECT DISTINCT"), "{e}");
        let e = check("SELECT card, hop(ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE) AS w FROM t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hop() is a window"), "{e}");
        // In GROUP BY it is fine, and so is a subquery's window.
        check("SELECT card, tumble(ts, INTERVAL '1' MINUTE) AS w, COUNT(*) FROM t GROUP BY card, tumble(ts, INTERVAL '1' MINUTE)").unwrap();
        let e = check("SELECT * FROM (SELECT DISTINCT a FROM t) s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("DISTINCT"), "{e}");
        check("SELECT COUNT(DISTINCT card) OVER (PARTITION BY k ORDER BY ts) FROM t").unwrap();
    }
}
