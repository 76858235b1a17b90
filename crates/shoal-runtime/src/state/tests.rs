//! Tests of the keyed state, with an example operator using it.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::*;
use crate::{Collector, Operator};

/// An example keyed operator: for rows `(key: int64, item: utf8)` it emits
/// `(key, count, distinct)` — the running number of rows and of distinct
/// items of the key — and keeps the key's last three items. Its state is
/// a value, a map and a list table.
struct CountDistinct {
    state: KeyedState,
    counts: StateHandle<ValueState<i64, u64>>,
    items: StateHandle<MapState<i64, String, u64>>,
    recent: StateHandle<ListState<i64, String>>,
    schema: SchemaRef,
}

impl CountDistinct {
    fn new(full_every: u64) -> Self {
        let mut state = KeyedState::new().full_every(full_every);
        let counts = state.value("counts");
        let items = state.map("items");
        let recent = state.list("recent");
        CountDistinct {
            state,
            counts,
            items,
            recent,
            schema: Arc::new(Schema::new(vec![
                Field::new("key", DataType::Int64, false),
                Field::new("count", DataType::UInt64, false),
                Field::new("distinct", DataType::UInt64, false),
            ])),
        }
    }

    /// Forgets `key` entirely (all three tables).
    fn forget(&mut self, key: i64) {
        self.state.table(self.counts).remove(&key);
        let items: Vec<String> = self
            .state
            .table(self.items)
            .entries(&key)
            .map(|(i, _)| i.clone())
            .collect();
        for i in items {
            self.state.table(self.items).remove(&key, i.as_str());
        }
        self.state.table(self.recent).remove(&key);
    }
}

impl Operator for CountDistinct {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        out: &mut Collector,
    ) -> crate::Result<()> {
        let keys = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64 keys");
        let items = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("utf8 items");
        let mut counts = Vec::with_capacity(batch.num_rows());
        let mut distinct = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let (k, item) = (keys.value(row), items.value(row));
            let c = self.state.table(self.counts).get_or_insert_with(&k, || 0);
            *c += 1;
            counts.push(*c);
            let map = self.state.table(self.items);
            match map.get_mut(&k, item) {
                Some(n) => *n += 1,
                None => map.insert(k, item.to_owned(), 1),
            }
            distinct.push(map.entries(&k).count() as u64);
            let list = self.state.table(self.recent);
            list.push(&k, item.to_owned());
            let l = list.get_mut(&k).expect("just pushed");
            if l.len() > 3 {
                l.remove(0);
            }
        }
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(keys.clone()),
                Arc::new(UInt64Array::from(counts)),
                Arc::new(UInt64Array::from(distinct)),
            ],
        )?;
        out.emit(batch);
        Ok(())
    }

    fn snapshot_at(&mut self, ctx: &StateContext) -> crate::Result<Value> {
        self.state.snapshot(ctx)
    }

    fn restore_at(
        &mut self,
        states: &[Value],
        instance: usize,
        ctx: &StateContext,
    ) -> crate::Result<()> {
        self.state.restore(&states[instance], &ctx.dir)
    }
}

fn input(rows: &[(i64, &str)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("item", DataType::Utf8, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .unwrap()
}

/// `(key, count, distinct)` rows the operator emitted for `rows`.
fn run(op: &mut CountDistinct, rows: &[(i64, &str)]) -> Vec<(i64, u64, u64)> {
    let mut out = Collector::default();
    op.process_batch(0, input(rows), &mut out).unwrap();
    let b = &out.batches()[0];
    let col = |i: usize| b.column(i).clone();
    let k = col(0);
    let k = k.as_any().downcast_ref::<Int64Array>().unwrap();
    let c = col(1);
    let c = c.as_any().downcast_ref::<UInt64Array>().unwrap();
    let d = col(2);
    let d = d.as_any().downcast_ref::<UInt64Array>().unwrap();
    (0..b.num_rows())
        .map(|i| (k.value(i), c.value(i), d.value(i)))
        .collect()
}

fn ctx(dir: &Path, checkpoint: u64) -> StateContext {
    StateContext {
        dir: dir.to_owned(),
        node: "count".into(),
        instance: 0,
        checkpoint,
    }
}

/// Deterministic rows for round `r`: 50 keys, items from a small alphabet.
fn rows(r: u64) -> Vec<(i64, &'static str)> {
    const ITEMS: [&str; 5] = ["a", "b", "c", "d", "e"];
    (0..40u64)
        .map(|i| {
            let x = (r * 7919 + i * 104_729) % 1_000_003;
            ((x % 50) as i64, ITEMS[(x / 50 % 5) as usize])
        })
        .collect()
}

#[test]
fn restore_from_any_checkpoint_continues_exactly_like_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut live = CountDistinct::new(4);
    let mut refs = Vec::new();
    for r in 1..=9u64 {
        run(&mut live, &rows(r));
        if r == 5 {
            live.forget(3);
        }
        refs.push(live.snapshot_at(&ctx(dir.path(), r)).unwrap());
    }
    let expected: Vec<_> = (10..=12).map(|r| run(&mut live, &rows(r))).collect();
    for (i, state) in refs.iter().enumerate() {
        let mut restored = CountDistinct::new(4);
        restored
            .restore_at(
                std::slice::from_ref(state),
                0,
                &ctx(dir.path(), i as u64 + 1),
            )
            .unwrap();
        // Replay what came after checkpoint i+1, then compare the rest.
        for r in i as u64 + 2..=9 {
            run(&mut restored, &rows(r));
            if r == 5 {
                restored.forget(3);
            }
        }
        let got: Vec<_> = (10..=12).map(|r| run(&mut restored, &rows(r))).collect();
        assert_eq!(got, expected, "restored from checkpoint {}", i + 1);
    }
}

#[test]
fn deltas_hold_only_changes_and_a_full_snapshot_compacts_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut op = CountDistinct::new(3);
    run(&mut op, &rows(1));
    let first = op.snapshot_at(&ctx(dir.path(), 1)).unwrap();
    let r = &first["keyed_state"];
    assert_eq!(r["files"].as_array().unwrap().len(), 1);
    assert!(r["files"][0].as_str().unwrap().ends_with("1.full.jsonl"));
    assert_eq!(r["keys"].as_u64().unwrap(), op.state.keys() as u64);
    // One row changes one key in each table: the delta has 3 lines (count,
    // one map entry, the list) plus header and trailer.
    run(&mut op, &[(7, "zzz")]);
    let second = op.snapshot_at(&ctx(dir.path(), 2)).unwrap();
    let files: Vec<&str> = second["keyed_state"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 2);
    assert!(files[1].ends_with("2.delta.jsonl"));
    let delta = std::fs::read_to_string(dir.path().join(files[1])).unwrap();
    assert_eq!(delta.lines().count(), 3 + 2, "{delta}");
    let written = second["keyed_state"]["written_bytes"].as_u64().unwrap();
    assert!(written < first["keyed_state"]["written_bytes"].as_u64().unwrap() / 4);
    assert_eq!(
        second["keyed_state"]["bytes"].as_u64().unwrap(),
        first["keyed_state"]["bytes"].as_u64().unwrap() + written
    );
    assert!(state_size(&second) > written);
    // Nothing changed: an empty delta. Then the third file is a full one.
    let third = op.snapshot_at(&ctx(dir.path(), 3)).unwrap();
    assert_eq!(third["keyed_state"]["files"].as_array().unwrap().len(), 3);
    let fourth = op.snapshot_at(&ctx(dir.path(), 4)).unwrap();
    let files = fourth["keyed_state"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert!(files[0].as_str().unwrap().ends_with("4.full.jsonl"));

    // Pruning with only checkpoint 4 kept deletes files 1–3, not 4.
    let deleted = prune_files(dir.path(), std::iter::once(&fourth), 4).unwrap();
    assert_eq!(deleted, 3);
    let mut restored = CountDistinct::new(3);
    restored
        .restore_at(std::slice::from_ref(&fourth), 0, &ctx(dir.path(), 4))
        .unwrap();
    assert_eq!(restored.state.keys(), op.state.keys());
    // A file newer than the newest manifest (a checkpoint in flight) stays.
    run(&mut op, &[(1, "x")]);
    op.snapshot_at(&ctx(dir.path(), 5)).unwrap();
    assert_eq!(
        prune_files(dir.path(), std::iter::once(&fourth), 4).unwrap(),
        0
    );
}

#[test]
fn unknown_versions_and_damaged_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut op = CountDistinct::new(10);
    run(&mut op, &rows(1));
    let state = op.snapshot_at(&ctx(dir.path(), 1)).unwrap();
    // A reference of a newer version.
    let mut newer = state.clone();
    newer["keyed_state"]["version"] = 2.into();
    let err = CountDistinct::new(10)
        .restore_at(&[newer], 0, &ctx(dir.path(), 1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("format version 2") && err.contains("reads version 1"),
        "{err}"
    );
    // A file of a newer version.
    let file = dir
        .path()
        .join(state["keyed_state"]["files"][0].as_str().unwrap());
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("\"version\":1", "\"version\":7", 1)).unwrap();
    let err = CountDistinct::new(10)
        .restore_at(std::slice::from_ref(&state), 0, &ctx(dir.path(), 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("format version 7"), "{err}");
    // A truncated file (no trailer).
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&file, lines[..lines.len() - 1].join("\n")).unwrap();
    let err = CountDistinct::new(10)
        .restore_at(std::slice::from_ref(&state), 0, &ctx(dir.path(), 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated"), "{err}");
    // A table the operator does not register.
    std::fs::write(&file, text.replace("\"s\":\"items\"", "\"s\":\"other\"")).unwrap();
    let err = CountDistinct::new(10)
        .restore_at(std::slice::from_ref(&state), 0, &ctx(dir.path(), 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"other\""), "{err}");
}
