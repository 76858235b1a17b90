//! The table side of a lookup join against an outside store (Postgres,
//! Redis): per batch of the stream, the distinct keys not in the cache
//! are fetched in one request (one query, one pipelined round trip — never
//! one per row), the answers — a row, or "no such key" — are cached for
//! the TTL, and the batch is joined against the rows of its keys.
//!
//! The cache holds at most `max_entries` keys and forgets the oldest
//! answers first (FIFO by the time they were fetched, which is also the
//! order they expire in). A changed row in the store is seen once its
//! cached answer is older than the TTL.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::row::Rows;
use shoal_runtime::{Result as RtResult, RuntimeError};

use super::table::{CacheConfig, Loaded, LookupStore, LookupTable, Preparer, evaluate};

/// Cached answers by encoded key: when fetched, and the key's rows after
/// the table-side stages (`None`: no row).
struct Cache {
    map: HashMap<Box<[u8]>, (Instant, Option<RecordBatch>)>,
    order: VecDeque<(Box<[u8]>, Instant)>,
    config: CacheConfig,
}

impl Cache {
    fn new(config: CacheConfig) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            config,
        }
    }

    /// The fresh answer for `key`, if any.
    fn get(&self, key: &[u8], now: Instant) -> Option<&Option<RecordBatch>> {
        match self.map.get(key) {
            Some((at, rows)) if now.duration_since(*at) < self.config.ttl => Some(rows),
            _ => None,
        }
    }

    fn insert(&mut self, key: Box<[u8]>, rows: Option<RecordBatch>, now: Instant) {
        self.order.push_back((key.clone(), now));
        self.map.insert(key, (now, rows));
        while self.map.len() > self.config.max_entries
            || self.order.len() > 2 * self.config.max_entries
        {
            let Some((key, at)) = self.order.pop_front() else {
                break;
            };
            // A key fetched again since has a later entry further back.
            if self.map.get(&key).is_some_and(|(t, _)| *t == at) {
                self.map.remove(&key);
            }
        }
    }
}

/// The store side of one lookup join.
pub(crate) struct StoreSide {
    table: Arc<LookupTable>,
    store: Arc<dyn LookupStore>,
    preparer: Preparer,
    /// The store's column the join key is.
    column: String,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for StoreSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSide")
            .field("store", &self.store)
            .field("column", &self.column)
            .finish()
    }
}

impl StoreSide {
    pub(crate) fn new(table: Arc<LookupTable>, preparer: Preparer, column: String) -> Self {
        let (store, config) = table.store().cloned().expect("a table in a store");
        Self {
            table,
            store,
            preparer,
            column,
            cache: Mutex::new(Cache::new(config)),
        }
    }

    /// The table's name.
    pub(crate) fn name(&self) -> &str {
        self.table.name()
    }

    /// What the store is.
    pub(crate) fn describe(&self) -> String {
        self.store.describe()
    }

    /// Keys cached.
    pub(crate) fn cached(&self) -> usize {
        self.cache.lock().expect("not poisoned").map.len()
    }

    /// The rows of the keys of one stream batch (`keys`: the key column,
    /// `encoded`: its row encoding), indexed for the join.
    pub(crate) fn rows_for(&self, keys: &[ArrayRef], encoded: &Rows) -> RtResult<Loaded> {
        let now = Instant::now();
        let mut parts: Vec<RecordBatch> = Vec::new();
        let mut missing: Vec<u32> = Vec::new();
        {
            let cache = self.cache.lock().expect("not poisoned");
            let mut seen: HashSet<&[u8]> = HashSet::new();
            for row in 0..encoded.num_rows() {
                if keys.iter().any(|k| k.is_null(row)) {
                    continue;
                }
                let key = encoded.row(row);
                if !seen.insert(key.data()) {
                    continue;
                }
                match cache.get(key.data(), now) {
                    Some(Some(rows)) => parts.push(rows.clone()),
                    Some(None) => {}
                    None => missing.push(row as u32),
                }
            }
        }
        if !missing.is_empty() {
            let wanted = arrow::compute::take(
                &keys[0],
                &UInt32Array::from_iter_values(missing.iter().copied()),
                None,
            )?;
            let raw = shoal_runtime::off_worker(|| self.store.fetch(&self.column, &wanted))
                .map_err(|e| RuntimeError::External(format!("lookup `{}`: {e}", self.name())))?;
            let fetched =
                self.preparer.stages.apply(&raw).map_err(|e| {
                    RuntimeError::Internal(format!("lookup `{}`: {e}", self.name()))
                })?;
            let fkeys = evaluate(&self.preparer.keys, &fetched)
                .map_err(|e| RuntimeError::Internal(e.message))?;
            let fenc = self.preparer.converter.convert_columns(&fkeys)?;
            let mut groups: HashMap<&[u8], Vec<u32>> = HashMap::new();
            for r in 0..fetched.num_rows() {
                if fkeys.iter().all(|k| k.is_valid(r)) {
                    groups.entry(fenc.row(r).data()).or_default().push(r as u32);
                }
            }
            let mut cache = self.cache.lock().expect("not poisoned");
            for row in missing {
                let key = encoded.row(row as usize).data();
                let rows = match groups.get(key) {
                    Some(idx) => Some(take_record_batch(
                        &fetched,
                        &UInt32Array::from(idx.clone()),
                    )?),
                    None => None,
                };
                cache.insert(key.into(), rows, now);
            }
            parts.push(fetched);
        }
        let schema = parts
            .first()
            .map(|p| p.schema())
            .unwrap_or_else(|| self.preparer.stages.schema().clone());
        let rows = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            concat_batches(&schema, &parts)?
        };
        self.preparer
            .index(rows)
            .map_err(|e| RuntimeError::Internal(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cache(max: usize, ttl_ms: u64) -> Cache {
        Cache::new(CacheConfig {
            max_entries: max,
            ttl: Duration::from_millis(ttl_ms),
        })
    }

    #[test]
    fn answers_expire_after_the_ttl() {
        let mut c = cache(10, 1000);
        let t0 = Instant::now();
        c.insert(b"a".as_slice().into(), None, t0);
        assert!(c.get(b"a", t0 + Duration::from_millis(999)).is_some());
        assert!(c.get(b"a", t0 + Duration::from_millis(1000)).is_none());
        assert!(c.get(b"b", t0).is_none());
    }

    #[test]
    fn the_oldest_answers_go_first_and_the_size_stays_bounded() {
        let mut c = cache(3, 60_000);
        let t0 = Instant::now();
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            c.insert(
                k.as_bytes().into(),
                None,
                t0 + Duration::from_millis(i as u64),
            );
        }
        let now = t0 + Duration::from_millis(10);
        assert!(c.get(b"a", now).is_none());
        assert!(c.get(b"d", now).is_some());
        assert_eq!(c.map.len(), 3);
        // Refetching one key many times does not grow the order queue
        // without bound.
        for i in 0..100 {
            c.insert(b"d".as_slice().into(), None, now + Duration::from_millis(i));
        }
        assert!(c.order.len() <= 6, "{}", c.order.len());
        assert!(c.get(b"d", now + Duration::from_millis(100)).is_some());
    }
}
