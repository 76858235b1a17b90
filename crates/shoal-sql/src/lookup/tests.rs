use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{LookupTable, LookupTableSpec};
use crate::query::compile_query_with;

fn stream_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("merchant_id", DataType::Int64, true),
    ]))
}

fn stream(merchants: &[Option<i64>]) -> RecordBatch {
    let ids = Int64Array::from_iter_values(0..merchants.len() as i64);
    RecordBatch::try_new(
        stream_schema(),
        vec![
            Arc::new(ids),
            Arc::new(Int64Array::from(merchants.to_vec())),
        ],
    )
    .unwrap()
}

/// A fresh CSV file for one test.
fn csv(test: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("shoal-lookup-{test}-{}.csv", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn table(path: &PathBuf, refresh: Option<Duration>) -> Arc<LookupTable> {
    LookupTable::open(LookupTableSpec {
        name: "merchants".into(),
        path: path.clone(),
        refresh,
        schema: None,
    })
    .unwrap()
}

fn categories(b: &RecordBatch) -> Vec<Option<String>> {
    let c = b
        .column_by_name("category")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    (0..c.len())
        .map(|i| c.is_valid(i).then(|| c.value(i).to_string()))
        .collect()
}

const LEFT: &str =
    "SELECT t.id, m.category FROM txns t LEFT JOIN merchants m ON t.merchant_id = m.merchant_id";

#[test]
fn left_join_keeps_unmatched_and_null_keys_and_repeats_duplicates() {
    let path = csv("left", "merchant_id,category\n1,food\n2,fuel\n2,travel\n");
    let t = table(&path, None);
    let q = compile_query_with(LEFT, &[("txns".into(), stream_schema())], &[t]).unwrap();
    let out = q
        .apply(&stream(&[Some(1), Some(2), Some(3), None]))
        .unwrap();
    let ids = out
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    assert_eq!(ids, vec![0, 1, 1, 2, 3]);
    assert_eq!(
        categories(&out),
        vec![
            Some("food".into()),
            Some("fuel".into()),
            Some("travel".into()),
            None,
            None
        ]
    );
    assert!(
        q.describe()
            .contains("lookup-join[merchants, outer, 3 rows]")
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_changed_file_is_swapped_in_and_a_bad_one_is_rejected() {
    let path = csv("refresh", "merchant_id,category\n1,food\n");
    let t = table(&path, Some(Duration::from_millis(20)));
    let q = compile_query_with(LEFT, &[("txns".into(), stream_schema())], &[t]).unwrap();
    let input = stream(&[Some(1)]);
    assert_eq!(
        categories(&q.apply(&input).unwrap()),
        vec![Some("food".into())]
    );

    let wait_for = |want: Option<String>| {
        let start = Instant::now();
        loop {
            let got = categories(&q.apply(&input).unwrap());
            if got == vec![want.clone()] {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "still {got:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // A longer file (the watcher compares modification time and size).
    std::fs::write(&path, "merchant_id,category\n1,groceries\n2,fuel\n").unwrap();
    wait_for(Some("groceries".into()));

    // A file that does not parse as the table's schema: the old rows stay.
    std::fs::write(&path, "merchant_id,category\nnot-a-number,x\n1,y\n1,z\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        categories(&q.apply(&input).unwrap()),
        vec![Some("groceries".into())]
    );
    // And a good file after it is taken again.
    std::fs::write(&path, "merchant_id,category\n3,x\n").unwrap();
    wait_for(None);
    let _ = std::fs::remove_file(path);
}

#[test]
fn unsupported_lookup_joins_are_plan_errors() {
    let path = csv("errors", "merchant_id,category,name\n1,food,a\n");
    let t = table(&path, None);
    let inputs = [("txns".to_string(), stream_schema())];
    let err = |sql: &str| {
        compile_query_with(sql, &inputs, std::slice::from_ref(&t))
            .map(|_| ())
            .unwrap_err()
            .message
    };
    let full =
        err("SELECT t.id FROM txns t FULL JOIN merchants m ON t.merchant_id = m.merchant_id");
    assert!(
        full.contains("Full") && full.contains("merchants"),
        "{full}"
    );
    let table_outer =
        err("SELECT t.id FROM merchants m LEFT JOIN txns t ON t.merchant_id = m.merchant_id");
    assert!(table_outer.contains("not supported"), "{table_outer}");

    let missing = LookupTable::open(LookupTableSpec {
        name: "m".into(),
        path: PathBuf::from("/nonexistent/merchants.csv"),
        refresh: None,
        schema: None,
    })
    .unwrap_err();
    assert!(
        missing.message.contains("/nonexistent/merchants.csv"),
        "{}",
        missing.message
    );
    let _ = std::fs::remove_file(path);
}

/// A table held in memory behind the store interface, counting requests
/// (a test double for the interface: the real stores are tested against
/// Postgres and Redis in `tests/tests/lookups.rs`).
#[derive(Debug)]
struct CountingStore {
    rows: std::sync::Mutex<Vec<(i64, String)>>,
    requests: std::sync::Mutex<Vec<Vec<i64>>>,
}

impl super::LookupStore for CountingStore {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("merchant_id", DataType::Int64, true),
            Field::new("category", DataType::Utf8, true),
        ]))
    }

    fn fetch(&self, column: &str, keys: &arrow::array::ArrayRef) -> Result<RecordBatch, String> {
        assert_eq!(column, "merchant_id");
        let keys: Vec<i64> = keys
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec();
        self.requests.lock().unwrap().push(keys.clone());
        let rows = self.rows.lock().unwrap();
        let hits: Vec<&(i64, String)> = rows.iter().filter(|(k, _)| keys.contains(k)).collect();
        RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(hits.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(
                    hits.iter().map(|r| r.1.as_str()),
                )),
            ],
        )
        .map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[test]
fn a_store_table_is_read_once_per_batch_cached_and_refetched_after_the_ttl() {
    let store = Arc::new(CountingStore {
        rows: std::sync::Mutex::new(vec![
            (1, "food".into()),
            (2, "fuel".into()),
            (2, "travel".into()),
        ]),
        requests: Default::default(),
    });
    let t = LookupTable::in_store(
        "merchants",
        store.clone(),
        super::CacheConfig {
            max_entries: 100,
            ttl: Duration::from_millis(300),
        },
    );
    let q = compile_query_with(LEFT, &[("txns".into(), stream_schema())], &[t]).unwrap();
    assert!(
        q.describe()
            .contains("lookup-join[merchants, outer, memory, cached]"),
        "{}",
        q.describe()
    );
    let out = q
        .apply(&stream(&[
            Some(1),
            Some(2),
            Some(3),
            None,
            Some(1),
            Some(3),
        ]))
        .unwrap();
    assert_eq!(
        categories(&out),
        vec![
            Some("food".into()),
            Some("fuel".into()),
            Some("travel".into()),
            None,
            None,
            Some("food".into()),
            None
        ]
    );
    // One request for the batch, each distinct key once, no NULL key.
    assert_eq!(*store.requests.lock().unwrap(), vec![vec![1, 2, 3]]);
    // The next batch is answered from the cache, "no row" (3) included;
    // only the new key is asked for.
    store.rows.lock().unwrap()[0].1 = "groceries".into();
    let out = q.apply(&stream(&[Some(1), Some(3), Some(4)])).unwrap();
    assert_eq!(categories(&out), vec![Some("food".into()), None, None]);
    assert_eq!(store.requests.lock().unwrap().len(), 2);
    assert_eq!(store.requests.lock().unwrap()[1], vec![4]);
    // After the TTL the changed row is seen.
    std::thread::sleep(Duration::from_millis(350));
    let out = q.apply(&stream(&[Some(1)])).unwrap();
    assert_eq!(categories(&out), vec![Some("groceries".into())]);
    assert_eq!(store.requests.lock().unwrap()[2], vec![1]);
}

#[test]
fn a_store_table_must_be_joined_on_one_of_its_columns() {
    let store = Arc::new(CountingStore {
        rows: Default::default(),
        requests: Default::default(),
    });
    let t = LookupTable::in_store(
        "merchants",
        store,
        super::CacheConfig {
            max_entries: 10,
            ttl: Duration::from_secs(1),
        },
    );
    let e = compile_query_with(
        "SELECT t.id FROM txns t JOIN merchants m ON t.merchant_id + 1 = m.merchant_id + 1",
        &[("txns".into(), stream_schema())],
        &[t],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        e.message.contains("must be on one of its columns"),
        "{}",
        e.message
    );
}
