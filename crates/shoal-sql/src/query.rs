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

use crate::blob_state::BlobState;
use crate::context::sql_context;
use crate::error::{Result, SqlError};
use crate::filter::apply_predicate;
use crate::join::{IntervalJoinSpec, IntervalJoinState};
use crate::late::Rejection;
use crate::lookup::{JoinParts, LookupJoin, LookupTable};
use crate::over::{OverSpec, OverState};
use crate::window::{WindowAggSpec, WindowAggState};
use shoal_runtime::DeadLetter;

/// One step of a compiled stateless query.
#[derive(Debug, Clone)]
enum Stage {
    /// Keep these columns (projection pushed into the scan).
    Select {
        indices: Vec<usize>,
        schema: SchemaRef,
    },
    Filter(Arc<dyn PhysicalExpr>),
    /// Per-key OVER windows (stateful; at most one per query).
    Over(OverSpec),
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
    /// Join with a lookup table loaded from a file (stateless).
    Lookup(Arc<LookupJoin>),
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
                Stage::Over(o) => o.describe(),
                Stage::Project { exprs, .. } => format!("project[{} exprs]", exprs.len()),
                Stage::WindowAgg(w) => w.describe(),
                Stage::Join { spec, tables, .. } => {
                    format!("{} of {} and {}", spec.describe(), tables[0], tables[1])
                }
                Stage::Lookup(l) => l.describe(),
            })
            .collect::<Vec<_>>()
            .join(" -> ")
    }

    /// The column a stateful query is partitioned by (its instances must
    /// receive the input hash-shuffled on it).
    pub fn partition_key(&self) -> Option<&str> {
        self.stages.iter().find_map(|s| match s {
            Stage::Over(o) => Some(o.key_name()),
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

    /// Rows held by the query's lookup tables.
    pub fn lookup_rows(&self) -> usize {
        self.stages
            .iter()
            .map(|s| match s {
                Stage::Lookup(l) => l.rows(),
                _ => 0,
            })
            .sum()
    }

    /// The windowed-aggregation stage, if any, and its position.
    fn window_stage(&self) -> Option<(usize, &Arc<WindowAggSpec>)> {
        self.stages.iter().enumerate().find_map(|(i, s)| match s {
            Stage::WindowAgg(w) => Some((i, w)),
            _ => None,
        })
    }

    /// The OVER-window stage, if any, and its position.
    fn over(&self) -> Option<(usize, &OverSpec)> {
        self.stages.iter().enumerate().find_map(|(i, s)| match s {
            Stage::Over(o) => Some((i, o)),
            _ => None,
        })
    }

    /// The input carries event time on column `column` (a source upstream
    /// declares `event_time`): OVER windows process rows in event-time
    /// order, as the watermark passes them.
    pub fn set_event_time(&mut self, column: &str) -> Result<()> {
        for stage in &mut self.stages {
            if let Stage::Over(o) = stage {
                o.set_event_time(column)?;
            }
        }
        Ok(())
    }

    /// Run the stages over one batch (stateless queries only).
    pub fn apply(&self, batch: &RecordBatch) -> RtResult<RecordBatch> {
        let mut state = OverState::default();
        self.run_from(0, batch, &mut state, &mut Vec::new(), &mut Absorb::Never)
    }

    /// Run the stages from `first` on over one batch. A windowed-aggregation
    /// stage absorbs the batch (through `absorb`) and ends the run.
    fn run_from(
        &self,
        first: usize,
        batch: &RecordBatch,
        state: &mut OverState,
        dead: &mut Vec<DeadLetter>,
        absorb: &mut Absorb<'_>,
    ) -> RtResult<RecordBatch> {
        self.run_stages(&self.stages[first..], batch, state, dead, absorb)
    }

    fn run_stages(
        &self,
        stages: &[Stage],
        batch: &RecordBatch,
        state: &mut OverState,
        dead: &mut Vec<DeadLetter>,
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
                Stage::Over(o) => match o.push(batch, state, dead)? {
                    Some(b) => b,
                    None => return Ok(RecordBatch::new_empty(self.schema.clone())),
                },
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
                    w.process(&batch, window, late)?;
                    return Ok(RecordBatch::new_empty(self.schema.clone()));
                }
                Stage::Join { .. } => {
                    return Err(shoal_runtime::RuntimeError::Internal(
                        "a join stage runs through QueryOperator::process_batch".into(),
                    ));
                }
                Stage::Lookup(l) => l.join(&batch)?,
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
    compile_query_with(query, inputs, &[])
}

/// [`compile_query`] with lookup tables the query may join the stream with
/// (each loaded now; see [`crate::lookup`]).
pub fn compile_query_with(
    query: &str,
    inputs: &[(String, SchemaRef)],
    lookups: &[Arc<LookupTable>],
) -> Result<CompiledQuery> {
    let ctx = sql_context();
    for (name, schema) in inputs {
        register(&ctx, name, schema)?;
    }
    for table in lookups {
        if inputs.iter().any(|(n, _)| n == table.name()) {
            return Err(SqlError::new(format!(
                "lookup table `{}` has the name of an input",
                table.name()
            )));
        }
        register(&ctx, table.name(), table.schema())?;
    }
    if let [(name, schema)] = inputs
        && name != "input"
    {
        register(&ctx, "input", schema)?;
    }
    let state = ctx.state();
    // Flink's window table functions become Shoal's window calls.
    let query = crate::flink::rewrite(query)?;
    crate::stream_checks::check(&query)?;
    let plan = futures::executor::block_on(state.create_logical_plan(&query))?;
    // Analyse (type coercion) and optimise (simplification, projection
    // pushdown) once; the stages below are built from the optimised plan.
    let plan = state.optimize(&plan)?;
    let mut stages = Vec::new();
    let table = compile_plan(&ctx, lookups, &plan, &mut stages)?;
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
    let schema = with_marks(plan.schema().inner(), &event_time_marks(&plan));
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
    lookups: &[Arc<LookupTable>],
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
        LogicalPlan::SubqueryAlias(a) => compile_plan(ctx, lookups, &a.input, stages),
        LogicalPlan::Window(w) => {
            let table = compile_plan(ctx, lookups, &w.input, stages)?;
            if stages.iter().any(|s| matches!(s, Stage::Over(..))) {
                return Err(SqlError::new(
                    "OVER windows with different PARTITION BY or ORDER BY clauses are not supported on a stream",
                )
                .with_hint("give every window of the query the same PARTITION BY and ORDER BY"));
            }
            let spec = OverSpec::compile(
                &w.window_expr,
                w.input.schema(),
                Arc::clone(w.schema.inner()),
                &event_time_marks(&w.input),
            )?;
            stages.push(Stage::Over(spec));
            Ok(table)
        }
        LogicalPlan::Join(j) if lookup_side(lookups, j).is_some() => {
            let (table, stream_left) = lookup_side(lookups, j).expect("checked");
            let (stream, other) = if stream_left {
                (&j.left, &j.right)
            } else {
                (&j.right, &j.left)
            };
            let stream_table = compile_plan(ctx, lookups, stream, stages)?;
            let mut table_stages = Vec::new();
            compile_plan(ctx, lookups, other, &mut table_stages)?;
            if table_stages.iter().any(|s| {
                !matches!(
                    s,
                    Stage::Select { .. } | Stage::Filter(_) | Stage::Project { .. }
                )
            }) {
                return Err(not_a_stream(
                    "aggregation or a join on a lookup table's side",
                    "join the table as it is and aggregate in the query",
                ));
            }
            let table_side = CompiledQuery {
                input: 0,
                stages: table_stages,
                schema: Arc::clone(other.schema().inner()),
            };
            let join = LookupJoin::compile(
                ctx,
                JoinParts {
                    join_type: j.join_type,
                    on: &j.on,
                    filter: j.filter.as_ref(),
                    left: j.left.schema(),
                    right: j.right.schema(),
                    output: &j.schema,
                },
                stream_left,
                table,
                table_side,
            )?;
            stages.push(Stage::Lookup(Arc::new(join)));
            Ok(stream_table)
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
            let lt = compile_plan(ctx, lookups, &j.left, &mut left)?;
            let rt = compile_plan(ctx, lookups, &j.right, &mut right)?;
            if left.iter().chain(&right).any(|s| {
                matches!(
                    s,
                    Stage::Over(..) | Stage::WindowAgg(_) | Stage::Join { .. }
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
            let table = compile_plan(ctx, lookups, &a.input, stages)?;
            let spec = WindowAggSpec::compile(ctx, a)?;
            stages.push(Stage::WindowAgg(Arc::new(spec)));
            Ok(table)
        }
        LogicalPlan::Filter(f) => {
            let table = compile_plan(ctx, lookups, &f.input, stages)?;
            stages.push(Stage::Filter(physical(
                ctx,
                &f.predicate,
                f.input.schema(),
            )?));
            Ok(table)
        }
        LogicalPlan::Projection(p) => {
            let table = compile_plan(ctx, lookups, &p.input, stages)?;
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

/// The field metadata key marking a column that carries the stream's event
/// time as its watermarks measure it, under another name than the source's
/// event-time column: the window column of a windowed aggregation (its
/// watermark is the start of the earliest window still to come). The query
/// reading the output finds it in its input schema.
pub(crate) const EVENT_TIME_MARK: &str = "shoal.event_time";

/// Which output columns of `plan` carry the event time its watermarks
/// measure: the window column of a windowed aggregation, input columns
/// marked with [`EVENT_TIME_MARK`], and plain references to either.
pub(crate) fn event_time_marks(plan: &LogicalPlan) -> Vec<bool> {
    let n = plan.schema().fields().len();
    let mut marks = match plan {
        LogicalPlan::TableScan(scan) => scan
            .projected_schema
            .fields()
            .iter()
            .map(|f| f.metadata().contains_key(EVENT_TIME_MARK))
            .collect(),
        LogicalPlan::SubqueryAlias(a) => event_time_marks(&a.input),
        LogicalPlan::Filter(f) => event_time_marks(&f.input),
        LogicalPlan::Window(w) => event_time_marks(&w.input),
        LogicalPlan::Projection(p) => {
            let input = event_time_marks(&p.input);
            p.expr
                .iter()
                .map(|e| {
                    column_of(e)
                        .and_then(|c| p.input.schema().index_of_column(c).ok())
                        .is_some_and(|i| input.get(i).copied().unwrap_or(false))
                })
                .collect()
        }
        LogicalPlan::Aggregate(a) => a
            .group_expr
            .iter()
            .map(|e| crate::window::functions::window_call(e).is_some())
            .collect(),
        _ => Vec::new(),
    };
    marks.resize(n, false);
    marks
}

/// The column `e` is, through aliases and casts to a timestamp.
fn column_of(e: &Expr) -> Option<&datafusion::common::Column> {
    match e {
        Expr::Column(c) => Some(c),
        Expr::Alias(a) => column_of(&a.expr),
        Expr::Cast(c)
            if matches!(
                c.field.data_type(),
                arrow::datatypes::DataType::Timestamp(..)
            ) =>
        {
            column_of(&c.expr)
        }
        _ => None,
    }
}

/// `schema` with exactly the `marks`ed fields carrying [`EVENT_TIME_MARK`].
fn with_marks(schema: &SchemaRef, marks: &[bool]) -> SchemaRef {
    let fields: Vec<arrow::datatypes::FieldRef> = schema
        .fields()
        .iter()
        .zip(marks)
        .map(|(f, &marked)| {
            if marked == f.metadata().contains_key(EVENT_TIME_MARK) {
                return Arc::clone(f);
            }
            let mut meta = f.metadata().clone();
            if marked {
                meta.insert(EVENT_TIME_MARK.into(), "true".into());
            } else {
                meta.remove(EVENT_TIME_MARK);
            }
            Arc::new(f.as_ref().clone().with_metadata(meta))
        })
        .collect();
    Arc::new(arrow::datatypes::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
}

/// The lookup table one side of `join` reads, if exactly one side is a
/// lookup table, and whether the stream is the left side.
fn lookup_side(
    lookups: &[Arc<LookupTable>],
    join: &datafusion::logical_expr::Join,
) -> Option<(Arc<LookupTable>, bool)> {
    let find = |plan: &LogicalPlan| {
        let name = scanned_table(plan)?;
        lookups.iter().find(|t| t.name() == name).cloned()
    };
    match (find(&join.left), find(&join.right)) {
        (None, Some(t)) => Some((t, true)),
        (Some(t), None) => Some((t, false)),
        _ => None,
    }
}

/// The table a plan without joins reads.
fn scanned_table(plan: &LogicalPlan) -> Option<String> {
    match plan {
        LogicalPlan::TableScan(scan) => Some(scan.table_name.table().to_string()),
        LogicalPlan::Join(_) => None,
        other => other.inputs().first().and_then(|p| scanned_table(p)),
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
    /// Its state, and where rejected rows (late, no event time) go.
    Into(
        &'a mut WindowAggState,
        &'a mut Vec<(Rejection, RecordBatch)>,
    ),
}

/// Runs a [`CompiledQuery`] on every batch, holding its keyed state.
pub struct QueryOperator {
    query: CompiledQuery,
    state: OverState,
    dead: Vec<DeadLetter>,
    window: Option<WindowAggState>,
    join: Option<IntervalJoinState>,
    /// Checkpoint images of the window and join state (keyed state).
    window_image: BlobState,
    join_image: BlobState,
    /// Rows stages rejected, for the dead-letter output.
    late: Vec<(Rejection, RecordBatch)>,
    node: String,
}

impl QueryOperator {
    /// An operator running `query`.
    pub fn new(query: CompiledQuery) -> Self {
        let state = OverState::default();
        let window = query.window_stage().map(|_| WindowAggState::default());
        let join = query.join_stage().map(|(_, _, spec)| {
            IntervalJoinState::new(spec).expect("join keys have row encodings")
        });
        Self {
            query,
            state,
            dead: Vec::new(),
            window,
            join,
            window_image: BlobState::new("window"),
            join_image: BlobState::new("join"),
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
    /// buffered join rows, running-aggregate keys, lookup-table rows.
    pub fn state_entries(&self) -> usize {
        self.window.as_ref().map_or(0, WindowAggState::entries)
            + self.join.as_ref().map_or(0, IntervalJoinState::rows)
            + self.state_keys()
            + self.state.rows()
            + self.query.lookup_rows()
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

    /// OVER windows release the rows `watermark` passed and run them
    /// through the stages after them.
    fn release_over(&mut self, watermark: i64, out: &mut Collector) -> RtResult<()> {
        if let Some((i, over)) = self.query.over()
            && let Some(rows) = over.release(watermark, &mut self.state)?
        {
            let mut absorb = match &mut self.window {
                Some(w) => Absorb::Into(w, &mut self.late),
                None => Absorb::Never,
            };
            out.emit(self.query.run_from(
                i + 1,
                &rows,
                &mut self.state,
                &mut self.dead,
                &mut absorb,
            )?);
        }
        Ok(())
    }

    /// Send late rows to the dead-letter output.
    fn flush_late(&mut self, out: &mut Collector) -> RtResult<()> {
        for mut letter in self.dead.drain(..) {
            letter.node.clone_from(&self.node);
            out.dead_letter(letter);
        }
        for (why, batch) in self.late.drain(..) {
            for letter in crate::late::letters(&self.node, &batch, why.reason())? {
                out.dead_letter(letter);
            }
        }
        Ok(())
    }

    /// Restore from [`Operator::snapshot_at`]'s references, read from the
    /// checkpoint directory `dir`.
    fn restore_from(
        &mut self,
        states: &[serde_json::Value],
        instance: usize,
        dir: &shoal_runtime::state::StateStore,
    ) -> RtResult<()> {
        let Some(mine) = states.get(instance).filter(|v| !v.is_null()) else {
            return Ok(());
        };
        let changed = || {
            shoal_runtime::RuntimeError::User(
                "the checkpoint's sql state does not fit the query (it changed)".into(),
            )
        };
        if !mine.is_object() {
            return Err(changed());
        }
        // Every part holds a keyed-state reference.
        let part = |name: &str| -> RtResult<Option<&serde_json::Value>> {
            match mine.get(name).filter(|v| !v.is_null()) {
                Some(v) if v.get("keyed_state").is_none() => {
                    Err(shoal_runtime::RuntimeError::User(format!(
                        "the checkpoint's sql state has no keyed-state reference for its {name} part"
                    )))
                }
                other => Ok(other),
            }
        };
        if let Some(o) = part("over")? {
            let (_, spec) = self.query.over().ok_or_else(changed)?;
            self.state.restore_at(spec, o, dir)?;
        }
        if let Some(w) = part("window")? {
            let (_, spec) = self.query.window_stage().ok_or_else(changed)?;
            self.window = Some(WindowAggState::restore_at(
                spec,
                w,
                &mut self.window_image,
                dir,
            )?);
        }
        if let Some(j) = part("join")? {
            let (_, _, spec) = self.query.join_stage().ok_or_else(changed)?;
            self.join = Some(IntervalJoinState::restore_at(
                spec,
                j,
                &mut self.join_image,
                dir,
            )?);
        }
        Ok(())
    }

    /// Keys held in state.
    pub fn state_keys(&self) -> usize {
        self.state.keys()
    }

    /// Rows held by an OVER window (waiting for the watermark or inside
    /// sliding frames).
    pub fn state_rows(&self) -> usize {
        self.state.rows()
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
                let rows = self.query.run_stages(
                    &branches[side],
                    &batch,
                    &mut OverState::default(),
                    &mut self.dead,
                    &mut Absorb::Never,
                )?;
                if rows.num_rows() == 0 {
                    continue;
                }
                let joined = join.process(spec, side, rows, &mut self.late)?;
                if let Some(j) = joined {
                    let mut absorb = match &mut self.window {
                        Some(w) => Absorb::Into(w, &mut self.late),
                        None => Absorb::Never,
                    };
                    out.emit(self.query.run_from(
                        1,
                        &j,
                        &mut self.state,
                        &mut self.dead,
                        &mut absorb,
                    )?);
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
                .run_from(0, &batch, &mut self.state, &mut self.dead, &mut absorb)?,
        );
        self.flush_late(out)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> RtResult<()> {
        if let (Some((_, _, spec)), Some(join)) = (self.query.join_stage(), &mut self.join) {
            join.on_watermark(spec, watermark);
        }
        // Stages after a join see the join's (held back) event time.
        let watermark = self.after_join(watermark);
        // A window before an OVER window in the same query fires first;
        // the OVER window then sees the window's own watermark (the start of
        // the earliest window still to come), as a chained transform would.
        let window_first = matches!(
            (self.query.window_stage(), self.query.over()),
            (Some((w, _)), Some((o, _))) if w < o
        );
        if !window_first {
            self.release_over(watermark, out)?;
        }
        if let (Some((i, spec)), Some(window)) = (self.query.window_stage(), &mut self.window) {
            for fired in spec.on_watermark(watermark, window)? {
                out.emit(self.query.run_from(
                    i + 1,
                    &fired,
                    &mut self.state,
                    &mut self.dead,
                    &mut Absorb::Never,
                )?);
            }
            if window_first {
                let w = spec.output_watermark(watermark, window);
                self.release_over(w, out)?;
            }
        }
        self.flush_late(out)
    }

    fn state_entries(&self) -> Option<usize> {
        (self.query.is_stateful() || self.query.lookup_rows() > 0).then(|| self.state_entries())
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

    /// In a checkpoint all state goes through the runtime's keyed state:
    /// the OVER stage's per-key values, window panes and join chunks (as
    /// Arrow IPC units, only the changed ones written); each part's
    /// `keyed_state` reference sits in its part of the returned object.
    fn snapshot_at(
        &mut self,
        ctx: &shoal_runtime::state::StateContext,
    ) -> RtResult<serde_json::Value> {
        use serde_json::Value;
        if !self.query.is_stateful() {
            return Ok(Value::Null);
        }
        let over = match self.query.over() {
            Some(_) => self.state.snapshot_at(ctx)?,
            None => Value::Null,
        };
        let window = match (self.query.window_stage(), &mut self.window) {
            (Some((_, spec)), Some(w)) => w.snapshot_at(spec, &mut self.window_image, ctx)?,
            _ => Value::Null,
        };
        let join = match (self.query.join_stage(), &self.join) {
            (Some(_), Some(j)) => j.snapshot_at(&mut self.join_image, ctx)?,
            _ => Value::Null,
        };
        Ok(serde_json::json!({ "over": over, "window": window, "join": join }))
    }

    fn restore_at(
        &mut self,
        states: &[serde_json::Value],
        instance: usize,
        ctx: &shoal_runtime::state::StateContext,
    ) -> RtResult<()> {
        self.restore_from(states, instance, &ctx.store)
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
        let mut op = QueryOperator::new(q.clone()).with_node("sql");
        let mut out = Collector::default();
        op.process_batch(0, batch.clone(), &mut out).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ctx = shoal_runtime::state::StateContext::new(dir.path(), "sql", 0, 1);
        let snap = op.snapshot_at(&ctx).unwrap();
        // A fresh instance restored from the snapshot continues the counts.
        let mut restored = QueryOperator::new(q).with_node("sql");
        restored.restore_at(&[snap], 0, &ctx).unwrap();
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

    /// Checkpoints write the OVER keys through the runtime's keyed state:
    /// a full file first, then deltas with only the keys that changed; a
    /// restore from the files continues the aggregates.
    #[test]
    fn over_state_checkpoints_as_incremental_keyed_state_files() {
        use shoal_runtime::state::StateContext;
        let (name, schema, batch) = input();
        let q = compile_query(
            "SELECT card_id, amount, COUNT(*) OVER w AS n, SUM(amount) OVER w AS total FROM txns \
             WINDOW w AS (PARTITION BY country ORDER BY card_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
            &[(name, schema.clone())],
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("shoal-over-keyed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ctx = |checkpoint| StateContext::new(&dir, "features", 0, checkpoint);
        let mut op = QueryOperator::new(q.clone()).with_node("features");
        let mut out = Collector::default();
        op.process_batch(0, batch.clone(), &mut out).unwrap();
        let first = op.snapshot_at(&ctx(1)).unwrap();
        let files = |v: &serde_json::Value| -> Vec<String> {
            v["over"]["keyed_state"]["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(files(&first).len(), 1);
        assert!(files(&first)[0].ends_with(".full.ks"), "{first}");
        // Only the FR key changes before the next checkpoint.
        let fr = batch.slice(1, 1);
        assert_eq!(
            fr.column(2)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0),
            "FR"
        );
        op.process_batch(0, fr.clone(), &mut out).unwrap();
        let second = op.snapshot_at(&ctx(2)).unwrap();
        let chain = files(&second);
        assert_eq!(chain.len(), 2);
        assert!(chain[1].ends_with(".delta.ks"));
        let delta = dir.join(&chain[1]);
        let entries = shoal_runtime::state::file_entries(&delta).unwrap();
        assert_eq!(entries, 1, "one changed key");
        let bytes = std::fs::read(&delta).unwrap();
        assert!(bytes.windows(2).any(|w| w == b"FR"));
        assert!(!bytes.windows(2).any(|w| w == b"US"));
        assert!(shoal_runtime::state::state_size(&second) > 0);

        // Restore from the files into a fresh operator and continue alike.
        let mut restored = QueryOperator::new(q).with_node("features");
        restored.restore_at(&[second], 0, &ctx(2)).unwrap();
        assert_eq!(restored.state_keys(), 2);
        let (mut a, mut b) = (Collector::default(), Collector::default());
        op.process_batch(0, batch.clone(), &mut a).unwrap();
        restored.process_batch(0, batch, &mut b).unwrap();
        assert_eq!(a.batches()[0], b.batches()[0]);
        let n = b.batches()[0]
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec();
        // US rows seen twice before; FR seen three times before.
        assert_eq!(n, vec![3, 3, 4]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn ts_input(rows: &[(i64, i64, f64, i64)]) -> (String, SchemaRef, RecordBatch) {
        use arrow::array::TimestampMillisecondArray;
        use arrow::datatypes::TimeUnit;
        let schema = Arc::new(Schema::new(vec![
            Field::new("card_id", DataType::Int64, false),
            Field::new("merchant_id", DataType::Int64, false),
            Field::new("amount", DataType::Float64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.3),
                )),
            ],
        )
        .unwrap();
        ("txns".into(), schema, batch)
    }

    const ROLLING: &str = "SELECT card_id, ts, \
         COUNT(*) OVER (PARTITION BY card_id ORDER BY ts RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW) AS n_1m, \
         SUM(amount) OVER (PARTITION BY card_id ORDER BY ts RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW) AS sum_1m, \
         MAX(amount) OVER (PARTITION BY card_id ORDER BY ts RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW) AS max_1m, \
         COUNT(DISTINCT merchant_id) OVER (PARTITION BY card_id ORDER BY ts RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW) AS merchants_1m, \
         AVG(amount) OVER (PARTITION BY card_id ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS avg_all, \
         MIN(amount) OVER (PARTITION BY card_id ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS min_2 \
         FROM txns";

    fn column_f64(b: &RecordBatch, name: &str) -> Vec<f64> {
        let c = arrow::compute::cast(b.column_by_name(name).unwrap(), &DataType::Float64).unwrap();
        c.as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .values()
            .to_vec()
    }

    #[test]
    fn range_windows_slide_in_event_time_order_with_peers_and_late_rows() {
        const MIN: i64 = 60_000;
        // card 1: out of order within the delay; two peers at 2*MIN.
        let rows = [
            (1, 10, 10.0, 0),
            (1, 11, 30.0, 2 * MIN),
            (1, 10, 20.0, MIN / 2),
            (2, 10, 5.0, MIN),
            (1, 12, 40.0, 2 * MIN),
            (1, 10, 50.0, 2 * MIN + MIN / 2),
        ];
        let (name, schema, batch) = ts_input(&rows);
        let mut q = compile_query(ROLLING, &[(name, schema)]).unwrap();
        q.set_event_time("ts").unwrap();
        assert!(
            q.describe().contains("event-time order"),
            "{}",
            q.describe()
        );
        let mut op = QueryOperator::new(q.clone()).with_node("rolling");
        let mut out = Collector::default();
        op.process_batch(0, batch, &mut out).unwrap();
        assert!(out.batches().is_empty(), "rows wait for the watermark");
        // Rows before 2m are released; rows at 2m wait for their peers.
        op.on_watermark(2 * MIN + 1, &mut out).unwrap();
        // A checkpoint here, restored into a fresh operator, continues alike.
        let dir = tempfile::tempdir().unwrap();
        let ctx = shoal_runtime::state::StateContext::new(dir.path(), "rolling", 0, 1);
        let snap = op.snapshot_at(&ctx).unwrap();
        let mut op = QueryOperator::new(q).with_node("rolling");
        op.restore_at(&[snap], 0, &ctx).unwrap();
        // A row at or before the watermark is late: dead-lettered.
        let (_, _, late) = ts_input(&[(1, 10, 99.0, MIN)]);
        op.process_batch(0, late, &mut out).unwrap();
        assert_eq!(out.dead_letters().len(), 1);
        assert!(out.dead_letters()[0].reason.starts_with("late"));
        assert_eq!(out.dead_letters()[0].node, "rolling");
        op.on_end(&mut out).unwrap();
        let all =
            arrow::compute::concat_batches(out.batches()[0].schema_ref(), out.batches()).unwrap();
        // Released at 2m, sorted by (card, ts): card 1 at 0, 30s, 2m, 2m and
        // card 2 at 1m; then at the end card 1 at 2m30s (from the restored state).
        let ts: Vec<i64> = column_f64(&all, "ts").iter().map(|&t| t as i64).collect();
        assert_eq!(ts, [0, MIN / 2, 2 * MIN, 2 * MIN, MIN, 2 * MIN + MIN / 2]);
        // The two rows at 2m are peers: both see each other.
        assert_eq!(column_f64(&all, "n_1m"), [1.0, 2.0, 2.0, 2.0, 1.0, 3.0]);
        assert_eq!(
            column_f64(&all, "sum_1m"),
            [10.0, 30.0, 70.0, 70.0, 5.0, 120.0]
        );
        assert_eq!(
            column_f64(&all, "max_1m"),
            [10.0, 20.0, 40.0, 40.0, 5.0, 50.0]
        );
        assert_eq!(
            column_f64(&all, "merchants_1m"),
            [1.0, 1.0, 2.0, 2.0, 1.0, 3.0]
        );
        assert_eq!(
            column_f64(&all, "avg_all"),
            [10.0, 15.0, 20.0, 25.0, 5.0, 30.0]
        );
        assert_eq!(
            column_f64(&all, "min_2"),
            [10.0, 10.0, 20.0, 30.0, 5.0, 40.0]
        );
    }

    #[test]
    fn over_windows_match_datafusion_on_a_random_input() {
        use rand_like::Lcg;
        let mut rng = Lcg(7);
        let mut rows = Vec::new();
        let mut ts = 0;
        for _ in 0..3000 {
            // Unique times (so ROWS frames have one order), 1 ms to 2 s apart.
            ts += 1 + rng.next() % 2_000;
            rows.push((
                (rng.next() % 20) as i64,
                (rng.next() % 7) as i64,
                (rng.next() % 10_000) as f64 / 100.0,
                ts as i64,
            ));
        }
        // Out of order: swap disjoint neighbours (displacement < 2 s).
        for i in (1..rows.len()).step_by(2) {
            if rng.next() % 3 == 0 {
                rows.swap(i - 1, i);
            }
        }
        let (name, schema, batch) = ts_input(&rows);
        let mut q = compile_query(ROLLING, &[(name.clone(), schema.clone())]).unwrap();
        q.set_event_time("ts").unwrap();
        let mut op = QueryOperator::new(q).with_node("rolling");
        let mut out = Collector::default();
        // In slices, with a watermark 3 s behind the largest time seen.
        let mut max_ts = i64::MIN;
        for start in (0..batch.num_rows()).step_by(128) {
            let slice = batch.slice(start, 128.min(batch.num_rows() - start));
            max_ts = max_ts.max(
                rows[start..start + slice.num_rows()]
                    .iter()
                    .map(|r| r.3)
                    .max()
                    .unwrap(),
            );
            op.process_batch(0, slice, &mut out).unwrap();
            op.on_watermark(max_ts - 3_001, &mut out).unwrap();
        }
        op.on_end(&mut out).unwrap();
        assert!(out.dead_letters().is_empty());
        let streamed =
            arrow::compute::concat_batches(out.batches()[0].schema_ref(), out.batches()).unwrap();
        // The same query as a DataFusion batch query.
        let ctx = crate::context::sql_context();
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table(name.as_str(), Arc::new(table)).unwrap();
        let sorted = format!("SELECT * FROM ({ROLLING}) ORDER BY card_id, ts");
        let expected = futures::executor::block_on(async {
            ctx.sql(&sorted).await.unwrap().collect().await.unwrap()
        });
        let expected = arrow::compute::concat_batches(expected[0].schema_ref(), &expected).unwrap();
        let ctx2 = crate::context::sql_context();
        let t = MemTable::try_new(streamed.schema(), vec![vec![streamed]]).unwrap();
        ctx2.register_table("s", Arc::new(t)).unwrap();
        let got = futures::executor::block_on(async {
            ctx2.sql("SELECT * FROM s ORDER BY card_id, ts")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap()
        });
        let got = arrow::compute::concat_batches(got[0].schema_ref(), &got).unwrap();
        assert_eq!(got.num_rows(), expected.num_rows());
        for name in [
            "card_id",
            "ts",
            "n_1m",
            "sum_1m",
            "max_1m",
            "merchants_1m",
            "avg_all",
            "min_2",
        ] {
            let (a, b) = (column_f64(&got, name), column_f64(&expected, name));
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                    "{name} row {i}: streamed {x}, batch {y}"
                );
            }
        }
    }

    /// A tiny deterministic generator for test data.
    mod rand_like {
        pub struct Lcg(pub u64);
        impl Lcg {
            pub fn next(&mut self) -> u64 {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                self.0 >> 33
            }
        }
    }

    #[test]
    fn unsupported_over_windows_name_the_construct() {
        let (name, schema, _) = ts_input(&[]);
        let inputs = [(name, schema)];
        for (q, what) in [
            (
                "SELECT SUM(amount) OVER (PARTITION BY card_id ORDER BY ts ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM txns",
                "FOLLOWING",
            ),
            (
                "SELECT LEAD(amount) OVER (PARTITION BY card_id ORDER BY ts) FROM txns",
                "lead",
            ),
            (
                "SELECT SUM(amount) OVER (ORDER BY ts) FROM txns",
                "PARTITION BY",
            ),
            (
                "SELECT SUM(amount) OVER (PARTITION BY card_id ORDER BY ts DESC) FROM txns",
                "DESC",
            ),
        ] {
            let e = compile_query(q, &inputs).unwrap_err();
            assert!(
                e.message.to_lowercase().contains(&what.to_lowercase()),
                "{q}: {}",
                e.message
            );
        }
        let mut q = compile_query(ROLLING, &inputs).unwrap();
        let e = q.set_event_time("event_ts").unwrap_err();
        assert!(e.message.contains("event_ts"), "{}", e.message);
    }

    #[test]
    fn date_bin_beside_a_tumble_group_by_names_the_column() {
        let (name, schema, _) = ts_input(&[]);
        let e = compile_query(
            "SELECT tumble(ts, INTERVAL '1' MINUTE) AS w, date_bin(INTERVAL '1' MINUTE, ts) AS b, COUNT(*) AS n \
             FROM txns GROUP BY tumble(ts, INTERVAL '1' MINUTE)",
            &[(name, schema)],
        )
        .unwrap_err();
        assert!(
            e.message == "column `ts` is used outside an aggregate but is not in GROUP BY",
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("date_bin"));
    }

    #[test]
    fn wall_clock_ms_is_read_per_batch_not_folded_at_plan_time() {
        let (name, schema, batch) = input();
        let q = compile_query(
            "SELECT card_id, wall_clock_ms() AS t FROM txns",
            &[(name, schema)],
        )
        .unwrap();
        let at = |b: &RecordBatch| {
            b.column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0)
        };
        let first = at(&q.apply(&batch).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let second = at(&q.apply(&batch).unwrap());
        assert!(second >= first + 20, "{first} then {second}");
    }
}
