//! The planner: resolves schemas, compiles expressions, wires edges.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use shoal_connectors::connector::{Partitioned, PlanCx, PlannedSink, PlannedSource};
use shoal_connectors::registry::registry;
use shoal_connectors::schema::arrow_schema;
use shoal_dsl::{DslError, PipelineSpec, SinkSpec, SourceSpec, TransformSpec};
use shoal_runtime::{NodeRole, Partitioning};
use shoal_sql::{
    DedupSpec, LookupTable, LookupTableSpec, SqlError, compile_filter, compile_query_with,
};

use crate::build::Builder;
use crate::node::NodeState;
use crate::node::{PlanEdge, PlanNode};

/// Where the plan resolves paths and keeps its data.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Relative paths in the pipeline are resolved against this directory.
    pub base_dir: PathBuf,
    /// Data directory given on the command line (overrides the file's `data_dir`).
    pub data_dir: Option<PathBuf>,
    /// Capacity of every channel, in batches.
    pub channel_capacity: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            base_dir: PathBuf::from("."),
            data_dir: None,
            channel_capacity: 8,
        }
    }
}

/// A planned pipeline.
pub struct Plan {
    /// The pipeline's name.
    pub name: String,
    /// Nodes in topological order.
    pub nodes: Vec<PlanNode>,
    /// The data directory (embedded log, checkpoints).
    pub data_dir: PathBuf,
    /// Where dead letters go, for display.
    pub dead_letter: String,
    /// Capacity of every channel, in batches.
    pub channel_capacity: usize,
    /// Checkpointing, when the file has a `checkpoint` section.
    pub checkpoint: Option<shoal_runtime::CheckpointConfig>,
    /// Restore this savepoint instead of the newest checkpoint (`shoal run
    /// --from-savepoint NAME`).
    pub from_savepoint: Option<String>,
    /// Relative paths of the pipeline are resolved against this directory.
    pub(crate) base_dir: PathBuf,
    pub(crate) dead_letter_builder: crate::build::DeadLetterBuilder,
}

fn sql_error(spec: &PipelineSpec, path: &[&str], e: SqlError) -> DslError {
    spec.error_at(path, e.message, e.hint)
}

/// Plan `spec`: every check that needs schemas happens here. Sets this
/// process's outage deadline ([`shoal_connectors::retry::set_retry_for`])
/// to the pipeline's `outage_timeout`.
pub fn plan(spec: &PipelineSpec, opts: &PlanOptions) -> Result<Plan, DslError> {
    shoal_connectors::retry::set_retry_for(spec.outage_timeout);
    let data_dir = opts
        .data_dir
        .clone()
        .or_else(|| spec.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("shoal-data"));
    let data_dir = resolve(&opts.base_dir, &data_dir);
    let mut nodes: Vec<PlanNode> = Vec::new();
    for id in spec.topo_order() {
        let node = if let Some(src) = spec.sources.get(id) {
            plan_source(spec, id, src, opts)?
        } else if let Some(t) = spec.transforms.get(id) {
            plan_transform(spec, id, t, &nodes, opts)?
        } else if let Some(s) = spec.sinks.get(id) {
            plan_sink(spec, id, s, &nodes, opts)?
        } else {
            continue;
        };
        nodes.push(node);
    }
    shard_state(spec, &mut nodes)?;
    let (dead_letter, dead_letter_builder) =
        crate::build::dead_letter(spec, &opts.base_dir, &data_dir);
    let store = match spec.checkpoint.as_ref().and_then(|c| c.store.as_ref()) {
        Some(s) => Some(
            shoal_runtime::state::StateStore::parse(&s.to_string_lossy(), &opts.base_dir)
                .map_err(|e| spec.error_at(&["checkpoint", "store"], e.to_string(), None))?,
        ),
        None => None,
    };
    let checkpoint = spec
        .checkpoint
        .as_ref()
        .map(|c| shoal_runtime::CheckpointConfig {
            interval: c.interval,
            dir: match &c.dir {
                Some(d) => resolve(&opts.base_dir, d),
                None => data_dir.join("checkpoints").join(&spec.name),
            },
            keep: c.keep,
            timeout: c.timeout,
            store: store.clone(),
            // Kafka sources are the ones whose processes share a job.
            store_shared: nodes.iter().any(|n| {
                n.source_capabilities()
                    .is_some_and(|c| c.kafka_group.is_some())
            }),
        });
    Ok(Plan {
        from_savepoint: None,
        base_dir: opts.base_dir.clone(),
        name: spec.name.clone(),
        nodes,
        data_dir,
        dead_letter,
        channel_capacity: opts.channel_capacity,
        checkpoint,
        dead_letter_builder,
    })
}

/// The sources upstream of node `id`.
fn upstream_sources<'a>(nodes: &'a [PlanNode], id: &str, out: &mut Vec<&'a PlanNode>) {
    let Some(n) = nodes.iter().find(|n| n.id == id) else {
        return;
    };
    if n.role == NodeRole::Source {
        if !out.iter().any(|s| s.id == n.id) {
            out.push(n);
        }
        return;
    }
    for e in &n.inputs {
        upstream_sources(nodes, &e.from, out);
    }
}

/// Decide where stateful operators behind a Kafka source keep their state.
/// Behind one `kafka` source of one topic with `key: K`, an operator keyed
/// by `K` (among its keys) keeps its state per partition, and the state
/// follows the partition between processes (see `shoal_runtime::shard`).
/// A stateful operator behind a Kafka source whose offsets a sink owns — a
/// job that may run as several processes of one group — must be so keyed:
/// its state could not follow the partitions otherwise, so that is an error
/// naming the operator and the fix.
fn shard_state(spec: &PipelineSpec, nodes: &mut [PlanNode]) -> Result<(), DslError> {
    let multi_process = spec.checkpoint.is_some()
        && nodes.iter().any(|n| {
            n.sink_capabilities()
                .is_some_and(|c| c.owns_offsets.is_some())
        });
    for i in 0..nodes.len() {
        let Some(state) = &nodes[i].state else {
            continue;
        };
        let mut sources = Vec::new();
        upstream_sources(nodes, &nodes[i].id, &mut sources);
        let partitioned: Vec<(&str, Partitioned)> = sources
            .iter()
            .filter_map(|s| Some((s.id.as_str(), s.source_capabilities()?.partitions?)))
            .collect();
        // A source of this process alone (an embedded-log topic) keyed like
        // the operator: state per partition, restorable at any parallelism.
        if let ([_], [(src_id, p)]) = (sources.as_slice(), partitioned.as_slice())
            && !p.shared
            && spec.checkpoint.is_some()
            && p.key.as_ref().is_some_and(|key| state.keys.contains(key))
        {
            let by = (src_id.to_string(), p.key.clone().expect("checked"));
            nodes[i].state.as_mut().expect("stateful").by_partition = Some(by);
            for e in &mut nodes[i].inputs {
                e.partitioning = Partitioning::Shard;
            }
            continue;
        }
        let shared: Vec<&(&str, Partitioned)> =
            partitioned.iter().filter(|(_, p)| p.shared).collect();
        if shared.is_empty() || spec.checkpoint.is_none() {
            continue;
        }
        let id = nodes[i].id.clone();
        let (src_id, k) = (shared[0].0.to_string(), shared[0].1.clone());
        let aligned = sources.len() == 1
            && k.topics.len() == 1
            && k.key.as_ref().is_some_and(|key| state.keys.contains(key));
        if aligned {
            let by = (src_id, k.key.clone().expect("aligned"));
            nodes[i].state.as_mut().expect("stateful").by_partition = Some(by);
            for e in &mut nodes[i].inputs {
                e.partitioning = Partitioning::Shard;
            }
            continue;
        }
        if !multi_process {
            continue;
        }
        let keys = if state.keys.is_empty() {
            "no key".to_string()
        } else {
            format!("`{}`", state.keys.join(", "))
        };
        let (msg, hint) = match &k.key {
            _ if sources.len() > 1 || k.topics.len() > 1 => (
                format!(
                    "`{id}` keeps state (by {keys}) over more than one source topic, so its state cannot follow the partitions of one topic between processes"
                ),
                "read one topic, keyed by the operator's key".to_string(),
            ),
            None => (
                format!(
                    "`{id}` keeps state (by {keys}) behind kafka source `{src_id}`, which does not say how its topic is partitioned; across processes the state must follow the partitions"
                ),
                match state.keys.first() {
                    Some(c) => format!(
                        "if topic records are partitioned by `{c}`, add `key: {c}` to source `{src_id}`; otherwise repartition: write a kafka sink with `key: {c}` and read that topic in a second pipeline"
                    ),
                    None => "key the operator's state by the column the topic is partitioned by"
                        .to_string(),
                },
            ),
            Some(key) => (
                format!(
                    "`{id}` keeps state by {keys}, but the topic of `{src_id}` is partitioned by `{key}`, so one key's records are spread over processes"
                ),
                format!(
                    "key the operator by `{key}` (e.g. PARTITION BY {key}, or dedup key [{key}, …]), or repartition: write a kafka sink with the new key and read that topic in a second pipeline"
                ),
            ),
        };
        return Err(spec.error_at(&["transforms", &id], msg, Some(hint)));
    }
    Ok(())
}

/// Open the lookup tables of a `sql` transform: files are read, stores
/// (Postgres, Redis) checked when they answer (errors at the table's
/// YAML lines).
fn lookup_tables(
    spec: &PipelineSpec,
    id: &str,
    q: &shoal_dsl::SqlTransform,
    base_dir: &Path,
) -> Result<Vec<Arc<LookupTable>>, DslError> {
    use shoal_dsl::LookupSource;
    q.lookup
        .iter()
        .map(|l| {
            let at = |key: &str| -> Vec<String> {
                ["transforms", id, "lookup", &l.name, key]
                    .map(str::to_string)
                    .to_vec()
            };
            let schema = l.schema.as_ref().map(arrow_schema);
            let cache = shoal_sql::CacheConfig {
                max_entries: l.cache.max_entries,
                ttl: l.cache.ttl,
            };
            let store_error = |key: &str, msg: String| {
                let path = at(key);
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                spec.error_at(&path, msg, None)
            };
            match &l.source {
                LookupSource::File { path, refresh } => LookupTable::open(LookupTableSpec {
                    name: l.name.clone(),
                    path: resolve(base_dir, path),
                    refresh: *refresh,
                    schema,
                })
                .map_err(|e| sql_error(spec, &["transforms", id, "lookup", &l.name, "path"], e)),
                LookupSource::Postgres { url, relation } => {
                    let key = match relation {
                        shoal_dsl::PostgresRelation::Table(_) => "table",
                        shoal_dsl::PostgresRelation::Query(_) => "query",
                    };
                    let store =
                        shoal_connectors::lookup::PostgresLookup::open(url, relation, schema)
                            .map_err(|m| store_error(key, m))?;
                    Ok(LookupTable::in_store(&l.name, Arc::new(store), cache))
                }
                LookupSource::Redis { url, key } => {
                    let store = shoal_connectors::lookup::RedisLookup::open(
                        url,
                        key,
                        schema.expect("the DSL requires a redis lookup's schema"),
                    )
                    .map_err(|m| store_error("key", m))?;
                    Ok(LookupTable::in_store(&l.name, Arc::new(store), cache))
                }
            }
        })
        .collect()
}

pub(crate) use shoal_connectors::connector::resolve;

fn plan_source(
    spec: &PipelineSpec,
    id: &str,
    src: &SourceSpec,
    opts: &PlanOptions,
) -> Result<PlanNode, DslError> {
    let cx = PlanCx {
        spec,
        section: "sources",
        id,
        base_dir: &opts.base_dir,
    };
    let PlannedSource {
        schema,
        detail,
        task,
    } = registry().plan_source(src, &cx)?;
    if let Some(et) = src.event_time()
        && schema.index_of(&et.column).is_err()
    {
        return Err(spec.error_at(
            &["sources", id, "event_time", "column"],
            format!(
                "event_time column `{}` is not in the source's schema",
                et.column
            ),
            Some(format!("columns: {}", column_list(&schema))),
        ));
    }
    Ok(PlanNode {
        id: id.to_string(),
        kind: src.kind(),
        role: NodeRole::Source,
        parallelism: src.parallelism(),
        inputs: Vec::new(),
        schema,
        detail,
        state: None,
        builder: Builder::Source(task),
    })
}

fn column_list(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn input_nodes<'a>(nodes: &'a [PlanNode], inputs: &[String]) -> Vec<&'a PlanNode> {
    inputs
        .iter()
        .filter_map(|i| nodes.iter().find(|n| n.id == *i))
        .collect()
}

/// The edges into a node reading `inputs`, and the (common) input schema.
fn wire(
    spec: &PipelineSpec,
    path: &[&str],
    nodes: &[PlanNode],
    inputs: &[String],
    parallelism: usize,
    key: Option<&str>,
) -> Result<(Vec<PlanEdge>, SchemaRef), DslError> {
    let ups = input_nodes(nodes, inputs);
    let schema = ups[0].schema.clone();
    for (i, up) in ups.iter().enumerate().skip(1) {
        if up.schema.fields() != schema.fields() {
            let p: Vec<String> = path
                .iter()
                .map(|s| s.to_string())
                .chain(["inputs".into(), i.to_string()])
                .collect();
            let p: Vec<&str> = p.iter().map(String::as_str).collect();
            return Err(spec.error_at(
                &p,
                format!(
                    "input `{}` has a different schema than `{}`",
                    up.id, ups[0].id
                ),
                Some(format!(
                    "`{}`: {}; `{}`: {}",
                    ups[0].id,
                    column_list(&schema),
                    up.id,
                    column_list(&up.schema)
                )),
            ));
        }
    }
    if let Some(key) = key
        && schema.index_of(key).is_err()
    {
        let p: Vec<&str> = path.iter().copied().chain(["key"]).collect();
        return Err(spec.error_at(
            &p,
            format!("key column `{key}` is not in the input"),
            Some(format!("columns: {}", column_list(&schema))),
        ));
    }
    let edges = ups
        .iter()
        .map(|up| PlanEdge {
            from: up.id.clone(),
            partitioning: match key {
                Some(k) => Partitioning::Hash {
                    column: k.to_string(),
                    key_type: schema
                        .field_with_name(k)
                        .ok()
                        .map(|f| f.data_type().clone()),
                },
                None if up.parallelism == parallelism || parallelism == 1 => Partitioning::Forward,
                None => Partitioning::RoundRobin,
            },
        })
        .collect();
    Ok((edges, schema))
}

/// The event-time column of the stream node `id` emits, when every source
/// upstream of it declares `event_time` (so watermarks flow). Transforms are
/// assumed to keep the column's name.
fn upstream_event_time(spec: &PipelineSpec, id: &str) -> Option<String> {
    if let Some(src) = spec.sources.get(id) {
        return src.event_time().map(|et| et.column.clone());
    }
    let t = spec.transforms.get(id)?;
    let mut column = None;
    for input in t.inputs() {
        let c = upstream_event_time(spec, input)?;
        if column.as_ref().is_some_and(|old| *old != c) {
            return None;
        }
        column = Some(c);
    }
    column
}

fn plan_transform(
    spec: &PipelineSpec,
    id: &str,
    t: &TransformSpec,
    nodes: &[PlanNode],
    opts: &PlanOptions,
) -> Result<PlanNode, DslError> {
    let path = ["transforms", id];
    if let TransformSpec::Sql(q) = t
        && q.inputs.len() == 2
    {
        return plan_join(spec, id, t, q, nodes, opts);
    }
    let (inputs, schema) = wire(spec, &path, nodes, t.inputs(), t.parallelism(), t.key())?;
    let (schema, detail, builder) = match t {
        TransformSpec::Filter(f) => {
            let predicate = compile_filter(&f.where_, &schema)
                .map_err(|e| sql_error(spec, &["transforms", id, "where"], e))?;
            let detail = format!("where {predicate}");
            (schema, detail, Builder::Filter(predicate))
        }
        TransformSpec::Sql(q) => {
            if q.inputs.len() != 1 {
                return Err(spec.error_at(
                    &["transforms", id, "inputs"],
                    "a `sql` transform reads one input, or two that it joins",
                    Some("for a union, use a `filter` with several inputs".into()),
                ));
            }
            let lookups = lookup_tables(spec, id, q, &opts.base_dir)?;
            let mut query =
                compile_query_with(&q.query, &[(q.inputs[0].clone(), schema)], &lookups)
                    .map_err(|e| sql_error(spec, &["transforms", id, "query"], e))?;
            if let Some(column) = upstream_event_time(spec, &q.inputs[0]) {
                query
                    .set_event_time(&column)
                    .map_err(|e| sql_error(spec, &["transforms", id, "query"], e))?;
            }
            if let Some(k) = query.partition_key()
                && t.parallelism() > 1
            {
                let col = k.to_string();
                if t.key() != Some(col.as_str()) {
                    return Err(spec.error_at(
                        &["transforms", id],
                        format!("this query keeps state per `{col}`, so with parallelism > 1 its input must be shuffled on it"),
                        Some(format!("add `key: {col}`")),
                    ));
                }
            }
            if query.is_stateful() && query.partition_key().is_none() && t.parallelism() > 1 {
                return Err(spec.error_at(
                    &["transforms", id, "parallelism"],
                    "this query keeps state that is not split by a key column, so it runs with parallelism 1",
                    Some("remove `parallelism`, or GROUP BY a plain column first and set `key:` to it".into()),
                ));
            }
            (
                query.schema().clone(),
                query.describe(),
                Builder::Sql(Arc::new(query)),
            )
        }
        TransformSpec::Score(s) => crate::score::plan_score(spec, id, s, schema, &opts.base_dir)?,
        TransformSpec::Dedup(d) => {
            let dedup = DedupSpec::compile(&schema, &d.key, &d.time, d.within)
                .map_err(|e| sql_error(spec, &["transforms", id], e))?;
            (
                schema.clone(),
                dedup.describe(),
                Builder::Dedup(Arc::new(dedup), schema),
            )
        }
    };
    let state = match (t, &builder) {
        (TransformSpec::Dedup(d), _) => Some(NodeState {
            keys: d.key.clone(),
            schema: detail.clone(),
            by_partition: None,
        }),
        (_, Builder::Sql(q)) if q.is_stateful() => Some(NodeState {
            keys: q
                .partition_key()
                .map(|k| vec![k.to_string()])
                .unwrap_or_default(),
            schema: detail.clone(),
            by_partition: None,
        }),
        _ => None,
    };
    Ok(PlanNode {
        id: id.to_string(),
        kind: t.kind(),
        role: NodeRole::Transform,
        parallelism: t.parallelism(),
        inputs,
        schema,
        detail,
        state,
        builder,
    })
}

/// A `sql` transform over two inputs (an interval join): each input keeps
/// its own schema; with `key:`, both are shuffled on that column.
fn plan_join(
    spec: &PipelineSpec,
    id: &str,
    t: &TransformSpec,
    q: &shoal_dsl::SqlTransform,
    nodes: &[PlanNode],
    opts: &PlanOptions,
) -> Result<PlanNode, DslError> {
    let mut edges = Vec::new();
    let mut tables = Vec::new();
    for (i, input) in q.inputs.iter().enumerate() {
        let path = ["transforms", id];
        let (mut e, schema) = wire(
            spec,
            &path,
            nodes,
            &q.inputs[i..=i],
            t.parallelism(),
            t.key(),
        )?;
        edges.append(&mut e);
        tables.push((input.clone(), schema));
    }
    let lookups = lookup_tables(spec, id, q, &opts.base_dir)?;
    let query = compile_query_with(&q.query, &tables, &lookups)
        .map_err(|e| sql_error(spec, &["transforms", id, "query"], e))?;
    if query.is_stateful() && t.parallelism() > 1 && t.key().is_none() {
        return Err(spec.error_at(
            &["transforms", id],
            "a join with parallelism > 1 needs both inputs shuffled on the join key",
            Some("add `key: <join key column>` (a column of both inputs)".into()),
        ));
    }
    Ok(PlanNode {
        id: id.to_string(),
        kind: t.kind(),
        role: NodeRole::Transform,
        parallelism: t.parallelism(),
        inputs: edges,
        schema: query.schema().clone(),
        detail: query.describe(),
        state: query.is_stateful().then(|| NodeState {
            keys: t.key().map(|k| vec![k.to_string()]).unwrap_or_default(),
            schema: query.describe(),
            by_partition: None,
        }),
        builder: Builder::Sql(Arc::new(query)),
    })
}

fn plan_sink(
    spec: &PipelineSpec,
    id: &str,
    s: &SinkSpec,
    nodes: &[PlanNode],
    opts: &PlanOptions,
) -> Result<PlanNode, DslError> {
    let path = ["sinks", id];
    let (inputs, schema) = wire(spec, &path, nodes, s.inputs(), s.parallelism(), s.key())?;
    let cx = PlanCx {
        spec,
        section: "sinks",
        id,
        base_dir: &opts.base_dir,
    };
    let PlannedSink { detail, task } = registry().plan_sink(s, &cx, &schema)?;
    Ok(PlanNode {
        id: id.to_string(),
        kind: s.kind(),
        role: NodeRole::Sink,
        parallelism: s.parallelism(),
        inputs,
        schema,
        detail,
        state: None,
        builder: Builder::Sink(task),
    })
}
