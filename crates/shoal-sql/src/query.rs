//! The `sql` transform: a stateless `SELECT … FROM input WHERE …` compiled
//! into a chain of filter and projection stages.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use shoal_runtime::{Collector, Operator, Result as RtResult};

use crate::context::sql_context;
use crate::error::{Result, SqlError};
use crate::filter::apply_predicate;
use crate::join::{IntervalJoinSpec, IntervalJoinState};
use crate::running::{RunningSpec, RunningState};
use crate::window::{WindowAggSpec, WindowAggState};

/// One step of a compiled stateless query.
#[derive(Debug, Clone)]
enum Stage {
    /// Keep these columns (projection pushed into the scan).
    Select {
        indices: Vec<usize>,
        schema: SchemaRef,
    },
    Filter(Arc<dyn PhysicalExpr>),
    /// Per-key running aggregates (stateful; state index `usize`).
    Running(RunningSpec, usize),
    Project {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    },
    /// Event-time windowed aggregation: absorbs rows, emits on watermarks
    /// (the stages after it run on what it emits).
    WindowAgg(Arc<WindowAggSpec>),
    /// Interval join of two inputs; each side runs its own stateless stages
    /// first. Always the first stage.
    Join {
        branches: Arc<[Vec<Stage>; 2]>,
        tables: [String; 2],
        /// The transform inputs the two sides read.
        inputs: [usize; 2],
        spec: Arc<IntervalJoinSpec>,
    },
}

/// A query compiled once into stages.
#[derive(Debug, Clone)]
pub struct CompiledQuery {
    input: usize,
    stages: Vec<Stage>,
    schema: SchemaRef,
}

impl CompiledQuery {
    /// The schema of the rows the query emits.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Which of the transform's inputs the query reads.
    pub fn input(&self) -> usize {
        self.input
    }

    /// A one-line description of the stages, for `shoal explain`.
    pub fn describe(&self) -> String {
        self.stages
            .iter()
            .map(|s| match s {
                Stage::Select { indices, .. } => format!("select[{} cols]", indices.len()),
                Stage::Filter(p) => format!("filter[{p}]"),
                Stage::Running(r, _) => {
                    format!("running-aggregate[by {}] (keyed state)", r.key_name())
                }
                Stage::Project { exprs, .. } => format!("project[{} exprs]", exprs.len()),
                Stage::WindowAgg(w) => w.describe(),
                Stage::Join { spec, tables, .. } => {
                    format!("{} of {} and {}", spec.describe(), tables[0], tables[1])
                }
            })
            .collect::<Vec<_>>()
            .join(" -> ")
    }

    /// The column a stateful query is partitioned by (its instances must
    /// receive the input hash-shuffled on it).
    pub fn partition_key(&self) -> Option<&str> {
        self.stages.iter().find_map(|s| match s {
            Stage::Running(r, _) => Some(r.key_name()),
            Stage::WindowAgg(w) => w.key_column(),
            _ => None,
        })
    }

    /// Whether the query keeps state between batches.
    pub fn is_stateful(&self) -> bool {
        self.partition_key().is_some()
            || self.window_stage().is_some()
            || self.join_stage().is_some()
    }

    /// The interval-join stage, if any (always the first stage).
    fn join_stage(&self) -> Option<(&Arc<[Vec<Stage>; 2]>, [usize; 2], &Arc<IntervalJoinSpec>)> {
        match self.stages.first() {
            Some(Stage::Join {
                branches,
                inputs,
                spec,
                ..
            }) => Some((branches, *inputs, spec)),
            _ => None,
        }
    }

    /// Which transform inputs the query reads (two for a join).
    pub fn inputs(&self) -> Vec<usize> {
        match self.join_stage() {
            Some((_, inputs, _)) => inputs.to_vec(),
            None => vec![self.input],
        }
    }

    /// The windowed-aggregation stage, if any, and its position.
    fn window_stage(&self) -> Option<(usize, &Arc<WindowAggSpec>)> {
        self.stages.iter().enumerate().find_map(|(i, s)| match s {
            Stage::WindowAgg(w) => Some((i, w)),
            _ => None,
        })
    }

    fn running_stages(&self) -> usize {
        self.stages
            .iter()
            .filter(|s| matches!(s, Stage::Running(..)))
            .count()
    }

    /// Run the stages over one batch (stateless queries only).
    pub fn apply(&self, batch: &RecordBatch) -> RtResult<RecordBatch> {
        self.apply_with(batch, &mut [])
    }

    /// Run the stages over one batch, updating keyed state.
    fn apply_with(&self, batch: &RecordBatch, state: &mut [RunningState]) -> RtResult<RecordBatch> {
        self.run_from(0, batch, state, &mut Absorb::Never)
    }

    /// Run the stages from `first` on over one batch. A windowed-aggregation
    /// stage absorbs the batch (through `absorb`) and ends the run.
    fn run_from(
        &self,
        first: usize,
        batch: &RecordBatch,
        state: &mut [RunningState],
        absorb: &mut Absorb<'_>,
    ) -> RtResult<RecordBatch> {
        self.run_stages(&self.stages[first..], batch, state, absorb)
    }

    fn run_stages(
        &self,
        stages: &[Stage],
        batch: &RecordBatch,
        state: &mut [RunningState],
        absorb: &mut Absorb<'_>,
    ) -> RtResult<RecordBatch> {
        let mut batch = batch.clone();
        for stage in stages {
            batch = match stage {
                Stage::Select { indices, schema } => {
                    let b = batch.project(indices)?;
                    RecordBatch::try_new(schema.clone(), b.columns().to_vec())?
                }
                Stage::Filter(p) => apply_predicate(p.as_ref(), &batch)?,
                Stage::Running(r, i) => r.apply(&batch, &mut state[*i])?,
                Stage::Project { exprs, schema } => {
                    let rows = batch.num_rows();
                    let columns = exprs
                        .iter()
                        .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(rows)))
                        .collect::<datafusion::common::Result<Vec<_>>>()?;
                    RecordBatch::try_new_with_options(
                        schema.clone(),
                        columns,
                        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
                    )?
                }
                Stage::WindowAgg(w) => {
                    let Absorb::Into(window, late) = absorb else {
                        return Err(shoal_runtime::RuntimeError::Internal(
                            "a windowed query ran without its state".into(),
                        ));
                    };
                    if let Some(l) = w.process(&batch, window)? {
                        late.push(l);
                    }
                    return Ok(RecordBatch::new_empty(self.schema.clone()));
                }
                Stage::Join { .. } => {
                    return Err(shoal_runtime::RuntimeError::Internal(
                        "a join stage runs through QueryOperator::process_batch".into(),
                    ));
                }
            };
            if batch.num_rows() == 0 {
                break;
            }
        }
        Ok(batch)
    }
}

/// Plan `query` over the named `inputs` (each a table of that name; a single
/// input is also available as `input`) and compile it.
pub fn compile_query(query: &str, inputs: &[(String, SchemaRef)]) -> Result<CompiledQuery> {
    let ctx = sql_context();
    for (name, schema) in inputs {
        register(&ctx, name, schema)?;
    }
    if let [(name, schema)] = inputs
        && name != "input"
    {
        register(&ctx, "input", schema)?;
    }
    let state = ctx.state();
    let plan = futures::executor::block_on(state.create_logical_plan(query))?;
    // Analyse (type coercion) and optimise (simplification, projection
    // pushdown) once; the stages below are built from the optimised plan.
    let plan = state.optimize(&plan)?;
    let mut stages = Vec::new();
    let table = compile_plan(&ctx, &plan, &mut stages)?;
    let resolve = |table: &str| {
        inputs
            .iter()
            .position(|(n, _)| n == table)
            .or_else(|| (table == "input" && inputs.len() == 1).then_some(0))
            .ok_or_else(|| {
                SqlError::new(format!("the query reads `{table}`, which is not an input"))
            })
    };
    let input = resolve(&table)?;
    if let Some(Stage::Join {
        tables,
        inputs: sides,
        ..
    }) = stages.first_mut()
    {
        *sides = [resolve(&tables[0])?, resolve(&tables[1])?];
    }
    let schema = Arc::clone(plan.schema().inner());
    Ok(CompiledQuery {
        input,
        stages,
        schema,
    })
}

fn register(ctx: &SessionContext, name: &str, schema: &SchemaRef) -> Result<()> {
    let table = MemTable::try_new(schema.clone(), vec![vec![]])?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

/// Append the stages of `plan` (inputs first) and return the table it reads.
fn compile_plan(
    ctx: &SessionContext,
    plan: &LogicalPlan,
    stages: &mut Vec<Stage>,
) -> Result<String> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            if scan.fetch.is_some() {
                return Err(not_a_stream("LIMIT", LIMIT_HINT));
            }
            if let Some(indices) = &scan.projection {
                stages.push(Stage::Select {
                    indices: indices.clone(),
                    schema: Arc::clone(scan.projected_schema.inner()),
                });
            }
            for f in &scan.filters {
                stages.push(Stage::Filter(physical(ctx, f, &scan.projected_schema)?));
            }
            Ok(scan.table_name.table().to_string())
        }
        LogicalPlan::SubqueryAlias(a) => compile_plan(ctx, &a.input, stages),
        LogicalPlan::Window(w) => {
            let table = compile_plan(ctx, &w.input, stages)?;
            let spec = RunningSpec::compile(
                &w.window_expr,
                w.input.schema(),
                Arc::clone(w.schema.inner()),
            )?;
            let i = stages
                .iter()
                .filter(|s| matches!(s, Stage::Running(..)))
                .count();
            stages.push(Stage::Running(spec, i));
            Ok(table)
        }
        LogicalPlan::Join(j) => {
            if j.join_type != datafusion::logical_expr::JoinType::Inner {
                return Err(not_a_stream(
                    &format!("a {} join", j.join_type),
                    "only inner interval joins run on streams",
                ));
            }
            if !stages.is_empty() {
                return Err(not_a_stream(
                    "a join below other stages",
                    "join the inputs first",
                ));
            }
            let (mut left, mut right) = (Vec::new(), Vec::new());
            let lt = compile_plan(ctx, &j.left, &mut left)?;
            let rt = compile_plan(ctx, &j.right, &mut right)?;
            if left.iter().chain(&right).any(|s| {
                matches!(
                    s,
                    Stage::Running(..) | Stage::WindowAgg(_) | Stage::Join { .. }
                )
            }) {
                return Err(not_a_stream(
                    "aggregation or a join inside a join's input",
                    "compute it in a separate `sql` transform and join its output",
                ));
            }
            let spec = IntervalJoinSpec::compile(
                ctx,
                j.left.schema(),
                j.right.schema(),
                &j.on,
                j.filter.as_ref(),
                &j.schema,
            )?;
            stages.push(Stage::Join {
                branches: Arc::new([left, right]),
                tables: [lt.clone(), rt],
                inputs: [0, 0],
                spec: Arc::new(spec),
            });
            Ok(lt)
        }
        LogicalPlan::Aggregate(a) => {
            if stages.iter().any(|s| matches!(s, Stage::WindowAgg(_))) {
                return Err(not_a_stream(
                    "a second GROUP BY over a windowed aggregate",
                    "chain two `sql` transforms instead",
                ));
            }
            let table = compile_plan(ctx, &a.input, stages)?;
            let spec = WindowAggSpec::compile(ctx, a)?;
            stages.push(Stage::WindowAgg(Arc::new(spec)));
            Ok(table)
        }
        LogicalPlan::Filter(f) => {
            let table = compile_plan(ctx, &f.input, stages)?;
            stages.push(Stage::Filter(physical(
                ctx,
                &f.predicate,
                f.input.schema(),
            )?));
            Ok(table)
        }
        LogicalPlan::Projection(p) => {
            let table = compile_plan(ctx, &p.input, stages)?;
            let exprs = p
                .expr
                .iter()
                .map(|e| physical(ctx, e, p.input.schema()))
                .collect::<Result<Vec<_>>>()?;
            let schema = Arc::clone(p.schema.inner());
            stages.push(Stage::Project { exprs, schema });
            Ok(table)
        }
        other => Err(unsupported(other)),
    }
}

fn physical(ctx: &SessionContext, expr: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
    Ok(ctx.create_physical_expr(expr.clone(), schema)?)
}

fn unsupported(plan: &LogicalPlan) -> SqlError {
    let (what, hint) = match plan {
        LogicalPlan::Sort(_) => (
            "ORDER BY",
            "a stream has no end to sort by; remove ORDER BY",
        ),
        LogicalPlan::Limit(_) => ("LIMIT", LIMIT_HINT),
        LogicalPlan::Distinct(_) => ("DISTINCT", "deduplication over a stream needs a time bound"),
        LogicalPlan::Union(_) => (
            "UNION",
            "list both transforms as inputs of the next step instead",
        ),
        LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => (
            "a query without FROM",
            "select from one of the transform's inputs",
        ),
        LogicalPlan::Unnest(_) => ("UNNEST", "not supported on streams yet"),
        _ => ("this query shape", "use SELECT … FROM input WHERE …"),
    };
    not_a_stream(what, hint)
}

const LIMIT_HINT: &str = "a stream has no end; use a filter instead";

fn not_a_stream(what: &str, hint: &str) -> SqlError {
    SqlError::new(format!(
        "{what} is not supported on a stream in a `sql` transform"
    ))
    .with_hint(hint)
}

/// Where a windowed-aggregation stage puts what it absorbs.
enum Absorb<'a> {
    /// The query has no such stage.
    Never,
    /// Its state, and where late rows go.
    Into(&'a mut WindowAggState, &'a mut Vec<RecordBatch>),
}

/// Runs a [`CompiledQuery`] on every batch, holding its keyed state.
pub struct QueryOperator {
    query: CompiledQuery,
    state: Vec<RunningState>,
    window: Option<WindowAggState>,
    join: Option<IntervalJoinState>,
    late: Vec<RecordBatch>,
    node: String,
}

impl QueryOperator {
    /// An operator running `query`.
    pub fn new(query: CompiledQuery) -> Self {
        let state = vec![RunningState::default(); query.running_stages()];
        let window = query.window_stage().map(|_| WindowAggState::default());
        let join = query.join_stage().map(|(_, _, spec)| {
            IntervalJoinState::new(spec).expect("join keys have row encodings")
        });
        Self {
            query,
            state,
            window,
            join,
            late: Vec::new(),
            node: "sql".into(),
        }
    }

    /// Name the node (for its dead letters).
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = node.to_string();
        self
    }

    /// Entries held in state: window groups and buffered session rows,
    /// buffered join rows, running-aggregate keys.
    pub fn state_entries(&self) -> usize {
        self.window.as_ref().map_or(0, WindowAggState::entries)
            + self.join.as_ref().map_or(0, IntervalJoinState::rows)
            + self.state_keys()
    }

    /// The event time of the rows a join emits, given its input watermark.
    fn after_join(&self, watermark: i64) -> i64 {
        match self.query.join_stage() {
            Some((_, _, spec)) if watermark != i64::MAX && watermark != i64::MIN => {
                watermark.saturating_sub(spec.lag_ms())
            }
            _ => watermark,
        }
    }

    /// Send late rows to the dead-letter output.
    fn flush_late(&mut self, out: &mut Collector) -> RtResult<()> {
        for batch in self.late.drain(..) {
            for record in crate::late::json_lines(&batch)? {
                out.dead_letter(shoal_runtime::DeadLetter {
                    node: self.node.clone(),
                    partition: None,
                    offset: None,
                    reason: "late".into(),
                    record,
                });
            }
        }
        Ok(())
    }

    /// Keys held in state.
    pub fn state_keys(&self) -> usize {
        self.state.iter().map(RunningState::keys).sum()
    }
}

impl Operator for QueryOperator {
    fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        out: &mut Collector,
    ) -> RtResult<()> {
        if let (Some((branches, inputs, spec)), Some(join)) =
            (self.query.join_stage(), &mut self.join)
        {
            for side in 0..2 {
                if inputs[side] != input {
                    continue;
                }
                let rows =
                    self.query
                        .run_stages(&branches[side], &batch, &mut [], &mut Absorb::Never)?;
                if rows.num_rows() == 0 {
                    continue;
                }
                let (joined, late) = join.process(spec, side, rows)?;
                self.late.extend(late);
                if let Some(j) = joined {
                    let mut absorb = match &mut self.window {
                        Some(w) => Absorb::Into(w, &mut self.late),
                        None => Absorb::Never,
                    };
                    out.emit(self.query.run_from(1, &j, &mut self.state, &mut absorb)?);
                }
            }
            return self.flush_late(out);
        }
        let mut absorb = match &mut self.window {
            Some(w) => Absorb::Into(w, &mut self.late),
            None => Absorb::Never,
        };
        out.emit(
            self.query
                .run_from(0, &batch, &mut self.state, &mut absorb)?,
        );
        self.flush_late(out)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> RtResult<()> {
        if let (Some((_, _, spec)), Some(join)) = (self.query.join_stage(), &mut self.join) {
            join.on_watermark(spec, watermark);
        }
        // Stages after a join see the join's (held back) event time.
        let watermark = self.after_join(watermark);
        let (Some((i, spec)), Some(window)) = (self.query.window_stage(), &mut self.window) else {
            return Ok(());
        };
        for fired in spec.on_watermark(watermark, window)? {
            out.emit(
                self.query
                    .run_from(i + 1, &fired, &mut self.state, &mut Absorb::Never)?,
            );
        }
        Ok(())
    }

    fn state_entries(&self) -> Option<usize> {
        self.query.is_stateful().then(|| self.state_entries())
    }

    fn output_watermark(&self, input: i64) -> i64 {
        let w = self.after_join(input);
        match (self.query.window_stage(), &self.window) {
            (Some((_, spec)), Some(state)) => spec.output_watermark(w, state),
            _ => w,
        }
    }

    fn on_end(&mut self, out: &mut Collector) -> RtResult<()> {
        // End of input: event time is +inf, every open window fires.
        self.on_watermark(i64::MAX, out)
    }

    fn snapshot(&mut self) -> RtResult<serde_json::Value> {
        if self.window.is_some() || self.join.is_some() {
            let running: Vec<_> = self.state.iter().map(RunningState::snapshot).collect();
            let window = match (self.query.window_stage(), &mut self.window) {
                (Some((_, spec)), Some(w)) => w.snapshot(spec)?,
                _ => serde_json::Value::Null,
            };
            let join = match (self.query.join_stage(), &self.join) {
                (Some((_, _, spec)), Some(j)) => j.snapshot(spec)?,
                _ => serde_json::Value::Null,
            };
            return Ok(serde_json::json!({
                "running": running,
                "window": window,
                "join": join,
            }));
        }
        if self.state.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::Value::Array(
            self.state.iter().map(RunningState::snapshot).collect(),
        ))
    }

    fn restore(&mut self, states: &[serde_json::Value], instance: usize) -> RtResult<()> {
        let Some(mine) = states.get(instance).filter(|v| !v.is_null()) else {
            return Ok(());
        };
        if mine.get("running").is_some() {
            let changed = || {
                shoal_runtime::RuntimeError::User(
                    "the checkpoint's sql state does not fit the query (it changed)".into(),
                )
            };
            if let Some(w) = mine.get("window").filter(|w| !w.is_null()) {
                let (_, spec) = self.query.window_stage().ok_or_else(changed)?;
                self.window = Some(WindowAggState::restore(spec, w)?);
            }
            if let Some(j) = mine.get("join").filter(|j| !j.is_null()) {
                let (_, _, spec) = self.query.join_stage().ok_or_else(changed)?;
                self.join = Some(IntervalJoinState::restore(spec, j)?);
            }
            let running = mine["running"].as_array().cloned().unwrap_or_default();
            for (state, v) in self.state.iter_mut().zip(&running) {
                state.restore(v)?;
            }
            return Ok(());
        }
        let stages = mine
            .as_array()
            .ok_or_else(|| shoal_runtime::RuntimeError::User("sql state is not a list".into()))?;
        for (state, v) in self.state.iter_mut().zip(stages) {
            state.restore(v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn input() -> (String, SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("card_id", DataType::Int64, false),
            Field::new("amount", DataType::Float64, false),
            Field::new("country", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![50.0, 1500.0, 2500.0])),
                Arc::new(StringArray::from(vec!["US", "FR", "US"])),
            ],
        )
        .unwrap();
        ("txns".into(), schema, batch)
    }

    #[test]
    fn projection_filter_case_cast_and_udf() {
        let (name, schema, batch) = input();
        let q = compile_query(
            "SELECT card_id, amount * 2 AS double_amount, country <> 'US' AS foreign_txn, \
             CASE WHEN amount > 2000 THEN 'high' ELSE 'low' END AS band, CAST(card_id AS VARCHAR) AS card, \
             mask_card(CAST(card_id AS VARCHAR)) AS masked \
             FROM txns WHERE amount > 1000",
            &[(name, schema)],
        )
        .unwrap();
        let names: Vec<_> = q
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "card_id",
                "double_amount",
                "foreign_txn",
                "band",
                "card",
                "masked"
            ]
        );
        let out = q.apply(&batch).unwrap();
        assert_eq!(out.num_rows(), 2);
        let foreign = out
            .column(2)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap();
        assert!(foreign.value(0) && !foreign.value(1));
        let band = out
            .column(3)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((band.value(0), band.value(1)), ("low", "high"));
        assert_eq!(
            out.column(1)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .value(1),
            5000.0
        );
        assert_eq!(out.column(5).len(), 2);
    }

    #[test]
    fn input_alias_star_and_subquery() {
        let (name, schema, batch) = input();
        let q = compile_query(
            "SELECT * FROM (SELECT * FROM input WHERE country = 'US') t WHERE amount < 100",
            &[(name, schema)],
        )
        .unwrap();
        let out = q.apply(&batch).unwrap();
        assert_eq!(out.num_rows(), 1);
        assert_eq!(out.num_columns(), 3);
    }

    #[test]
    fn stateful_constructs_are_plan_errors_naming_them() {
        let (name, schema, _) = input();
        let inputs = [(name, schema)];
        for (q, what) in [
            (
                "SELECT card_id, COUNT(*) FROM txns GROUP BY card_id",
                "GROUP BY",
            ),
            ("SELECT * FROM txns ORDER BY amount", "ORDER BY"),
            ("SELECT * FROM txns LIMIT 5", "LIMIT"),
            (
                "SELECT SUM(amount) OVER (PARTITION BY card_id) FROM txns",
                "OVER",
            ),
        ] {
            let e = compile_query(q, &inputs).unwrap_err();
            assert!(e.message.contains(what), "{q}: {}", e.message);
            assert!(e.hint.is_some());
        }
        let e = compile_query("SELECT amont FROM txns", &inputs).unwrap_err();
        assert!(e.message.contains("amont"), "{}", e.message);
        let e = compile_query("SELEC * FROM txns", &inputs).unwrap_err();
        assert!(!e.message.is_empty());
    }

    #[test]
    fn running_aggregates_per_key_survive_snapshot_and_restore() {
        let (name, schema, batch) = input();
        let q = compile_query(
            "SELECT card_id, amount, COUNT(*) OVER w AS n, SUM(amount) OVER w AS total FROM txns \
             WINDOW w AS (PARTITION BY country ORDER BY card_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
            &[(name, schema)],
        )
        .unwrap();
        assert_eq!(q.partition_key(), Some("country"));
        let mut op = QueryOperator::new(q.clone());
        let mut out = Collector::default();
        op.process_batch(0, batch.clone(), &mut out).unwrap();
        let snap = op.snapshot().unwrap();
        // A fresh instance restored from the snapshot continues the counts.
        let mut restored = QueryOperator::new(q);
        restored.restore(&[snap], 0).unwrap();
        assert_eq!(restored.state_keys(), 2);
        let mut out2 = Collector::default();
        restored.process_batch(0, batch, &mut out2).unwrap();
        let b = &out2.batches()[0];
        let n = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        let total = b.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
        // US: rows 1 and 3 (50, 2500) seen twice; FR: row 2 (1500) seen twice.
        assert_eq!(n.values(), &[3, 2, 4]);
        assert_eq!(total.values(), &[2600.0, 3000.0, 5100.0]);
    }
}
