//! The `dedup` transform: drop records whose key was already seen within a
//! time bound, on event time.
//!
//! The first record of a key is kept and remembered with its event time
//! `t`; a later record with the same key and an event time within
//! `(t - within, t + within)` is a duplicate and dropped; one further away is
//! kept and becomes the key's new reference. A key is forgotten once the
//! watermark passes `t + within` — after that, a record close enough to be
//! its duplicate would be late. So state is bounded by the keys of the last
//! `within` of event time plus the allowed delay.
//!
//! Records before the watermark (or without an event time) are late: they go
//! to the dead-letter output with reason `late`.

use std::time::Duration;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, SortField};
use shoal_runtime::state::{KeyedState, StateContext, StateHandle, ValueState};
use shoal_runtime::{Collector, Operator, Result as RtResult};

use crate::error::{Result, SqlError};

/// A compiled `dedup` transform.
#[derive(Debug, Clone)]
pub struct DedupSpec {
    keys: Vec<usize>,
    time: usize,
    within_ms: i64,
}

impl DedupSpec {
    /// Deduplicate rows of `schema` on `keys` within `within` of event time
    /// column `time`.
    pub fn compile(
        schema: &SchemaRef,
        keys: &[String],
        time: &str,
        within: Duration,
    ) -> Result<Self> {
        let col = |name: &str| {
            schema.index_of(name).map_err(|_| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                SqlError::new(format!("column `{name}` is not in the input"))
                    .with_hint(format!("columns: {}", names.join(", ")))
            })
        };
        if keys.is_empty() {
            return Err(SqlError::new("`key` needs at least one column"));
        }
        let keys = keys.iter().map(|k| col(k)).collect::<Result<Vec<_>>>()?;
        let time = col(time)?;
        if !matches!(schema.field(time).data_type(), DataType::Timestamp(..)) {
            return Err(SqlError::new(format!(
                "the time column `{}` must be a timestamp, got {}",
                schema.field(time).name(),
                schema.field(time).data_type()
            )));
        }
        let within_ms = within.as_millis() as i64;
        if within_ms <= 0 {
            return Err(SqlError::new("`within` must be at least 1ms"));
        }
        Ok(Self {
            keys,
            time,
            within_ms,
        })
    }

    /// The first key column (the shuffle column with parallelism > 1).
    pub fn first_key(&self) -> usize {
        self.keys[0]
    }

    /// A one-line description for `shoal explain`.
    pub fn describe(&self) -> String {
        format!(
            "dedup[{} key cols within {}ms] (state, evicted by watermark)",
            self.keys.len(),
            self.within_ms
        )
    }
}

/// Runs a [`DedupSpec`]; its state is the map key → kept event time.
pub struct DedupOperator {
    spec: DedupSpec,
    node: String,
    converter: RowConverter,
    state: DedupState,
}

/// Everything a dedup instance remembers.
#[derive(Debug)]
struct DedupState {
    watermark: i64,
    /// The runtime's keyed state (a checkpoint writes only changed keys).
    keyed: KeyedState,
    /// Key (Arrow row format) → event time (ms) of the record kept for it.
    kept: StateHandle<ValueState<Vec<u8>, i64>>,
    /// Next watermark at which to sweep expired keys.
    next_sweep: i64,
}

impl DedupState {
    fn new() -> Self {
        let mut keyed = KeyedState::new();
        let kept = keyed.value("dedup_kept");
        Self {
            watermark: i64::MIN,
            keyed,
            kept,
            next_sweep: i64::MIN,
        }
    }
}

impl DedupOperator {
    /// An operator for `spec` over rows of `schema`, named `node`.
    pub fn new(spec: DedupSpec, schema: &SchemaRef, node: &str) -> RtResult<Self> {
        let fields = spec
            .keys
            .iter()
            .map(|i| SortField::new(schema.field(*i).data_type().clone()))
            .collect();
        Ok(Self {
            spec,
            node: node.to_string(),
            converter: RowConverter::new(fields)?,
            state: DedupState::new(),
        })
    }

    /// Keys held in state.
    pub fn state_keys(&self) -> usize {
        self.state.keyed.keys()
    }
}

fn millis(col: &ArrayRef) -> RtResult<Int64Array> {
    let ms = cast(col, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    let ms = cast(&ms, &DataType::Int64)?;
    Ok(ms
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("int64")
        .clone())
}

impl Operator for DedupOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        out: &mut Collector,
    ) -> RtResult<()> {
        let ts = millis(batch.column(self.spec.time))?;
        let keys: Vec<ArrayRef> = self
            .spec
            .keys
            .iter()
            .map(|i| batch.column(*i).clone())
            .collect();
        let rows = self.converter.convert_columns(&keys)?;
        let (wm, within) = (self.state.watermark, self.spec.within_ms);
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut late = Vec::with_capacity(batch.num_rows());
        let kept = self.state.keyed.table(self.state.kept);
        for (i, row) in rows.iter().enumerate() {
            // Rows without an event time are rejected below.
            let t = ts.is_valid(i).then(|| ts.value(i)).filter(|t| *t >= wm);
            let Some(t) = t else {
                keep.push(false);
                late.push(ts.is_valid(i));
                continue;
            };
            late.push(false);
            match kept.get(row.as_ref()).copied() {
                // A duplicate: read only, the key's state is unchanged.
                Some(k) if (t - k).abs() < within => keep.push(false),
                Some(_) => {
                    *kept.get_mut(row.as_ref()).expect("present") = t;
                    keep.push(true);
                }
                None => {
                    kept.insert(row.as_ref().to_vec(), t);
                    keep.push(true);
                }
            }
        }
        let late = BooleanArray::from(late);
        if late.true_count() > 0 {
            let rows = filter_record_batch(&batch, &late)?;
            for letter in crate::late::letters(&self.node, &rows, "late")? {
                out.dead_letter(letter);
            }
        }
        if ts.null_count() > 0 {
            let no_time = BooleanArray::new(ts.nulls().expect("nulls").inner().clone(), None);
            let rows = filter_record_batch(&batch, &arrow::compute::not(&no_time)?)?;
            for letter in crate::late::letters(&self.node, &rows, crate::late::NO_EVENT_TIME)? {
                out.dead_letter(letter);
            }
        }
        let keep = BooleanArray::from(keep);
        if keep.true_count() == batch.num_rows() {
            out.emit(batch);
        } else {
            out.emit(filter_record_batch(&batch, &keep)?);
        }
        Ok(())
    }

    fn state_entries(&self) -> Option<usize> {
        Some(self.state.keyed.keys())
    }

    fn on_watermark(&mut self, watermark: i64, _out: &mut Collector) -> RtResult<()> {
        let s = &mut self.state;
        s.watermark = s.watermark.max(watermark);
        if s.watermark >= s.next_sweep {
            let within = self.spec.within_ms;
            let wm = s.watermark;
            let kept = s.keyed.table(s.kept);
            let gone: Vec<Vec<u8>> = kept
                .iter()
                .filter(|(_, t)| t.saturating_add(within) <= wm)
                .map(|(k, _)| k.clone())
                .collect();
            for k in gone {
                kept.remove(&k);
            }
            // Sweep about 8 times per `within`: a key kept a little longer
            // never changes a result (a record it would match is late).
            s.next_sweep = wm.saturating_add((within / 8).max(1));
        }
        Ok(())
    }

    /// In a checkpoint the kept keys go to the keyed-state files (only the
    /// keys kept or expired since the previous checkpoint are written).
    fn snapshot_at(&mut self, ctx: &StateContext) -> RtResult<serde_json::Value> {
        let reference = self.state.keyed.snapshot(ctx)?;
        Ok(serde_json::json!({
            "watermark": self.state.watermark,
            "keyed_state": reference["keyed_state"].clone(),
        }))
    }

    fn restore_at(
        &mut self,
        states: &[serde_json::Value],
        instance: usize,
        ctx: &StateContext,
    ) -> RtResult<()> {
        let Some(mine) = states.get(instance).filter(|v| !v.is_null()) else {
            return Ok(());
        };
        let bad = || shoal_runtime::RuntimeError::User("dedup state is malformed".into());
        if mine.get("keyed_state").is_none() {
            return Err(bad());
        }
        self.state = DedupState::new();
        self.state.watermark = mine["watermark"].as_i64().ok_or_else(bad)?;
        let reference = serde_json::json!({ "keyed_state": mine["keyed_state"].clone() });
        self.state.keyed.restore(&reference, &ctx.store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]))
    }

    fn batch(rows: &[(&str, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn ids(out: &mut Collector) -> Vec<String> {
        out.take_batches()
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                a.iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()
            })
            .collect()
    }

    fn op() -> DedupOperator {
        let spec = DedupSpec::compile(&schema(), &["id".into()], "ts", Duration::from_millis(100))
            .unwrap();
        DedupOperator::new(spec, &schema(), "dedup").unwrap()
    }

    #[test]
    fn drops_repeats_within_the_bound_and_keeps_later_ones() {
        let mut d = op();
        let mut out = Collector::default();
        d.process_batch(
            0,
            batch(&[
                ("a", 0),
                ("b", 10),
                ("a", 50),
                ("a", 99),
                ("a", 100),
                ("b", 0),
            ]),
            &mut out,
        )
        .unwrap();
        // a@0 kept; a@50, a@99 dropped; a@100 kept (new reference); b@0 within 100 of b@10.
        assert_eq!(ids(&mut out), ["a", "b", "a"]);
        d.process_batch(0, batch(&[("a", 150), ("a", 250)]), &mut out)
            .unwrap();
        assert_eq!(ids(&mut out), ["a"], "a@150 repeats a@100; a@250 does not");
    }

    /// Issue 15, bug 6: a NULL event time is a dead letter saying so.
    #[test]
    fn a_null_event_time_is_a_dead_letter_with_its_reason() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let spec =
            DedupSpec::compile(&schema, &["id".into()], "ts", Duration::from_millis(100)).unwrap();
        let mut d = DedupOperator::new(spec, &schema, "dedup").unwrap();
        let rows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(0),
                    None,
                    Some(5),
                ])),
            ],
        )
        .unwrap();
        let mut out = Collector::default();
        d.on_watermark(3, &mut out).unwrap();
        d.process_batch(0, rows, &mut out).unwrap();
        assert_eq!(ids(&mut out), ["c"]);
        let reasons: Vec<&str> = out
            .dead_letters()
            .iter()
            .map(|l| l.reason.as_str())
            .collect();
        assert_eq!(reasons, ["late", crate::late::NO_EVENT_TIME]);
    }

    #[test]
    fn watermark_evicts_keys_and_late_rows_are_dead_letters() {
        let mut d = op();
        let mut out = Collector::default();
        d.process_batch(0, batch(&[("a", 0), ("b", 500)]), &mut out)
            .unwrap();
        d.on_watermark(200, &mut out).unwrap();
        assert_eq!(d.state_keys(), 1, "a@0 expired at 100");
        d.process_batch(0, batch(&[("a", 150), ("c", 300)]), &mut out)
            .unwrap();
        assert_eq!(ids(&mut out), ["a", "b", "c"]);
        assert_eq!(out.dead_letters().len(), 1);
        assert_eq!(out.dead_letters()[0].reason, "late");
        assert!(out.dead_letters()[0].record.contains("\"a\""));
    }

    #[test]
    fn checkpoints_write_only_changed_keys_and_restore_from_the_files() {
        let dir = std::env::temp_dir().join(format!("shoal-dedup-keyed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ctx = |checkpoint| StateContext::new(&dir, "dedup", 0, checkpoint);
        let mut d = op();
        let mut out = Collector::default();
        d.process_batch(0, batch(&[("a", 1_000), ("b", 1_000)]), &mut out)
            .unwrap();
        d.snapshot_at(&ctx(1)).unwrap();
        // A duplicate of a (unchanged state) and a new key c.
        d.process_batch(0, batch(&[("a", 1_010), ("c", 1_020)]), &mut out)
            .unwrap();
        let snap = d.snapshot_at(&ctx(2)).unwrap();
        let files = snap["keyed_state"]["files"].as_array().unwrap().clone();
        assert_eq!(files.len(), 2);
        let delta = dir.join(files[1].as_str().unwrap());
        let entries = shoal_runtime::state::file_entries(&delta).unwrap();
        assert_eq!(entries, 1, "only c changed");

        let mut restored = op();
        restored.restore_at(&[snap], 0, &ctx(2)).unwrap();
        assert_eq!(restored.state_keys(), 3);
        let mut out2 = Collector::default();
        restored
            .process_batch(
                0,
                batch(&[("a", 1_050), ("c", 1_060), ("d", 1_060)]),
                &mut out2,
            )
            .unwrap();
        assert_eq!(ids(&mut out2), ["d"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn state_survives_snapshot_and_restore() {
        let mut d = op();
        let mut out = Collector::default();
        d.process_batch(0, batch(&[("a", 1_000), ("b", 1_000)]), &mut out)
            .unwrap();
        d.on_watermark(900, &mut out).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ctx = StateContext::new(dir.path(), "dedup", 0, 1);
        let snap = d.snapshot_at(&ctx).unwrap();
        let text = serde_json::to_string(&snap).unwrap();
        let mut restored = op();
        restored
            .restore_at(&[serde_json::from_str(&text).unwrap()], 0, &ctx)
            .unwrap();
        assert_eq!(restored.state_keys(), 2);
        let mut out2 = Collector::default();
        restored
            .process_batch(
                0,
                batch(&[("a", 1_050), ("c", 1_050), ("b", 800)]),
                &mut out2,
            )
            .unwrap();
        assert_eq!(ids(&mut out2), ["c"]);
        assert_eq!(
            out2.dead_letters().len(),
            1,
            "b@800 is before the restored watermark"
        );
    }
}
