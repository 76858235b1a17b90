//! # shoal-udfs
//!
//! Scalar user-defined functions for Shoal SQL, registered with DataFusion
//! by [`register_all`]. Every function works on whole Arrow arrays (one call
//! per batch), never row by row through the engine.
//!
//! | function | meaning |
//! |---|---|
//! | `haversine_km(lat1, lon1, lat2, lon2)` | great-circle distance in km (float64) |
//! | `mask_card(card)` | a card number with all but the last 4 digits masked (utf8) |
//! | `wall_clock_ms()` | the wall clock when the batch is processed, ms since the epoch (int64; processing time, volatile) |
//!
//! To add one: write a function `fn(&[ColumnarValue]) -> Result<ColumnarValue>`
//! over arrays, wrap it with [`create_udf`], and add it to [`udfs`].

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;

const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Every UDF of this crate.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        create_udf(
            "haversine_km",
            vec![DataType::Float64; 4],
            DataType::Float64,
            Volatility::Immutable,
            Arc::new(haversine_km),
        ),
        create_udf(
            "mask_card",
            vec![DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(mask_card),
        ),
        create_udf(
            "wall_clock_ms",
            vec![],
            DataType::Int64,
            Volatility::Volatile,
            Arc::new(wall_clock_ms),
        ),
    ]
}

/// `wall_clock_ms()`: processing time, read once per batch.
pub fn wall_clock_ms(_args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(ColumnarValue::Scalar(
        datafusion::common::ScalarValue::Int64(Some(now)),
    ))
}

/// Register every UDF of this crate with `ctx`.
pub fn register_all(ctx: &SessionContext) {
    for udf in udfs() {
        ctx.register_udf(udf);
    }
}

fn f64_array(v: &ColumnarValue, rows: usize) -> Result<Float64Array> {
    let a = v.to_array(rows)?;
    let a = cast(&a, &DataType::Float64)?;
    Ok(a.as_any()
        .downcast_ref::<Float64Array>()
        .expect("cast to float64")
        .clone())
}

fn rows_of(args: &[ColumnarValue]) -> usize {
    args.iter()
        .find_map(|a| match a {
            ColumnarValue::Array(a) => Some(a.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(1)
}

/// Great-circle distance between two (lat, lon) points in degrees.
pub fn haversine_km(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    if args.len() != 4 {
        return exec_err!("haversine_km takes 4 arguments, got {}", args.len());
    }
    let rows = rows_of(args);
    let [lat1, lon1, lat2, lon2] =
        [&args[0], &args[1], &args[2], &args[3]].map(|a| f64_array(a, rows));
    let (lat1, lon1, lat2, lon2) = (lat1?, lon1?, lat2?, lon2?);
    let out: Float64Array = (0..rows)
        .map(|i| {
            if lat1.is_null(i) || lon1.is_null(i) || lat2.is_null(i) || lon2.is_null(i) {
                return None;
            }
            let (p1, p2) = (lat1.value(i).to_radians(), lat2.value(i).to_radians());
            let dp = p2 - p1;
            let dl = (lon2.value(i) - lon1.value(i)).to_radians();
            let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
            Some(2.0 * EARTH_RADIUS_KM * a.sqrt().asin())
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
}

/// `4111111111111111` → `************1111`.
pub fn mask_card(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    if args.len() != 1 {
        return exec_err!("mask_card takes 1 argument, got {}", args.len());
    }
    let rows = rows_of(args);
    let a = cast(&args[0].to_array(rows)?, &DataType::Utf8)?;
    let a = a
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .expect("cast to utf8");
    let mut b = StringBuilder::with_capacity(a.len(), a.value_data().len());
    let mut buf = String::new();
    for v in a.iter() {
        match v {
            None => b.append_null(),
            Some(s) => {
                buf.clear();
                let n = s.chars().count();
                for (i, c) in s.chars().enumerate() {
                    buf.push(if i + 4 < n { '*' } else { c });
                }
                b.append_value(&buf);
            }
        }
    }
    Ok(ColumnarValue::Array(Arc::new(b.finish())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn haversine_paris_london() {
        let v = |x: f64| ColumnarValue::Array(Arc::new(Float64Array::from(vec![x])));
        let out = haversine_km(&[v(48.8566), v(2.3522), v(51.5074), v(-0.1278)]).unwrap();
        let ColumnarValue::Array(a) = out else {
            panic!("array expected")
        };
        let d = a.as_any().downcast_ref::<Float64Array>().unwrap().value(0);
        assert!((d - 343.5).abs() < 1.0, "{d}");
    }

    #[test]
    fn mask_keeps_last_four() {
        let a = ColumnarValue::Array(Arc::new(StringArray::from(vec![
            Some("4111111111111111"),
            None,
            Some("12"),
        ])));
        let ColumnarValue::Array(out) = mask_card(&[a]).unwrap() else {
            panic!("array expected")
        };
        let out = out.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(out.value(0), "************1111");
        assert!(out.is_null(1));
        assert_eq!(out.value(2), "12");
    }

    #[tokio::test]
    async fn usable_from_sql() {
        let ctx = SessionContext::new();
        register_all(&ctx);
        let df = ctx
            .sql("SELECT mask_card('5500000000000004') AS m, haversine_km(0, 0, 0, 1) AS d")
            .await
            .unwrap();
        let batches = df.collect().await.unwrap();
        let m = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(0)
            .to_string();
        assert_eq!(m, "************0004");
    }
}
