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
        self.state.restore(&states[instance], &ctx.store)
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

fn ctx(store: impl Into<StateStore>, checkpoint: u64) -> StateContext {
    StateContext::new(store, "count", 0, checkpoint)
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
    continues_exactly(&dir.path().into());
}

/// The same through an S3-compatible object store: the bucket
/// `SHOAL_S3_BUCKET` at `AWS_ENDPOINT_URL` (`scripts/services.sh start`
/// runs one); skipped without it, except under CI. Old files are pruned
/// from the bucket like from a directory.
#[test]
fn restore_through_an_object_store_continues_exactly() {
    let Some(bucket) = std::env::var("SHOAL_S3_BUCKET")
        .ok()
        .filter(|b| !b.is_empty())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "SHOAL_S3_BUCKET is not set but CI is: scripts/services.sh start runs an S3 server"
        );
        eprintln!("*** SKIPPED: SHOAL_S3_BUCKET is not set (scripts/services.sh start) ***");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!("s3://{bucket}/unit-{}-{nanos:x}/store", std::process::id());
    let store = StateStore::parse(&url, Path::new("/")).unwrap();
    assert!(store.dir().is_none(), "{url} is an object store");
    let refs = continues_exactly(&store);
    let listed = store.list(STATE_DIR).unwrap();
    assert_eq!(listed.len(), 9, "one file per checkpoint: {listed:?}");
    assert!(
        listed.iter().all(|f| f.starts_with("state/count/0/")),
        "{listed:?}"
    );
    // Keep only the last reference: the files of older chains go.
    let deleted = prune_files(&store, refs[8..].iter(), 9).unwrap();
    let left = store.list(STATE_DIR).unwrap();
    assert_eq!(deleted + left.len(), 9);
    assert_eq!(
        left.len(),
        refs[8]["keyed_state"]["files"].as_array().unwrap().len()
    );
    assert!(
        store.read("state/count/0/nothing.ks").is_err(),
        "a missing file is an error"
    );
}

/// Snapshots a live operator at checkpoints 1..=9 into `store`, restores
/// each and checks that it continues exactly like the live one; returns the
/// references.
fn continues_exactly(store: &StateStore) -> Vec<Value> {
    let mut live = CountDistinct::new(4);
    let mut refs = Vec::new();
    for r in 1..=9u64 {
        run(&mut live, &rows(r));
        if r == 5 {
            live.forget(3);
        }
        refs.push(live.snapshot_at(&ctx(store.clone(), r)).unwrap());
    }
    let expected: Vec<_> = (10..=12).map(|r| run(&mut live, &rows(r))).collect();
    for (i, state) in refs.iter().enumerate() {
        let mut restored = CountDistinct::new(4);
        restored
            .restore_at(
                std::slice::from_ref(state),
                0,
                &ctx(store.clone(), i as u64 + 1),
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
    refs
}

#[test]
fn deltas_hold_only_changes_and_a_full_snapshot_compacts_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut op = CountDistinct::new(3);
    run(&mut op, &rows(1));
    let first = op.snapshot_at(&ctx(dir.path(), 1)).unwrap();
    let r = &first["keyed_state"];
    assert_eq!(r["files"].as_array().unwrap().len(), 1);
    assert!(r["files"][0].as_str().unwrap().ends_with("1.full.ks"));
    assert_eq!(r["keys"].as_u64().unwrap(), op.state.keys() as u64);
    // One row changes one key in each table: the delta has 3 entries
    // (count, one map entry, the list).
    run(&mut op, &[(7, "zzz")]);
    let second = op.snapshot_at(&ctx(dir.path(), 2)).unwrap();
    let files: Vec<&str> = second["keyed_state"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 2);
    assert!(files[1].ends_with("2.delta.ks"));
    let delta = std::fs::read(dir.path().join(files[1])).unwrap();
    assert_eq!(entries_in(&delta), 3);
    let full = std::fs::read(dir.path().join(r["files"][0].as_str().unwrap())).unwrap();
    assert!(entries_in(&full) > 10 * 3, "{}", entries_in(&full));
    let written = second["keyed_state"]["written_bytes"].as_u64().unwrap();
    assert_eq!(written, delta.len() as u64);
    assert!(written < first["keyed_state"]["written_bytes"].as_u64().unwrap() / 2);
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
    assert!(files[0].as_str().unwrap().ends_with("4.full.ks"));

    // Pruning with only checkpoint 4 kept deletes files 1–3, not 4.
    let deleted = prune_files(&dir.path().into(), std::iter::once(&fourth), 4).unwrap();
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
        prune_files(&dir.path().into(), std::iter::once(&fourth), 4).unwrap(),
        0
    );
}

/// The entry count in a file's trailer.
fn entries_in(file: &[u8]) -> u64 {
    let t = &file[file.len() - 16..];
    assert_eq!(&t[12..], b"END!");
    u64::from_le_bytes(t[..8].try_into().unwrap())
}

#[test]
fn unknown_versions_and_damaged_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut op = CountDistinct::new(10);
    run(&mut op, &rows(1));
    let state = op.snapshot_at(&ctx(dir.path(), 1)).unwrap();
    let restore = |state: &Value| {
        CountDistinct::new(10)
            .restore_at(std::slice::from_ref(state), 0, &ctx(dir.path(), 1))
            .unwrap_err()
            .to_string()
    };
    // A reference of a newer version.
    let mut newer = state.clone();
    newer["keyed_state"]["version"] = 3.into();
    let err = restore(&newer);
    assert!(
        err.contains("format version 3") && err.contains("reads versions 1 to 2"),
        "{err}"
    );
    // A file of a newer version.
    let file = dir
        .path()
        .join(state["keyed_state"]["files"][0].as_str().unwrap());
    let bytes = std::fs::read(&file).unwrap();
    let mut v7 = bytes.clone();
    v7[7] = 7;
    std::fs::write(&file, &v7).unwrap();
    let err = restore(&state);
    assert!(err.contains("format version 7"), "{err}");
    // A truncated file (no trailer).
    std::fs::write(&file, &bytes[..bytes.len() - 16]).unwrap();
    let err = restore(&state);
    assert!(err.contains("truncated"), "{err}");
    // A damaged byte among the entries.
    let mut damaged = bytes.clone();
    let at = bytes.len() - 40;
    damaged[at] ^= 0x55;
    std::fs::write(&file, &damaged).unwrap();
    let err = restore(&state);
    assert!(err.contains("checksum mismatch"), "{err}");
    // A table the operator does not register.
    let mut other = bytes.clone();
    let at = bytes.windows(7).position(|w| w == b"\"items\"").unwrap();
    other[at..at + 7].copy_from_slice(b"\"other\"");
    std::fs::write(&file, &other).unwrap();
    let err = restore(&state);
    assert!(err.contains("\"other\""), "{err}");
}

/// A state written by the previous format (version 1, JSON lines) is read:
/// a job upgraded from that Shoal keeps its state.
#[test]
fn files_of_format_version_1_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let rel = "state/count/0/00000000000000000001.full.jsonl";
    std::fs::create_dir_all(dir.path().join("state/count/0")).unwrap();
    std::fs::write(
        dir.path().join(rel),
        concat!(
            r#"{"format":"shoal-keyed-state","version":1,"kind":"full","checkpoint":1,"node":"count","instance":0,"tables":{"counts":"value","items":"map","recent":"list"}}"#,
            "\n",
            r#"{"s":"counts","k":7,"v":3}"#,
            "\n",
            r#"{"s":"items","k":7,"m":"a","v":2}"#,
            "\n",
            r#"{"s":"items","k":7,"m":"b","v":1}"#,
            "\n",
            r#"{"s":"recent","k":7,"v":["a","b","a"]}"#,
            "\n",
            r#"{"end":true,"lines":4}"#,
            "\n"
        ),
    )
    .unwrap();
    let reference =
        serde_json::json!({"keyed_state": {"version": 1, "files": [rel], "sizes": [1]}});
    let mut op = CountDistinct::new(10);
    op.restore_at(&[reference], 0, &ctx(dir.path(), 1)).unwrap();
    assert_eq!(op.state.get(op.counts).get(&7), Some(&3));
    assert_eq!(op.state.get(op.items).get(&7, "a"), Some(&2));
    assert_eq!(op.state.get(op.recent).get(&7), ["a", "b", "a"]);
    // The next row continues from it; the next snapshot is version 2.
    assert_eq!(run(&mut op, &[(7, "c")]), vec![(7, 4, 3)]);
    let next = op.snapshot_at(&ctx(dir.path(), 2)).unwrap();
    assert_eq!(next["keyed_state"]["version"], 2);
}
