//! A lookup table: a CSV file loaded into one Arrow batch with a hash index
//! on the join key, optionally reloaded in the background when the file
//! changes (swapped in atomically between batches; a bad new file is
//! rejected with a logged error and the old contents keep serving).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use arrow::array::{ArrayRef, RecordBatch};
use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, SqlError};
use crate::query::CompiledQuery;

/// What a pipeline declares about a lookup table.
#[derive(Debug, Clone)]
pub struct LookupTableSpec {
    /// The table's name in queries.
    pub name: String,
    /// The CSV file (with a header row).
    pub path: PathBuf,
    /// Reload the file this often when it changed; `None` = load once.
    pub refresh: Option<Duration>,
    /// Column types; `None` = inferred from the file's first 1000 rows.
    pub schema: Option<SchemaRef>,
}

/// A lookup table: a file read at plan time (with its declared or
/// inferred schema), or a table in an outside store read by key.
#[derive(Debug)]
pub struct LookupTable {
    spec: LookupTableSpec,
    schema: SchemaRef,
    /// The contents read by [`LookupTable::open`], until the join takes
    /// them, and the file's modification time and size before that read.
    first: Mutex<Option<RecordBatch>>,
    first_version: Option<(SystemTime, u64)>,
    /// For a table in a store: the store and its cache's settings.
    store: Option<(Arc<dyn LookupStore>, CacheConfig)>,
}

pub use shoal_runtime::LookupStore;

/// `cache:` of a lookup in a store.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Keys held (found or not).
    pub max_entries: usize,
    /// How long an answer is reused.
    pub ttl: Duration,
}

impl LookupTable {
    /// A table in `store`, named `name` in queries.
    pub fn in_store(name: &str, store: Arc<dyn LookupStore>, cache: CacheConfig) -> Arc<Self> {
        Arc::new(Self {
            spec: LookupTableSpec {
                name: name.to_string(),
                path: PathBuf::new(),
                refresh: None,
                schema: None,
            },
            schema: store.schema(),
            first: Mutex::new(None),
            first_version: None,
            store: Some((store, cache)),
        })
    }

    /// The store a table is in (`None`: a file).
    pub(crate) fn store(&self) -> Option<&(Arc<dyn LookupStore>, CacheConfig)> {
        self.store.as_ref()
    }

    /// Read the table's file, settling its schema (errors name the file).
    pub fn open(spec: LookupTableSpec) -> Result<Arc<Self>> {
        let schema = match &spec.schema {
            Some(s) => s.clone(),
            None => {
                let file = open(&spec.path)?;
                let (schema, _) = Format::default()
                    .with_header(true)
                    .infer_schema(file, Some(1000))
                    .map_err(|e| read_error(&spec.path, &e))?;
                Arc::new(schema)
            }
        };
        let table = Self {
            first_version: modified(&spec.path),
            spec,
            schema,
            first: Mutex::new(None),
            store: None,
        };
        let rows = table.read()?;
        *table.first.lock().expect("not poisoned") = Some(rows);
        Ok(Arc::new(table))
    }

    /// The contents read at open, else the file as it is now.
    fn take_or_read(&self) -> Result<RecordBatch> {
        match self.first.lock().expect("not poisoned").take() {
            Some(rows) => Ok(rows),
            None => self.read(),
        }
    }

    /// The name queries use.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The columns of the file.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Read the whole file (errors name the file).
    fn read(&self) -> Result<RecordBatch> {
        let file = open(&self.spec.path)?;
        let reader = ReaderBuilder::new(self.schema.clone())
            .with_header(true)
            .build(file)
            .map_err(|e| read_error(&self.spec.path, &e))?;
        let batches = reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| read_error(&self.spec.path, &e))?;
        Ok(arrow::compute::concat_batches(&self.schema, &batches)?)
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| {
        SqlError::new(format!("cannot open lookup table {}: {e}", path.display()))
            .with_hint("paths are relative to the working directory")
    })
}

fn read_error(path: &Path, e: &dyn std::fmt::Display) -> SqlError {
    SqlError::new(format!("cannot read lookup table {}: {e}", path.display()))
        .with_hint("a CSV file with a header row; declare `schema:` if inference guesses wrong")
}

/// The table as the join uses it: rows after the query's own stages on the
/// table side, and a hash index from encoded join key to row.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) rows: RecordBatch,
    index: HashMap<Box<[u8]>, u32>,
    /// Further rows with the same key: `next[row]`, `u32::MAX` ends a chain.
    next: Vec<u32>,
}

const NO_ROW: u32 = u32::MAX;

impl Loaded {
    /// The first row with this encoded key.
    pub(crate) fn first(&self, key: &[u8]) -> Option<u32> {
        self.index.get(key).copied()
    }

    /// The row after `row` with the same key.
    pub(crate) fn next(&self, row: u32) -> Option<u32> {
        let n = self.next[row as usize];
        (n != NO_ROW).then_some(n)
    }

    /// Rows held.
    pub(crate) fn len(&self) -> usize {
        self.rows.num_rows()
    }
}

/// How to turn the file into a [`Loaded`] table: the table-side stages of
/// the query and the key expressions over their output.
#[derive(Debug)]
pub(crate) struct Preparer {
    pub(crate) stages: CompiledQuery,
    pub(crate) keys: Vec<Arc<dyn PhysicalExpr>>,
    pub(crate) converter: RowConverter,
}

impl Preparer {
    fn prepare(&self, raw: &RecordBatch) -> Result<Loaded> {
        let rows = self
            .stages
            .apply(raw)
            .map_err(|e| SqlError::new(e.to_string()))?;
        self.index(rows)
    }

    /// Index rows that went through the table-side stages already.
    pub(crate) fn index(&self, rows: RecordBatch) -> Result<Loaded> {
        let keys = evaluate(&self.keys, &rows)?;
        let encoded = self.converter.convert_columns(&keys)?;
        let mut index: HashMap<Box<[u8]>, u32> = HashMap::with_capacity(rows.num_rows());
        let mut next = vec![NO_ROW; rows.num_rows()];
        // Insert in reverse so each chain lists rows in file order.
        for row in (0..rows.num_rows()).rev() {
            if keys.iter().any(|k| k.is_null(row)) {
                continue; // a NULL key matches nothing
            }
            let key: Box<[u8]> = encoded.row(row).as_ref().into();
            if let Some(first) = index.insert(key, row as u32) {
                next[row] = first;
            }
        }
        Ok(Loaded { rows, index, next })
    }
}

/// Evaluate key expressions over a batch.
pub(crate) fn evaluate(
    keys: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
) -> Result<Vec<ArrayRef>> {
    Ok(keys
        .iter()
        .map(|k| {
            k.evaluate(batch)
                .and_then(|v| v.into_array(batch.num_rows()))
        })
        .collect::<datafusion::common::Result<Vec<_>>>()?)
}

/// The loaded contents of a lookup table, shared by every instance of the
/// transform, swapped whole on refresh.
#[derive(Debug)]
pub(crate) struct LiveTable {
    table: Arc<LookupTable>,
    preparer: Preparer,
    current: ArcSwap<Loaded>,
}

impl LiveTable {
    /// Load `table` now and, if it refreshes, start watching its file.
    pub(crate) fn start(table: Arc<LookupTable>, preparer: Preparer) -> Result<Arc<Self>> {
        let loaded = preparer.prepare(&table.take_or_read()?)?;
        let live = Arc::new(Self {
            table,
            preparer,
            current: ArcSwap::from_pointee(loaded),
        });
        if let Some(every) = live.table.spec.refresh {
            let weak = Arc::downgrade(&live);
            let name = format!("lookup-{}", live.table.name());
            let seen = live.table.first_version;
            std::thread::Builder::new()
                .name(name)
                .spawn(move || watch(weak, every, seen))
                .map_err(|e| SqlError::new(format!("cannot start the table watcher: {e}")))?;
        }
        Ok(live)
    }

    /// The contents to join the next batch against.
    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<Loaded>> {
        self.current.load()
    }

    /// The table's name.
    pub(crate) fn name(&self) -> &str {
        self.table.name()
    }

    /// Reload the file; on any error keep the current contents.
    fn reload(&self) -> Result<usize> {
        let loaded = self.preparer.prepare(&self.table.read()?)?;
        let rows = loaded.len();
        self.current.store(Arc::new(loaded));
        Ok(rows)
    }
}

fn modified(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Poll the file every `every` until the table is dropped; reload it when
/// its modification time or size differ from `seen` (the version loaded).
fn watch(table: Weak<LiveTable>, every: Duration, mut seen: Option<(SystemTime, u64)>) {
    loop {
        std::thread::sleep(every);
        let Some(t) = table.upgrade() else { return };
        let now = modified(&t.table.spec.path);
        if now.is_none() || now == seen {
            continue;
        }
        seen = now;
        match t.reload() {
            Ok(rows) => tracing::info!(table = %t.name(), rows, "lookup table reloaded"),
            Err(e) => tracing::error!(
                table = %t.name(),
                path = %t.table.spec.path.display(),
                error = %e,
                "lookup table not reloaded; the previous contents keep serving"
            ),
        }
    }
}
