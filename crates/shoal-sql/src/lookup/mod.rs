//! Lookup joins: a stream joined with a table loaded from a file,
//! `… FROM txns t LEFT JOIN merchants m ON t.merchant_id = m.merchant_id`.
//!
//! The table is read when the pipeline is planned (after the query's own
//! projection and filters on the table side) and indexed by the equality
//! key. Each batch of the stream is probed against the index at once: the
//! matching row pairs become two index arrays and the output columns are
//! gathered with Arrow's `take` — no per-row work beyond one hash lookup.
//! Inner joins drop unmatched stream rows, outer joins on the stream's
//! side keep them with NULLs. A join stays stateless (the stream side keeps
//! no rows), so it runs in any number of parallel instances.
//!
//! With `refresh:` a background thread watches the file and swaps in the new
//! contents between batches (see [`LookupTableSpec`]).
//!
//! A table in an outside store ([`LookupStore`]: Postgres, Redis) is not
//! loaded whole: each batch's keys are looked up in a cache and the
//! missing ones fetched in one request (see [`store`]); the join itself is
//! the same.

mod store;
mod table;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use datafusion::common::DFSchema;
use datafusion::logical_expr::{Expr, JoinType};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use shoal_runtime::Result as RtResult;

use crate::error::{Result, SqlError};
use crate::filter::apply_predicate;
use crate::query::CompiledQuery;
use store::StoreSide;
pub use table::{CacheConfig, LookupStore, LookupTable, LookupTableSpec};
use table::{LiveTable, Preparer, evaluate};

/// A compiled lookup join.
#[derive(Debug)]
pub(crate) struct LookupJoin {
    table: Side,
    /// Whether the stream is the join's left input (output columns: stream
    /// then table); otherwise the table comes first.
    stream_left: bool,
    /// Keep stream rows without a match (LEFT join with the stream on the
    /// left, RIGHT join with the stream on the right).
    keep_unmatched: bool,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Encodes the stream's key columns (built once; `&self` to use).
    converter: RowConverter,
    filter: Option<Arc<dyn PhysicalExpr>>,
    output: SchemaRef,
}

/// Where the table's rows come from.
#[derive(Debug)]
enum Side {
    /// A file, held whole.
    Live(Arc<LiveTable>),
    /// A store, read per batch through a cache.
    Store(StoreSide),
}

/// What [`LookupJoin::compile`] needs to know about the join.
pub(crate) struct JoinParts<'a> {
    pub join_type: JoinType,
    pub on: &'a [(Expr, Expr)],
    pub filter: Option<&'a Expr>,
    pub left: &'a DFSchema,
    pub right: &'a DFSchema,
    pub output: &'a DFSchema,
}

impl LookupJoin {
    /// Compile a join of the stream with `table`; `table_stages` are the
    /// query's stages on the table side (applied at every load).
    pub(crate) fn compile(
        ctx: &SessionContext,
        j: JoinParts<'_>,
        stream_left: bool,
        table: Arc<LookupTable>,
        table_stages: CompiledQuery,
    ) -> Result<Self> {
        let keep_unmatched = match (j.join_type, stream_left) {
            (JoinType::Inner, _) => false,
            (JoinType::Left, true) | (JoinType::Right, false) => true,
            (other, _) => {
                return Err(SqlError::new(format!(
                    "a {other} join with lookup table `{}` is not supported on a stream",
                    table.name()
                ))
                .with_hint(
                    "use an inner join, or an outer join that keeps the stream's rows (stream LEFT JOIN table)",
                ));
            }
        };
        if j.on.is_empty() {
            return Err(SqlError::new(format!(
                "the join with lookup table `{}` has no equality condition",
                table.name()
            ))
            .with_hint("join on a key, e.g. ON t.merchant_id = m.merchant_id"));
        }
        if keep_unmatched && j.filter.is_some() {
            return Err(SqlError::new(format!(
                "an outer join with lookup table `{}` takes only equality conditions",
                table.name()
            ))
            .with_hint("move other conditions into a WHERE clause or a later step"));
        }
        let (stream_schema, table_schema) = if stream_left {
            (j.left, j.right)
        } else {
            (j.right, j.left)
        };
        let mut keys = Vec::with_capacity(j.on.len());
        let mut table_keys = Vec::with_capacity(j.on.len());
        let mut key_fields = Vec::with_capacity(j.on.len());
        for (l, r) in j.on {
            let (s, t) = if stream_left { (l, r) } else { (r, l) };
            let s = ctx.create_physical_expr(s.clone(), stream_schema)?;
            let t = ctx.create_physical_expr(t.clone(), table_schema)?;
            let st = s.data_type(stream_schema.as_arrow())?;
            let tt = t.data_type(table_schema.as_arrow())?;
            if st != tt {
                return Err(SqlError::new(format!(
                    "the join key types differ: {st} on the stream, {tt} in lookup table `{}`",
                    table.name()
                ))
                .with_hint("CAST one side, or declare the table's `schema:`"));
            }
            key_fields.push(SortField::new(st));
            keys.push(s);
            table_keys.push(t);
        }
        let filter = j
            .filter
            .map(|f| ctx.create_physical_expr(f.clone(), j.output))
            .transpose()?;
        let store_column = match table.store() {
            Some(_) => Some(store_key_column(&table, &table_keys)?),
            None => None,
        };
        let preparer = Preparer {
            stages: table_stages,
            keys: table_keys,
            converter: RowConverter::new(key_fields.clone())?,
        };
        Ok(Self {
            table: match store_column {
                Some(column) => Side::Store(StoreSide::new(table, preparer, column)),
                None => Side::Live(LiveTable::start(table, preparer)?),
            },
            stream_left,
            keep_unmatched,
            keys,
            converter: RowConverter::new(key_fields)?,
            filter,
            output: Arc::clone(j.output.inner()),
        })
    }

    /// A one-line description for `shoal explain`.
    pub(crate) fn describe(&self) -> String {
        let outer = if self.keep_unmatched { ", outer" } else { "" };
        match &self.table {
            Side::Live(t) => format!("lookup-join[{}{outer}, {} rows]", t.name(), self.rows()),
            Side::Store(s) => format!("lookup-join[{}{outer}, {}, cached]", s.name(), s.describe()),
        }
    }

    /// Rows of the table currently held (keys cached, for a store).
    pub(crate) fn rows(&self) -> usize {
        match &self.table {
            Side::Live(t) => t.current().len(),
            Side::Store(s) => s.cached(),
        }
    }

    /// Join one batch of the stream with the table.
    pub(crate) fn join(&self, batch: &RecordBatch) -> RtResult<RecordBatch> {
        let keys = evaluate(&self.keys, batch).map_err(sql_to_runtime)?;
        let encoded = self.converter.convert_columns(&keys)?;
        let (live, fetched);
        let table: &table::Loaded = match &self.table {
            Side::Live(t) => {
                live = t.current();
                &live
            }
            Side::Store(s) => {
                fetched = s.rows_for(&keys, &encoded)?;
                &fetched
            }
        };
        let n = batch.num_rows();
        let mut stream_idx: Vec<u32> = Vec::with_capacity(n);
        let mut table_idx: Vec<Option<u32>> = Vec::with_capacity(n);
        for row in 0..n {
            let mut hit = None;
            if !keys.iter().any(|k| k.is_null(row)) {
                hit = table.first(encoded.row(row).as_ref());
            }
            if hit.is_none() && self.keep_unmatched {
                stream_idx.push(row as u32);
                table_idx.push(None);
            }
            while let Some(t) = hit {
                stream_idx.push(row as u32);
                table_idx.push(Some(t));
                hit = table.next(t);
            }
        }
        let stream_idx = UInt32Array::from(stream_idx);
        let table_idx = UInt32Array::from(table_idx);
        let gather = |b: &RecordBatch, idx: &UInt32Array| -> RtResult<Vec<ArrayRef>> {
            Ok(b.columns()
                .iter()
                .map(|c| take(c.as_ref(), idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()?)
        };
        let s = gather(batch, &stream_idx)?;
        let t = gather(&table.rows, &table_idx)?;
        let columns = if self.stream_left {
            [s, t].concat()
        } else {
            [t, s].concat()
        };
        let rows = stream_idx.len();
        let joined = RecordBatch::try_new_with_options(
            self.output.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        match &self.filter {
            Some(f) if joined.num_rows() > 0 => apply_predicate(f.as_ref(), &joined),
            _ => Ok(joined),
        }
    }
}

/// The store's column a lookup joins on: the join key must be one plain
/// column of the table (the store is asked for rows by its value).
fn store_key_column(table: &LookupTable, keys: &[Arc<dyn PhysicalExpr>]) -> Result<String> {
    use datafusion::physical_expr::expressions::Column;
    let column = match keys {
        [k] => k.downcast_ref::<Column>().map(|c| c.name().to_string()),
        _ => None,
    };
    match column {
        Some(c) if table.schema().index_of(&c).is_ok() => {
            if let Some((store, _)) = table.store() {
                store.check_key(&c).map_err(|why| {
                    SqlError::new(format!("lookup table `{}`: {why}", table.name()))
                        .with_hint("join ON the column the store is keyed by")
                })?;
            }
            Ok(c)
        }
        _ => Err(SqlError::new(format!(
            "the join with lookup table `{}` must be on one of its columns",
            table.name()
        ))
        .with_hint("a table in Postgres or Redis is read by key: join ON t.x = m.key_column")),
    }
}

fn sql_to_runtime(e: SqlError) -> shoal_runtime::RuntimeError {
    shoal_runtime::RuntimeError::Internal(e.message)
}

#[cfg(test)]
mod tests;
