//! Raw serde values to [`PipelineSpec`]: defaults, value parsing and the semantic
//! checks, each failure located at the offending key or value.
//!
//! Checks, in order: ids (syntax), each section's settings (ranges, durations,
//! enums written as strings, schemas, `event_time.column` in the schema), at least
//! one source and sink, then the graph ([`crate::graph`]): ids unique across
//! sections, `inputs` (non-empty, existing, not a sink), no cycle among
//! transforms; then `dead_letter`. Sources and transforms nobody reads become
//! warnings.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use crate::connector::Catalog;
use crate::error::DslError;
use crate::load::Ctx;
use crate::raw::*;
use crate::spec::*;
use crate::suggest;
use crate::units::{self, FIELD_TYPE_NAMES};

pub(crate) type R<T> = Result<T, DslError>;

/// Largest `parallelism:`.
pub const MAX_PARALLELISM: u64 = 1024;
/// The default `outage_timeout`: 2 minutes.
pub const DEFAULT_OUTAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest `batch_size:`.
pub const MAX_BATCH_SIZE: u64 = 1_048_576;
/// Default `batch_size:`.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

pub(crate) fn convert(raw: RawPipeline, ctx: &Ctx, catalog: &dyn Catalog) -> R<PipelineSpec> {
    let mut c = ConfigCx {
        ctx,
        pipeline: String::new(),
    };
    let file = PathBuf::from(&ctx.file);
    let name = match raw.name {
        Some(n) => {
            if n.trim().is_empty() {
                return Err(ctx.at_value(&["name"], "the pipeline name is empty"));
            }
            c.safe_name(&["name"], n, "pipeline name")?
        }
        None => file
            .file_stem()
            .map(|s| sanitize_name(&s.to_string_lossy()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "pipeline".to_string()),
    };
    c.pipeline = name.clone();
    let data_dir = match raw.data_dir {
        Some(d) => Some(c.path(&["data_dir"], d)?),
        None => None,
    };
    let checkpoint = match raw.checkpoint {
        Some(cp) => Some(c.checkpoint(cp, data_dir.as_deref())?),
        None => None,
    };

    let mut sources = IndexMap::new();
    for (id, s) in raw.sources.unwrap_or_default() {
        c.id("sources", &id)?;
        let spec = c.source(&id, s, catalog)?;
        sources.insert(id, spec);
    }
    let mut transforms = IndexMap::new();
    for (id, t) in raw.transforms.unwrap_or_default() {
        c.id("transforms", &id)?;
        let spec = c.transform(&id, t)?;
        transforms.insert(id, spec);
    }
    let mut sinks = IndexMap::new();
    for (id, s) in raw.sinks.unwrap_or_default() {
        c.id("sinks", &id)?;
        let spec = c.sink(&id, s, catalog)?;
        sinks.insert(id, spec);
    }

    // Point at an empty section; a missing one has no position.
    let section = |name: &str, message: &str| match ctx.positions.value(&[name]) {
        Some(loc) => ctx.error(Some(loc), message),
        None => ctx.error(None, message),
    };
    if sources.is_empty() {
        return Err(section("sources", "the pipeline has no sources").with_hint(
            "add at least one, e.g.\n    sources:\n      txns: { type: generator, count: 1000 }",
        ));
    }
    if sinks.is_empty() {
        return Err(section("sinks", "the pipeline has no sinks").with_hint(
            "add at least one, e.g.\n    sinks:\n      out: { type: stdout, inputs: [txns] }",
        ));
    }
    c.unique_ids(&sources, &transforms, &sinks)?;
    c.check_inputs(&sources, &transforms, &sinks)?;
    c.check_cycles(&transforms)?;

    let dead_letter = match raw.dead_letter {
        Some(d) => Some(c.dead_letter(d)?),
        None => None,
    };
    let outage_timeout = match raw.outage_timeout {
        Some(d) => {
            let t = c.duration(&["outage_timeout"], d)?;
            if t < Duration::from_secs(1) {
                return Err(c
                    .err(&["outage_timeout"], "`outage_timeout` must be at least 1s")
                    .with_hint("how long an unreachable Postgres, Redis or schema registry is retried; the default is 2m"));
            }
            t
        }
        None => DEFAULT_OUTAGE_TIMEOUT,
    };

    let mut spec = PipelineSpec {
        name,
        file,
        data_dir,
        checkpoint,
        sources,
        transforms,
        sinks,
        dead_letter,
        outage_timeout,
        warnings: Vec::new(),
        source: Arc::clone(&ctx.source),
        positions: Arc::clone(&ctx.positions),
    };
    spec.warnings = c.unread(&spec);
    Ok(spec)
}

/// Whether `v` is safe as one path component: 1 to 128 of `[A-Za-z0-9_.-]`,
/// not starting with `.`.
pub fn is_safe_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && !v.starts_with('.')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A file stem made safe as a pipeline name (other bytes become `_`).
fn sanitize_name(stem: &str) -> String {
    let s: String = stem
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None => s,
    }
}

/// Reads YAML values into typed settings, each error at the offending key or
/// value; what a connector's [`FromYaml`](crate::connector::FromYaml) uses.
///
/// Paths are YAML paths from the document root, e.g. `["sources", id, "topic"]`.
pub struct ConfigCx<'a> {
    pub(crate) ctx: &'a Ctx,
    pipeline: String,
}

impl ConfigCx<'_> {
    /// The pipeline's name (the default consumer group).
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// An error at the value of `path`.
    pub fn err(&self, path: &[&str], message: impl Into<String>) -> DslError {
        self.ctx.at_value(path, message)
    }

    /// Ids name tables in SQL queries and appear in metrics: keep them simple.
    fn id(&self, section: &str, id: &str) -> R<()> {
        let ok = id.len() <= 128
            && id
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if ok {
            return Ok(());
        }
        Err(self
            .ctx
            .at_key(&[section, id], format!("invalid id \"{id}\""))
            .with_hint("ids start with a letter or `_` and use only letters, digits, `_` and `-` (at most 128)"))
    }

    /// A non-empty path.
    pub fn path(&self, at: &[&str], p: String) -> R<PathBuf> {
        if p.trim().is_empty() {
            return Err(self.err(at, "the path is empty"));
        }
        Ok(PathBuf::from(p))
    }

    /// `checkpoint.store`: a directory, or a URL of a supported scheme.
    fn store(&self, s: String) -> R<PathBuf> {
        let at = &["checkpoint", "store"];
        if let Some((scheme, rest)) = s.split_once("://")
            && !scheme.is_empty()
            && scheme.chars().all(|c| c.is_ascii_alphanumeric())
        {
            if !["file", "s3", "s3a"].contains(&scheme) {
                return Err(self
                    .err(at, format!("unsupported state store scheme {scheme:?}"))
                    .with_hint("a directory (shared by the job's processes), file:///path or s3://bucket/prefix"));
            }
            if scheme != "file" && rest.split('/').next().is_none_or(str::is_empty) {
                return Err(self
                    .err(at, "the state store URL names no bucket")
                    .with_hint("write s3://bucket/prefix"));
            }
        }
        self.path(at, s)
    }

    /// An integer in `min..=max`, `default` when absent.
    pub fn range(&self, at: &[&str], v: Option<u64>, default: u64, min: u64, max: u64) -> R<u64> {
        let v = v.unwrap_or(default);
        if v < min || v > max {
            let key = at.last().copied().unwrap_or("value");
            return Err(self
                .err(
                    at,
                    format!("{key} must be between {min} and {max}, found {v}"),
                )
                .with_hint(format!("the default is {default}")));
        }
        Ok(v)
    }

    /// `parallelism:` (1..=[`MAX_PARALLELISM`], default 1).
    pub fn parallelism(&self, at: &[&str], v: Option<u64>) -> R<usize> {
        Ok(self.range(at, v, 1, 1, MAX_PARALLELISM)? as usize)
    }

    /// `batch_size:` (1..=[`MAX_BATCH_SIZE`], default [`DEFAULT_BATCH_SIZE`]).
    pub fn batch_size(&self, at: &[&str], v: Option<u64>) -> R<usize> {
        Ok(self.range(at, v, DEFAULT_BATCH_SIZE as u64, 1, MAX_BATCH_SIZE)? as usize)
    }

    /// A duration such as `250ms`, `5s`, `2m30s`.
    pub fn duration(&self, at: &[&str], v: Scalar) -> R<Duration> {
        let text = match v {
            Scalar::Str(s) => s,
            Scalar::Int(0) => return Ok(Duration::ZERO),
            Scalar::Int(n) => n.to_string(),
            Scalar::Float(f) => f.to_string(),
        };
        units::parse_duration(&text).map_err(|m| self.err(at, m))
    }

    /// One of `choices` (case-insensitive), with a did-you-mean hint otherwise.
    pub fn choice<T: Copy>(&self, at: &[&str], v: &str, choices: &[(&str, T)], what: &str) -> R<T> {
        let lower = v.trim().to_ascii_lowercase();
        if let Some((_, t)) = choices.iter().find(|(n, _)| *n == lower) {
            return Ok(*t);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        Err(self
            .err(at, format!("unknown {what} \"{v}\""))
            .with_hint(suggest::hint_with_choices(v, &names, "values")))
    }

    /// `jsonl` (or `json`), `csv` or `parquet`.
    pub fn file_format(&self, at: &[&str], v: &str) -> R<FileFormat> {
        self.choice(
            at,
            v,
            &[
                ("jsonl", FileFormat::Jsonl),
                ("json", FileFormat::Jsonl),
                ("csv", FileFormat::Csv),
                ("parquet", FileFormat::Parquet),
            ],
            "format",
        )
    }

    /// A source's `key:`: the column its topic is partitioned by, which
    /// must be in the schema.
    pub fn partition_key(
        &self,
        at: &[&str],
        v: Option<String>,
        schema: Option<&SchemaSpec>,
    ) -> R<Option<String>> {
        let Some(c) = v else {
            return Ok(None);
        };
        let c = self.non_empty(at, c, "the key column")?;
        if schema.is_some_and(|s| s.field(&c).is_none()) {
            return Err(self
                .err(at, format!("key column `{c}` is not in the schema"))
                .with_hint("name the column the topic's records are partitioned by"));
        }
        Ok(Some(c))
    }

    /// A name that becomes part of a path (pipeline names, groups): letters,
    /// digits, `_`, `-` and `.`, not starting with `.`, at most 128.
    pub fn safe_name(&self, at: &[&str], v: String, what: &str) -> R<String> {
        if is_safe_name(&v) {
            return Ok(v);
        }
        Err(self
            .err(at, format!("invalid {what} \"{}\"", v.escape_debug()))
            .with_hint(format!(
                "a {what} is used in file names: use 1 to 128 letters, digits, `_`, `-` and `.`, not starting with `.`"
            )))
    }

    /// A `sources:` entry, parsed by the connector its `type:` names.
    fn source(&self, id: &str, value: serde_yaml::Value, catalog: &dyn Catalog) -> R<SourceSpec> {
        let (kind, map) = self.connector_type("sources", id, value, &catalog.source_types())?;
        let parse = catalog
            .source_parser(&kind)
            .expect("connector_type checked the type");
        Ok(SourceSpec::new(parse(self, id, map)?))
    }

    /// A `sinks:` entry, parsed by the connector its `type:` names.
    fn sink(&self, id: &str, value: serde_yaml::Value, catalog: &dyn Catalog) -> R<SinkSpec> {
        let (kind, map) = self.connector_type("sinks", id, value, &catalog.sink_types())?;
        let parse = catalog
            .sink_parser(&kind)
            .expect("connector_type checked the type");
        Ok(SinkSpec::new(parse(self, id, map)?))
    }

    /// The `type:` of a connector entry (one of `types`) and the rest of its map.
    fn connector_type(
        &self,
        section: &str,
        id: &str,
        value: serde_yaml::Value,
        types: &[&'static str],
    ) -> R<(String, serde_yaml::Value)> {
        use serde_yaml::Value;
        let what = if section == "sources" {
            "source"
        } else {
            "sink"
        };
        let Value::Mapping(mut map) = value else {
            return Err(self
                .err(
                    &[section, id],
                    format!(
                        "invalid value for {what} \"{id}\": expected a map with a \"type\" key"
                    ),
                )
                .with_hint(format!("e.g. {id}: {{ type: {}, ... }}", types[0])));
        };
        let kind = match map.remove("type") {
            Some(Value::String(t)) => t,
            Some(other) => {
                let found = match other {
                    Value::Null => "an empty value (null)".to_string(),
                    Value::Bool(b) => format!("boolean {b}"),
                    Value::Number(n) => format!("number {n}"),
                    Value::Sequence(_) => "a list".to_string(),
                    _ => "a map".to_string(),
                };
                return Err(self
                    .err(
                        &[section, id, "type"],
                        format!("invalid value for \"type\" of {what} \"{id}\": expected a string, found {found}"),
                    )
                    .with_hint(format!("one of: {}", suggest::list(types.iter().copied()))));
            }
            None => {
                return Err(self
                    .err(
                        &[section, id],
                        format!("{what} \"{id}\" is missing the required key \"type\""),
                    )
                    .with_hint(format!(
                        "add `type:` with one of: {}",
                        suggest::list(types.iter().copied())
                    )));
            }
        };
        if !types.contains(&kind.as_str()) {
            return Err(self
                .err(
                    &[section, id, "type"],
                    format!("unknown {what} type \"{kind}\""),
                )
                .with_hint(suggest::hint_with_choices(&kind, types, "types")));
        }
        Ok((kind, Value::Mapping(map)))
    }

    /// `coerce:`, `max_record_bytes:` and `max_depth:` of a source.
    pub fn decode(
        &self,
        id: &str,
        coerce: Option<RawCoerce>,
        max_record_bytes: Option<Scalar>,
        max_depth: Option<u64>,
        schema: Option<&SchemaSpec>,
    ) -> R<DecodeSpec> {
        let mut d = DecodeSpec::default();
        if let Some(v) = max_record_bytes {
            let at = ["sources", id, "max_record_bytes"];
            let text = match v {
                Scalar::Str(s) => s,
                Scalar::Int(n) => n.to_string(),
                Scalar::Float(f) => f.to_string(),
            };
            let n = units::parse_size(&text).map_err(|m| self.err(&at, m))?;
            if !(16..=(1 << 30)).contains(&n) {
                return Err(self
                    .err(
                        &at,
                        format!("max_record_bytes must be between 16 B and 1 GiB, found {n}"),
                    )
                    .with_hint("the default is 1MiB"));
            }
            d.max_record_bytes = n as usize;
        }
        if max_depth.is_some() {
            d.max_depth = self.range(
                &["sources", id, "max_depth"],
                max_depth,
                DEFAULT_MAX_DEPTH as u64,
                1,
                10_000,
            )? as usize;
        }
        d.coerce = match coerce {
            None | Some(RawCoerce::All(false)) => Coerce::None,
            Some(RawCoerce::All(true)) => Coerce::All,
            Some(RawCoerce::Fields(fields)) => {
                for (i, f) in fields.iter().enumerate() {
                    if let Some(s) = schema
                        && s.field(f).is_none()
                    {
                        let idx = i.to_string();
                        return Err(self
                            .err(
                                &["sources", id, "coerce", idx.as_str()],
                                format!("coerce names `{f}`, which is not in the schema"),
                            )
                            .with_hint("list columns of the source's `schema:`"));
                    }
                }
                Coerce::Fields(fields)
            }
        };
        Ok(d)
    }

    /// A string that is not blank.
    pub fn non_empty(&self, at: &[&str], v: String, what: &str) -> R<String> {
        if v.trim().is_empty() {
            return Err(self.err(at, format!("{what} is empty")));
        }
        Ok(v)
    }

    /// An optional key column name.
    pub fn key(&self, at: &[&str], v: Option<String>) -> R<Option<String>> {
        v.map(|k| self.non_empty(at, k, "the key column"))
            .transpose()
    }

    fn checkpoint(&self, raw: RawCheckpoint, data_dir: Option<&Path>) -> R<CheckpointSpec> {
        let mut cp = CheckpointSpec::default();
        if let Some(i) = raw.interval {
            cp.interval = self.duration(&["checkpoint", "interval"], i)?;
            if cp.interval.is_zero() {
                return Err(self.err(
                    &["checkpoint", "interval"],
                    "the checkpoint interval must be more than 0",
                ));
            }
        }
        if let Some(t) = raw.timeout {
            cp.timeout = self.duration(&["checkpoint", "timeout"], t)?;
            if cp.timeout.is_zero() {
                return Err(self.err(
                    &["checkpoint", "timeout"],
                    "the checkpoint timeout must be more than 0",
                ));
            }
        }
        cp.keep = self.range(&["checkpoint", "keep"], raw.keep, 3, 1, 1_000_000)? as usize;
        cp.dir = match raw.dir {
            Some(d) => Some(self.path(&["checkpoint", "dir"], d)?),
            None => data_dir.map(|d| d.join("checkpoints")),
        };
        cp.store = match raw.store {
            Some(d) => Some(self.store(d)?),
            None => None,
        };
        Ok(cp)
    }

    fn lookups(&self, id: &str, raw: Option<IndexMap<String, RawLookup>>) -> R<Vec<LookupSpec>> {
        let mut out = Vec::new();
        for (name, l) in raw.unwrap_or_default() {
            let at = |k: &'static str| -> [&str; 5] { ["transforms", id, "lookup", &name, k] };
            let kind = match &l.kind {
                Some(k) => self.choice(
                    &at("type"),
                    k,
                    &[
                        ("file", "file"),
                        ("postgres", "postgres"),
                        ("redis", "redis"),
                    ],
                    "lookup type",
                )?,
                None => "file",
            };
            // Keys that belong to another type of lookup.
            let not_for = |key: &'static str, set: bool, hint: &str| -> R<()> {
                if set {
                    return Err(self
                        .err(&at(key), format!("`{key}` is not used by a {kind} lookup"))
                        .with_hint(hint.to_string()));
                }
                Ok(())
            };
            let schema = self.schema_at(&["transforms", id, "lookup", &name], l.schema)?;
            let source = match kind {
                "file" => {
                    let Some(path) = l.path else {
                        return Err(self
                            .err(
                                &["transforms", id, "lookup", &name],
                                "a file lookup needs `path:`",
                            )
                            .with_hint(
                                "path: data/merchants.csv, or type: postgres / redis with url:",
                            ));
                    };
                    not_for("url", l.url.is_some(), "set type: postgres or type: redis")?;
                    not_for("table", l.table.is_some(), "set type: postgres")?;
                    not_for("query", l.query.is_some(), "set type: postgres")?;
                    not_for("key", l.key.is_some(), "set type: redis")?;
                    not_for(
                        "cache",
                        l.cache.is_some(),
                        "a file is held whole; use refresh:",
                    )?;
                    let refresh = l
                        .refresh
                        .map(|r| self.duration(&at("refresh"), r))
                        .transpose()?;
                    if refresh.is_some_and(|r| r.is_zero()) {
                        return Err(self
                            .err(&at("refresh"), "`refresh` must be more than 0")
                            .with_hint("e.g. refresh: 30s, or remove it to read the file once"));
                    }
                    LookupSource::File {
                        path: self.path(&at("path"), path)?,
                        refresh,
                    }
                }
                remote => {
                    not_for(
                        "path",
                        l.path.is_some(),
                        "a store is read by key; remove path:",
                    )?;
                    not_for("refresh", l.refresh.is_some(), "use cache: { ttl: 30s }")?;
                    let url = match l.url {
                        Some(u) => self.non_empty(&at("url"), u, "the url")?,
                        None => {
                            return Err(self
                                .err(
                                    &["transforms", id, "lookup", &name],
                                    format!("a {remote} lookup needs `url:`"),
                                )
                                .with_hint(if remote == "redis" {
                                    "e.g. url: redis://127.0.0.1:6379/0"
                                } else {
                                    "e.g. url: postgres://user@127.0.0.1:5432/db"
                                }));
                        }
                    };
                    if remote == "postgres" {
                        not_for(
                            "key",
                            l.key.is_some(),
                            "the join's ON clause names the key column",
                        )?;
                        let relation = match (l.table, l.query) {
                            (Some(t), None) => {
                                PostgresRelation::Table(self.table_name(&at("table"), t)?)
                            }
                            (None, Some(q)) => PostgresRelation::Query(self.non_empty(
                                &at("query"),
                                q,
                                "the query",
                            )?),
                            (Some(_), Some(_)) => {
                                return Err(self
                                    .err(&at("query"), "give `table:` or `query:`, not both")
                                    .with_hint("remove one"));
                            }
                            (None, None) => {
                                return Err(self
                                    .err(
                                        &["transforms", id, "lookup", &name],
                                        "a postgres lookup needs `table:` or `query:`",
                                    )
                                    .with_hint("e.g. table: accounts"));
                            }
                        };
                        LookupSource::Postgres { url, relation }
                    } else {
                        not_for("table", l.table.is_some(), "set type: postgres")?;
                        not_for("query", l.query.is_some(), "set type: postgres")?;
                        self.check_redis_url(&at("url"), &url)?;
                        let Some(key) = l.key else {
                            return Err(self
                                .err(&["transforms", id, "lookup", &name], "a redis lookup needs `key:`")
                                .with_hint("the hash key with the join column, e.g. key: \"merchant:{merchant_id}\""));
                        };
                        let columns = key_template_columns(&key).map_err(|m| {
                            self.err(&at("key"), m)
                                .with_hint("e.g. key: \"merchant:{merchant_id}\"")
                        })?;
                        if columns.len() != 1 {
                            return Err(self
                                .err(
                                    &at("key"),
                                    "a redis lookup's key names exactly one column (the join key)",
                                )
                                .with_hint("e.g. key: \"merchant:{merchant_id}\""));
                        }
                        let Some(schema) = &schema else {
                            return Err(self
                                .err(
                                    &["transforms", id, "lookup", &name],
                                    "a redis lookup needs `schema:` (its fields and their types)",
                                )
                                .with_hint(
                                    "e.g. schema: { merchant_id: int64, risk_tier: utf8? }",
                                ));
                        };
                        if !schema.fields.iter().any(|f| f.name == columns[0]) {
                            return Err(self
                                .err(&at("key"), format!("the key column `{}` is not in `schema:`", columns[0]))
                                .with_hint("list the key column in schema: (it is filled from the key, not from the hash)"));
                        }
                        LookupSource::Redis { url, key }
                    }
                }
            };
            let cache = match l.cache {
                None => LookupCache::default(),
                Some(c) => {
                    let cat = |k: &'static str| -> [&str; 6] {
                        ["transforms", id, "lookup", &name, "cache", k]
                    };
                    let d = LookupCache::default();
                    let ttl = match c.ttl {
                        Some(t) => self.duration(&cat("ttl"), t)?,
                        None => d.ttl,
                    };
                    LookupCache {
                        max_entries: self.range(
                            &cat("max_entries"),
                            c.max_entries,
                            d.max_entries as u64,
                            1,
                            100_000_000,
                        )? as usize,
                        ttl,
                    }
                }
            };
            out.push(LookupSpec {
                source,
                schema,
                cache,
                name,
            });
        }
        Ok(out)
    }

    /// A source's `schema:`.
    pub fn schema(&self, id: &str, raw: Option<IndexMap<String, String>>) -> R<Option<SchemaSpec>> {
        self.schema_at(&["sources", id], raw)
    }

    /// `schema:` under the YAML path `parent`.
    pub fn schema_at(
        &self,
        parent: &[&str],
        raw: Option<IndexMap<String, String>>,
    ) -> R<Option<SchemaSpec>> {
        let at = |tail: &[&str]| -> Vec<String> {
            parent.iter().chain(tail).map(|s| s.to_string()).collect()
        };
        let Some(raw) = raw else { return Ok(None) };
        if raw.is_empty() {
            let path = at(&["schema"]);
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            return Err(self.err(&path, "the schema has no columns").with_hint(
                "list the columns, e.g. schema: { id: int64, name: utf8? }, or remove `schema:`",
            ));
        }
        let mut fields = Vec::with_capacity(raw.len());
        for (name, ty) in raw {
            let path = at(&["schema", &name]);
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            if name.trim().is_empty() {
                return Err(self.ctx.at_key(&path, "empty column name"));
            }
            match units::parse_field_type(&ty) {
                Ok((data_type, nullable)) => fields.push(FieldSpec {
                    name,
                    data_type,
                    nullable,
                }),
                Err(bad) => {
                    return Err(self
                        .err(
                            &path,
                            format!("unknown column type \"{bad}\" for \"{name}\""),
                        )
                        .with_hint(format!(
                            "{}; add `?` for a nullable column, e.g. utf8?",
                            suggest::hint_with_choices(&bad, FIELD_TYPE_NAMES, "types")
                        )));
                }
            }
        }
        Ok(Some(SchemaSpec { fields }))
    }

    /// A source's `event_time:`; its column must be in `schema` (when given) and a time.
    pub fn event_time(
        &self,
        id: &str,
        raw: Option<RawEventTime>,
        schema: Option<&SchemaSpec>,
    ) -> R<Option<EventTimeSpec>> {
        let Some(raw) = raw else { return Ok(None) };
        let column = self.non_empty(
            &["sources", id, "event_time", "column"],
            raw.column,
            "the event-time column",
        )?;
        if let Some(schema) = schema {
            match schema.field(&column) {
                None => {
                    let names = schema.fields.iter().map(|f| f.name.as_str());
                    let hint = suggest::did_you_mean(&column, names.clone())
                        .unwrap_or_else(|| format!("schema columns: {}", suggest::list(names)));
                    return Err(self
                        .err(
                            &["sources", id, "event_time", "column"],
                            format!("event-time column \"{column}\" is not in the schema"),
                        )
                        .with_hint(hint));
                }
                Some(f)
                    if !matches!(
                        f.data_type,
                        FieldType::TimestampMs | FieldType::TimestampUs | FieldType::Int64
                    ) =>
                {
                    return Err(self
                        .err(
                            &["sources", id, "event_time", "column"],
                            format!("event-time column \"{column}\" has type {}", f.data_type.name()),
                        )
                        .with_hint("event time needs a timestamp_ms, timestamp_us or int64 (epoch ms) column"));
                }
                Some(_) => {}
            }
        }
        let max_delay = match raw.max_delay {
            Some(d) => self.duration(&["sources", id, "event_time", "max_delay"], d)?,
            None => Duration::ZERO,
        };
        let idle_timeout = match raw.idle_timeout {
            Some(d) => {
                let t = self.duration(&["sources", id, "event_time", "idle_timeout"], d)?;
                if t.is_zero() {
                    return Err(self.err(
                        &["sources", id, "event_time", "idle_timeout"],
                        "idle_timeout must be more than 0",
                    ));
                }
                Some(t)
            }
            None => None,
        };
        Ok(Some(EventTimeSpec {
            column,
            max_delay,
            idle_timeout,
        }))
    }

    /// `assignor:` of a group member (`kafka`: librdkafka's names).
    pub fn assignor(&self, at: &[&str], v: Option<String>, kafka: bool) -> R<Assignor> {
        let Some(a) = v else {
            return Ok(Assignor::default());
        };
        let mut choices = vec![
            ("range", Assignor::Range),
            ("round-robin", Assignor::RoundRobin),
        ];
        if kafka {
            choices.push(("roundrobin", Assignor::RoundRobin));
        } else {
            choices.push(("sticky", Assignor::Sticky));
        }
        choices.push(("cooperative-sticky", Assignor::CooperativeSticky));
        self.choice(at, &a, &choices, "assignor")
    }

    /// `start:` — `earliest`, `latest` or `committed`.
    pub fn start(&self, at: &[&str], v: Option<String>) -> R<StartFrom> {
        match v {
            Some(s) => self.choice(
                at,
                &s,
                &[
                    ("earliest", StartFrom::Earliest),
                    ("latest", StartFrom::Latest),
                    ("committed", StartFrom::Committed),
                ],
                "start position",
            ),
            None => Ok(StartFrom::default()),
        }
    }

    /// The format-specific keys of a topic source or sink (`section`:
    /// `sources` or `sinks`) fit its `format:`.
    fn format_keys_fit(
        &self,
        section: &str,
        id: &str,
        format: RecordFormat,
        registry: bool,
        avro_schema: bool,
        proto_schema: bool,
    ) -> R<()> {
        let at = |k: &'static str| -> [&str; 3] { [section, id, k] };
        if format != RecordFormat::Avro && avro_schema {
            return Err(self
                .err(&at("avro_schema"), "`avro_schema` is for format: avro")
                .with_hint("add format: avro, or remove avro_schema"));
        }
        if format != RecordFormat::Protobuf && proto_schema {
            return Err(self
                .err(
                    &at("proto_schema"),
                    "`proto_schema` is for format: protobuf",
                )
                .with_hint("add format: protobuf, or remove proto_schema"));
        }
        if format == RecordFormat::Json && registry {
            return Err(self
                .err(
                    &at("schema_registry"),
                    "`schema_registry` is for format: avro or protobuf",
                )
                .with_hint("add format: avro (or protobuf), or remove schema_registry"));
        }
        Ok(())
    }

    /// How a topic source's binary records are framed and typed: the
    /// registry or schema file of `format: avro` / `format: protobuf`.
    pub fn binary_format(
        &self,
        id: &str,
        format: RecordFormat,
        registry: Option<RawSchemaRegistry>,
        avro_schema: Option<String>,
        proto_schema: Option<RawProtoSchema>,
    ) -> R<(Option<AvroSource>, Option<ProtoSource>)> {
        let at = |k: &'static str| -> [&str; 3] { ["sources", id, k] };
        let registry_url = |r: RawSchemaRegistry| {
            self.registry_url(&["sources", id, "schema_registry", "url"], r.url)
        };
        self.format_keys_fit(
            "sources",
            id,
            format,
            registry.is_some(),
            avro_schema.is_some(),
            proto_schema.is_some(),
        )?;
        Ok(match (format, registry) {
            (RecordFormat::Json, _) => (None, None),
            (RecordFormat::Avro, registry) => match (registry, avro_schema) {
                (Some(r), None) => (
                    Some(AvroSource::Registry {
                        url: registry_url(r)?,
                    }),
                    None,
                ),
                (None, Some(p)) => (
                    Some(AvroSource::SchemaFile(self.path(&at("avro_schema"), p)?)),
                    None,
                ),
                (Some(_), Some(_)) => {
                    return Err(self
                        .err(&at("avro_schema"), "give `schema_registry` or `avro_schema`, not both")
                        .with_hint("records framed with a schema id need the registry; single-object encoded ones the file"));
                }
                (None, None) => {
                    return Err(self
                        .err(&at("format"), "format: avro needs `schema_registry:` or `avro_schema:`")
                        .with_hint("schema_registry: { url: http://127.0.0.1:8081 } for the Confluent wire format"));
                }
            },
            (RecordFormat::Protobuf, registry) => match (registry, proto_schema) {
                (Some(r), None) => (
                    None,
                    Some(ProtoSource::Registry {
                        url: registry_url(r)?,
                    }),
                ),
                (None, Some(p)) => (
                    None,
                    Some(ProtoSource::SchemaFile {
                        path: self.path(&["sources", id, "proto_schema", "file"], p.file)?,
                        message: self.non_empty(
                            &["sources", id, "proto_schema", "message"],
                            p.message,
                            "the message name",
                        )?,
                    }),
                ),
                (Some(_), Some(_)) => {
                    return Err(self
                        .err(&at("proto_schema"), "give `schema_registry` or `proto_schema`, not both")
                        .with_hint("records framed with a schema id need the registry; plain messages the .proto file"));
                }
                (None, None) => {
                    return Err(self
                        .err(&at("format"), "format: protobuf needs `schema_registry:` or `proto_schema:`")
                        .with_hint("schema_registry: { url: http://127.0.0.1:8081 } for the Confluent wire format, or proto_schema: { file: txn.proto, message: pkg.Txn }"));
                }
            },
        })
    }

    /// How a topic sink's records are encoded: the registry subject of
    /// `format: avro`, the message type (and registry) of `format: protobuf`.
    pub fn sink_format(
        &self,
        id: &str,
        topic: &str,
        format: RecordFormat,
        registry_key: Option<RawSchemaRegistry>,
        proto_schema: Option<RawProtoSchema>,
    ) -> R<(Option<AvroSink>, Option<ProtoSink>)> {
        let at = |k: &'static str| -> [&str; 3] { ["sinks", id, k] };
        let registry = |r: RawSchemaRegistry| -> R<AvroSink> {
            Ok(AvroSink {
                url: self.registry_url(&["sinks", id, "schema_registry", "url"], r.url)?,
                subject: r.subject.unwrap_or_else(|| format!("{topic}-value")),
            })
        };
        self.format_keys_fit(
            "sinks",
            id,
            format,
            registry_key.is_some(),
            false,
            proto_schema.is_some(),
        )?;
        Ok(match (format, registry_key) {
            (RecordFormat::Json, _) => (None, None),
            (RecordFormat::Avro, None) => {
                return Err(self
                    .err(
                        &at("format"),
                        "an avro sink needs `schema_registry:` to register its schema",
                    )
                    .with_hint("schema_registry: { url: http://127.0.0.1:8081 }"));
            }
            (RecordFormat::Avro, Some(r)) => (Some(registry(r)?), None),
            (RecordFormat::Protobuf, r) => {
                let Some(p) = proto_schema else {
                    return Err(self
                        .err(
                            &at("format"),
                            "a protobuf sink needs `proto_schema:` (the message type it writes)",
                        )
                        .with_hint("proto_schema: { file: alerts.proto, message: pkg.Alert }"));
                };
                let protobuf = ProtoSink {
                    path: self.path(&["sinks", id, "proto_schema", "file"], p.file)?,
                    message: self.non_empty(
                        &["sinks", id, "proto_schema", "message"],
                        p.message,
                        "the message name",
                    )?,
                    registry: r.map(registry).transpose()?,
                };
                (None, Some(protobuf))
            }
        })
    }

    /// `format:` of a topic's records: `json`, `avro` or `protobuf`.
    pub fn record_format(&self, at: &[&str], v: Option<String>) -> R<RecordFormat> {
        match v {
            Some(f) => self.choice(
                at,
                &f,
                &[
                    ("json", RecordFormat::Json),
                    ("jsonl", RecordFormat::Json),
                    ("avro", RecordFormat::Avro),
                    ("protobuf", RecordFormat::Protobuf),
                ],
                "record format",
            ),
            None => Ok(RecordFormat::Json),
        }
    }

    /// `brokers:` — `host:port` entries separated by commas.
    pub fn brokers(&self, at: &[&str], v: String) -> R<String> {
        let ok = !v.trim().is_empty()
            && v.split(',').all(|b| {
                let b = b.trim();
                b.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            });
        if !ok {
            return Err(self
                .err(at, format!("invalid brokers \"{v}\""))
                .with_hint("write host:port, several separated by commas, e.g. 127.0.0.1:9092"));
        }
        Ok(v.split(',').map(str::trim).collect::<Vec<_>>().join(","))
    }

    /// `options:` — librdkafka settings, values as strings.
    pub fn kafka_options(
        &self,
        at: &[&str],
        v: Option<IndexMap<String, Scalar>>,
    ) -> R<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (k, v) in v.unwrap_or_default() {
            if k.trim().is_empty() {
                return Err(self.err(at, "an empty option name"));
            }
            let v = match v {
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Str(s) => s,
            };
            out.push((k, v));
        }
        Ok(out)
    }

    /// A rate: `50000/s`, `120/m` or a number per second.
    pub fn rate(&self, at: &[&str], raw: Option<Scalar>) -> R<Option<f64>> {
        Ok(match raw {
            None => None,
            Some(Scalar::Str(s)) => Some(units::parse_rate(&s).map_err(|m| self.err(at, m))?),
            Some(Scalar::Int(n)) => Some(units::check_rate(n as f64).map_err(|m| self.err(at, m))?),
            Some(Scalar::Float(f)) => Some(units::check_rate(f).map_err(|m| self.err(at, m))?),
        })
    }

    /// Topic names follow Kafka's rules: 1..=249 of `[A-Za-z0-9._-]`.
    pub fn topic(&self, at: &[&str], t: String) -> R<String> {
        let ok = !t.is_empty()
            && t.len() <= 249
            && t != "."
            && t != ".."
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(self
                .err(at, format!("invalid topic name \"{t}\""))
                .with_hint("topic names use 1 to 249 letters, digits, `.`, `_` and `-`"));
        }
        Ok(t)
    }

    fn transform(&self, id: &str, raw: RawTransform) -> R<TransformSpec> {
        let at = |k: &'static str| -> [&str; 3] { ["transforms", id, k] };
        Ok(match raw {
            RawTransform::Filter(f) => TransformSpec::Filter(FilterTransform {
                inputs: f.inputs,
                where_: self.non_empty(&at("where"), f.where_, "the `where` condition")?,
                parallelism: self.parallelism(&at("parallelism"), f.parallelism)?,
                key: self.key(&at("key"), f.key)?,
            }),
            RawTransform::Sql(s) => TransformSpec::Sql(SqlTransform {
                inputs: s.inputs,
                query: self.non_empty(&at("query"), s.query, "the query")?,
                parallelism: self.parallelism(&at("parallelism"), s.parallelism)?,
                key: self.key(&at("key"), s.key)?,
                lookup: self.lookups(id, s.lookup)?,
            }),
            RawTransform::Score(s) => TransformSpec::Score(ScoreTransform {
                inputs: s.inputs,
                model: self.path(&at("model"), s.model)?,
                format: s
                    .format
                    .map(|f| self.model_format(&at("format"), &f))
                    .transpose()?,
                features: self.features(&at("features"), s.features)?,
                output: match s.output {
                    Some(o) => self.non_empty(&at("output"), o, "the output column")?,
                    None => "score".to_string(),
                },
                reload: s.reload.unwrap_or(false),
                parallelism: self.parallelism(&at("parallelism"), s.parallelism)?,
                key: self.key(&at("key"), s.key)?,
            }),
            RawTransform::Dedup(d) => {
                let within = self.duration(&at("within"), d.within)?;
                if within.is_zero() {
                    return Err(self.err(&at("within"), "`within` must be more than 0"));
                }
                if d.key.is_empty() {
                    return Err(self
                        .err(&at("key"), "`key` lists no columns")
                        .with_hint("e.g. key: [txn_id]"));
                }
                TransformSpec::Dedup(DedupTransform {
                    inputs: d.inputs,
                    key: d.key,
                    time: self.non_empty(&at("time"), d.time, "the time column")?,
                    within,
                    parallelism: self.parallelism(&at("parallelism"), d.parallelism)?,
                })
            }
        })
    }

    fn model_format(&self, at: &[&str], v: &str) -> R<ModelFormat> {
        self.choice(
            at,
            v,
            &[
                ("onnx", ModelFormat::Onnx),
                ("xgboost", ModelFormat::Xgboost),
                ("lightgbm", ModelFormat::Lightgbm),
            ],
            "format",
        )
    }

    fn features(&self, at: &[&str], v: Vec<String>) -> R<Vec<String>> {
        if v.is_empty() {
            return Err(self.err(at, "`features` is empty").with_hint(
                "list the model's input columns in order, e.g. features: [amount, n_1h]",
            ));
        }
        for (i, f) in v.iter().enumerate() {
            if v[..i].contains(f) {
                return Err(self.err(at, format!("feature `{f}` is listed twice")));
            }
        }
        Ok(v)
    }

    /// A Redis URL (`redis://`, `rediss://`, `redis+unix://`, `unix://`).
    pub fn check_redis_url(&self, at: &[&str], url: &str) -> R<()> {
        if ["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            return Ok(());
        }
        Err(self
            .err(at, format!("`{url}` is not a Redis URL"))
            .with_hint("e.g. url: redis://127.0.0.1:6379/0"))
    }

    /// A schema registry's base URL: plain `http://` (the client has no
    /// TLS), without a trailing `/`.
    pub fn registry_url(&self, at: &[&str], url: String) -> R<String> {
        let url = self.non_empty(at, url, "the url")?;
        if url.starts_with("https://") {
            return Err(self
                .err(at, "https:// registries are not supported yet")
                .with_hint("reach the registry over http://, e.g. through a local proxy"));
        }
        if !url.starts_with("http://") {
            return Err(self
                .err(at, format!("`{url}` is not an http URL"))
                .with_hint("e.g. url: http://127.0.0.1:8081"));
        }
        Ok(url.trim_end_matches('/').to_string())
    }

    /// `table:` — `name` or `schema.name`, each an SQL identifier.
    pub fn table_name(&self, at: &[&str], t: String) -> R<String> {
        let ident = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let ok = match t.split_once('.') {
            Some((schema, name)) => ident(schema) && ident(name),
            None => ident(&t),
        };
        if !ok {
            return Err(self
                .err(at, format!("invalid table name \"{t}\""))
                .with_hint("use letters, digits and `_` (schema.table allowed); names are case-sensitive as written"));
        }
        Ok(t)
    }

    fn dead_letter(&self, raw: RawDeadLetter) -> R<DeadLetterSpec> {
        let sink = match raw {
            RawDeadLetter::File(f) => DeadLetterSink::File {
                path: self.path(&["dead_letter", "path"], f.path)?,
                format: match f.format {
                    Some(v) => self.file_format(&["dead_letter", "format"], &v)?,
                    None => FileFormat::Jsonl,
                },
            },
            RawDeadLetter::Stdout(RawDeadLetterStdout {}) => DeadLetterSink::Stdout,
        };
        Ok(DeadLetterSpec { sink })
    }
}
