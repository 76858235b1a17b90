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
