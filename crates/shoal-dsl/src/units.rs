//! Human-friendly values: durations (`2m30s`), sizes (`64MiB`), rates (`50000/s`)
//! and schema type names (`utf8?`).
//!
//! Every parser returns a one-line message on error that says what was expected,
//! so callers can put it straight into a [`DslError`](crate::DslError).

use std::time::Duration;

use crate::spec::FieldType;

/// Parse a duration: one or more `<number><unit>` parts, e.g. `5s`, `250ms`, `1m`,
/// `1h`, `2m30s`, `1.5s`. Units: `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`, `d`.
/// `0` alone is accepted as zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const EXAMPLE: &str = "e.g. 5s, 250ms, 1m, 2m30s or 1h";
    let t = s.trim();
    if t.is_empty() {
        return Err(format!(
            "empty duration; expected a number and a unit, {EXAMPLE}"
        ));
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() {
            return Err(format!(
                "invalid duration \"{t}\": expected a number at \"{rest}\"; {EXAMPLE}"
            ));
        }
        let value: f64 = num.parse().map_err(|_| {
            format!("invalid duration \"{t}\": \"{num}\" is not a number; {EXAMPLE}")
        })?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" | "sec" | "secs" => 1e9,
            "m" | "min" | "mins" => 60e9,
            "h" | "hr" | "hrs" => 3600e9,
            "d" | "day" | "days" => 86400e9,
            "" => {
                return Err(format!("duration \"{t}\" has no unit; {EXAMPLE}"));
            }
            other => {
                return Err(format!(
                    "unknown unit \"{other}\" in duration \"{t}\"; use ns, us, ms, s, m, h or d ({EXAMPLE})"
                ));
            }
        };
        total += value * nanos_per;
        rest = after;
    }
    if !total.is_finite() || total >= u64::MAX as f64 {
        return Err(format!("duration \"{t}\" is too large"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Parse a size in bytes: `1048576`, `512KB`, `64MiB`, `1.5GB`. Decimal units
/// (`KB`, `MB`, `GB`, `TB`) are powers of 1000, binary ones (`KiB`, `MiB`, `GiB`,
/// `TiB`, and the short `K`, `M`, `G`, `T`) powers of 1024; case does not matter.
pub fn parse_size(s: &str) -> Result<u64, String> {
    const EXAMPLE: &str = "e.g. 1048576, 512KB, 64MiB or 1GB";
    let t = s.trim();
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_len);
    if num.is_empty() {
        return Err(format!(
            "invalid size \"{t}\": expected a number; {EXAMPLE}"
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid size \"{t}\": \"{num}\" is not a number; {EXAMPLE}"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "unknown unit \"{}\" in size \"{t}\"; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB ({EXAMPLE})",
                unit.trim()
            ));
        }
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("size \"{t}\" is too large"));
    }
    if bytes.fract() != 0.0 {
        return Err(format!("size \"{t}\" is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// Parse a rate in records per second: a number, or `<number>/s`, `/m`, `/h`
/// (`50000/s`, `100/m`). Must be positive.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    const EXAMPLE: &str = "e.g. 50000/s, 100/m or 2.5";
    let t = s.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, u)) => (n.trim(), u.trim()),
        None => (t, "s"),
    };
    let per_secs = match per {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit \"/{other}\" in rate \"{t}\"; use /s, /m or /h ({EXAMPLE})"
            ));
        }
    };
    let n: f64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("invalid rate \"{t}\": expected records per second, {EXAMPLE}"))?;
    check_rate(n / per_secs).map_err(|e| format!("invalid rate \"{t}\": {e}"))
}

pub(crate) fn check_rate(r: f64) -> Result<f64, String> {
    if !r.is_finite() || r <= 0.0 {
        return Err("the rate must be a positive number of records per second".to_string());
    }
    Ok(r)
}

/// The type names a schema accepts, for messages.
pub(crate) const FIELD_TYPE_NAMES: &[&str] = &[
    "utf8",
    "string",
    "int32",
    "int64",
    "float32",
    "float64",
    "bool",
    "boolean",
    "timestamp_ms",
    "timestamp(ms)",
    "timestamp_us",
    "timestamp(us)",
    "date32",
    "date",
];

/// Parse a schema type such as `int64` or `utf8?` (nullable). Returns the type and
/// whether it is nullable, or the unknown name.
pub(crate) fn parse_field_type(s: &str) -> Result<(FieldType, bool), String> {
    let t = s.trim();
    let (name, nullable) = match t.strip_suffix('?') {
        Some(n) => (n.trim_end(), true),
        None => (t, false),
    };
    let ty = match name.to_ascii_lowercase().as_str() {
        "utf8" | "string" | "str" => FieldType::Utf8,
        "int32" | "i32" => FieldType::Int32,
        "int64" | "i64" => FieldType::Int64,
        "float32" | "f32" => FieldType::Float32,
        "float64" | "f64" | "double" => FieldType::Float64,
        "bool" | "boolean" => FieldType::Boolean,
        "timestamp_ms" | "timestamp(ms)" => FieldType::TimestampMs,
        "timestamp_us" | "timestamp(us)" => FieldType::TimestampUs,
        "date32" | "date" => FieldType::Date32,
        _ => return Err(name.to_string()),
    };
    Ok((ty, nullable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2m30s"), Ok(Duration::from_secs(150)));
        assert_eq!(parse_duration("2m 30s"), Ok(Duration::from_secs(150)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        let e = parse_duration("5").unwrap_err();
        assert!(e.contains("no unit"), "{e}");
        let e = parse_duration("5x").unwrap_err();
        assert!(e.contains("unknown unit \"x\""), "{e}");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1..2s").is_err());
        assert!(
            parse_duration("99999999999999999999999h")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("512KB"), Ok(512_000));
        assert_eq!(parse_size("512 kib"), Ok(512 * 1024));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("1.3B").unwrap_err().contains("whole"));
        assert!(parse_size("12XB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("MB").is_err());
        assert!(parse_size("999999999TB").unwrap_err().contains("too large"));
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("50000/s"), Ok(50000.0));
        assert_eq!(parse_rate("120/m"), Ok(2.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert_eq!(parse_rate("50_000/s"), Ok(50000.0));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5/day").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn field_types() {
        assert_eq!(parse_field_type("utf8"), Ok((FieldType::Utf8, false)));
        assert_eq!(parse_field_type("utf8?"), Ok((FieldType::Utf8, true)));
        assert_eq!(
            parse_field_type("timestamp(ms)"),
            Ok((FieldType::TimestampMs, false))
        );
        assert_eq!(parse_field_type("Date?"), Ok((FieldType::Date32, true)));
        assert_eq!(parse_field_type("int"), Err("int".to_string()));
        for name in FIELD_TYPE_NAMES {
            assert!(parse_field_type(name).is_ok(), "{name}");
        }
    }
}
