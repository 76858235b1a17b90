//! A check of one JSON record before Arrow decodes it: the record's size,
//! its nesting depth, that it is exactly one object, and (strict typing)
//! that every declared top-level field holds a value of its type without
//! conversion.
//!
//! Arrow's JSON decoder converts leniently (`1.9` -> 1 for an integer,
//! `"123"` -> 123, out-of-range integers clamped, `1e400` -> infinity) and
//! recurses on deeply nested values when it describes a type mismatch, so a
//! value nested 30 000 levels deep overflows the stack. This check runs
//! first, in one pass over the bytes without allocating, with an explicit
//! depth counter (no recursion); a record it refuses becomes a dead letter
//! with the reason and never reaches Arrow.
//!
//! Fields listed in `coerce:` skip the type check (Arrow's lenient
//! conversions apply); size, depth and shape checks always apply.

use arrow::datatypes::{DataType, Schema};
use shoal_dsl::{Coerce, DecodeSpec};

/// What a declared field accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Str,
    Int {
        min: i64,
        max: i64,
    },
    Float {
        max: f64,
    },
    Bool,
    /// Timestamps and dates: an integer in range, or a string Arrow parses.
    IntOrStr {
        min: i64,
        max: i64,
    },
    /// Lenient (`coerce:`) or a type without a strict rule: any scalar.
    Any,
}

impl Expect {
    fn name(&self, dt: &DataType) -> String {
        match self {
            Expect::Any => "a value".into(),
            _ => dt.to_string().to_ascii_lowercase(),
        }
    }
}

/// Checks records against one schema and one [`DecodeSpec`].
#[derive(Debug, Clone)]
pub struct JsonCheck {
    fields: Vec<(String, DataType, Expect)>,
    max_bytes: usize,
    max_depth: usize,
}

impl JsonCheck {
    /// A check of records decoded into `schema` with the limits of `spec`.
    pub fn new(schema: &Schema, spec: &DecodeSpec) -> Self {
        let fields = schema
            .fields()
            .iter()
            .map(|f| {
                let lenient = spec.coerce.applies(f.name());
                let e = if lenient {
                    Expect::Any
                } else {
                    expect_for(f.data_type())
                };
                (f.name().clone(), f.data_type().clone(), e)
            })
            .collect();
        Self {
            fields,
            max_bytes: spec.max_record_bytes,
            max_depth: spec.max_depth,
        }
    }

    /// A check with the default limits and strict typing.
    pub fn strict(schema: &Schema) -> Self {
        Self::new(schema, &DecodeSpec::default())
    }

    /// The largest record accepted, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// `Ok` if `rec` may go to Arrow, else why not.
    pub fn check(&self, rec: &[u8]) -> Result<(), String> {
        if rec.len() > self.max_bytes {
            return Err(format!(
                "record is {} bytes, over max_record_bytes ({})",
                rec.len(),
                self.max_bytes
            ));
        }
        let mut s = Scanner {
            b: rec,
            i: 0,
            max_depth: self.max_depth,
        };
        s.ws();
        if s.peek() != Some(b'{') {
            return Err(match s.peek() {
                None => "empty record".into(),
                Some(_) => format!("expected a JSON object, found {}", s.kind_here()),
            });
        }
        s.i += 1;
        s.ws();
        if s.peek() == Some(b'}') {
            s.i += 1;
        } else {
            loop {
                s.ws();
                if s.peek() != Some(b'"') {
                    return Err(s.syntax("expected a field name"));
                }
                let (ks, ke, escaped) = s.string()?;
                s.ws();
                if s.peek() != Some(b':') {
                    return Err(s.syntax("expected `:`"));
                }
                s.i += 1;
                s.ws();
                let field = self.field(&rec[ks..ke], escaped);
                match field {
                    Some((name, dt, e)) => s.declared(name, dt, *e)?,
                    None => s.skip_value(1)?,
                }
                s.ws();
                match s.peek() {
                    Some(b',') => s.i += 1,
                    Some(b'}') => {
                        s.i += 1;
                        break;
                    }
                    None => return Err("incomplete JSON object (record ends early)".into()),
                    _ => return Err(s.syntax("expected `,` or `}`")),
                }
            }
        }
        s.ws();
        if s.i < rec.len() {
            return Err(format!(
                "unexpected data after the JSON object at byte {} (two records on one line?)",
                s.i
            ));
        }
        Ok(())
    }

    fn field(&self, key: &[u8], escaped: bool) -> Option<&(String, DataType, Expect)> {
        if escaped {
            let mut quoted = Vec::with_capacity(key.len() + 2);
            quoted.push(b'"');
            quoted.extend_from_slice(key);
            quoted.push(b'"');
            let k: String = serde_json::from_slice(&quoted).ok()?;
            return self.fields.iter().find(|f| f.0 == k);
        }
        self.fields.iter().find(|f| f.0.as_bytes() == key)
    }
}

fn expect_for(dt: &DataType) -> Expect {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 => Expect::Str,
        DataType::Int8 => Expect::Int {
            min: i8::MIN as i64,
            max: i8::MAX as i64,
        },
        DataType::Int16 => Expect::Int {
            min: i16::MIN as i64,
            max: i16::MAX as i64,
        },
        DataType::Int32 => Expect::Int {
            min: i32::MIN as i64,
            max: i32::MAX as i64,
        },
        DataType::Int64 => Expect::Int {
            min: i64::MIN,
            max: i64::MAX,
        },
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => Expect::Int {
            min: 0,
            max: match dt {
                DataType::UInt8 => u8::MAX as i64,
                DataType::UInt16 => u16::MAX as i64,
                _ => u32::MAX as i64,
            },
        },
        DataType::Float32 => Expect::Float {
            max: f32::MAX as f64,
        },
        DataType::Float64 => Expect::Float { max: f64::MAX },
        DataType::Boolean => Expect::Bool,
        DataType::Timestamp(_, _) | DataType::Date64 => Expect::IntOrStr {
            min: i64::MIN,
            max: i64::MAX,
        },
        DataType::Date32 => Expect::IntOrStr {
            min: i32::MIN as i64,
            max: i32::MAX as i64,
        },
        _ => Expect::Any,
    }
}

/// Lenient typing for every field, as `coerce: true`.
pub fn lenient() -> DecodeSpec {
    DecodeSpec {
        coerce: Coerce::All,
        ..DecodeSpec::default()
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    max_depth: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.i += 1;
        }
    }

    fn syntax(&self, what: &str) -> String {
        match self.peek() {
            None => format!("incomplete JSON: {what}, but the record ends"),
            Some(_) => format!("invalid JSON at byte {}: {what}", self.i),
        }
    }

    fn kind_here(&self) -> &'static str {
        match self.peek() {
            Some(b'{') => "an object",
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => "a number",
            _ => "invalid JSON",
        }
    }

    /// A string at `i` (at its `"`): its contents' range and whether it has escapes.
    fn string(&mut self) -> Result<(usize, usize, bool), String> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            match self.peek() {
                None => return Err("incomplete JSON: unterminated string".into()),
                Some(b'"') => {
                    let end = self.i;
                    self.i += 1;
                    return Ok((start, end, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.b.get(self.i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                        Some(b'u')
                            if self
                                .b
                                .get(self.i + 2..self.i + 6)
                                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                        {
                            self.i += 6
                        }
                        None => return Err("incomplete JSON: unterminated string".into()),
                        Some(_) => {
                            self.i += 1;
                            return Err(self.syntax("invalid escape in a string"));
                        }
                    }
                }
                Some(c) if c < 0x20 => {
                    return Err(self.syntax("control character in a string"));
                }
                Some(_) => self.i += 1,
            }
        }
    }

    /// A number at `i`: its text, checked against JSON's grammar.
    fn number(&mut self) -> Result<(&str, bool), String> {
        let start = self.i;
        let mut integral = true;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |s: &mut Self| {
            let d = s.i;
            while let Some(b'0'..=b'9') = s.peek() {
                s.i += 1;
            }
            s.i > d
        };
        let int_start = self.i;
        if !digits(self) {
            return Err(self.syntax("expected a digit"));
        }
        if self.b[int_start] == b'0' && self.i - int_start > 1 {
            self.i = int_start + 1;
            return Err(self.syntax("a number has a leading zero"));
        }
        if self.peek() == Some(b'.') {
            integral = false;
            self.i += 1;
            if !digits(self) {
                return Err(self.syntax("expected a digit after `.`"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            integral = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !digits(self) {
                return Err(self.syntax("expected a digit in the exponent"));
            }
        }
        // ASCII by construction.
        let text = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("");
        Ok((text, integral))
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.syntax("invalid literal"))
        }
    }

    /// Skip one value of any kind; `depth` is the nesting level it sits at.
    /// Iterative: a stack of open brackets is only counted, since an array
    /// and an object close with different bytes that are checked as met.
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        // Open containers, innermost last: true = object.
        let mut open: u64 = 0; // bit stack for the first 64 levels
        let mut level: usize = 0;
        let mut overflow_kinds: Vec<bool> = Vec::new();
        let push = |open: &mut u64, overflow: &mut Vec<bool>, level: usize, obj: bool| {
            if level < 64 {
                if obj {
                    *open |= 1 << level;
                } else {
                    *open &= !(1 << level);
                }
            } else {
                overflow.push(obj);
            }
        };
        let top_is_obj = |open: u64, overflow: &Vec<bool>, level: usize| -> bool {
            let l = level - 1;
            if l < 64 {
                open & (1 << l) != 0
            } else {
                overflow[l - 64]
            }
        };
        loop {
            // A value.
            self.ws();
            match self.peek() {
                Some(b'{') | Some(b'[') => {
                    let obj = self.peek() == Some(b'{');
                    if depth + level + 1 > self.max_depth {
                        return Err(format!(
                            "JSON nested deeper than max_depth ({}) at byte {}",
                            self.max_depth, self.i
                        ));
                    }
                    self.i += 1;
                    push(&mut open, &mut overflow_kinds, level, obj);
                    level += 1;
                    self.ws();
                    let close = if obj { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        level -= 1;
                        if level >= 64 {
                            overflow_kinds.pop();
                        }
                    } else {
                        if obj {
                            self.key()?;
                        }
                        continue;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                _ => return Err(self.syntax("expected a value")),
            }
            // After a value: close containers or go to the next element.
            loop {
                if level == 0 {
                    return Ok(());
                }
                self.ws();
                let obj = top_is_obj(open, &overflow_kinds, level);
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if obj {
                            self.ws();
                            self.key()?;
                        }
                        break;
                    }
                    Some(b'}') if obj => {}
                    Some(b']') if !obj => {}
                    _ => {
                        return Err(self.syntax(if obj {
                            "expected `,` or `}`"
                        } else {
                            "expected `,` or `]`"
                        }));
                    }
                }
                self.i += 1;
                level -= 1;
                if level >= 64 {
                    overflow_kinds.pop();
                }
            }
        }
    }

    /// `"key":` inside an object.
    fn key(&mut self) -> Result<(), String> {
        self.ws();
        if self.peek() != Some(b'"') {
            return Err(self.syntax("expected a field name"));
        }
        self.string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.syntax("expected `:`"));
        }
        self.i += 1;
        Ok(())
    }

    /// The value of a declared field: its kind and, unless lenient, its range.
    fn declared(&mut self, name: &str, dt: &DataType, e: Expect) -> Result<(), String> {
        let found = self.kind_here();
        let start = self.i;
        // The message quotes the start of the value (skipped to its end,
        // within the depth bound).
        let mismatch = |s: &mut Self| {
            let _ = s.skip_value(1);
            let end = s.i.max(start + 1).min(s.b.len());
            let text = String::from_utf8_lossy(&s.b[start..end]);
            format!(
                "field `{name}`: expected {}, found {found} ({})",
                e.name(dt),
                clip(&text)
            )
        };
        match self.peek() {
            Some(b'n') => return self.literal(b"null"),
            Some(b'{' | b'[') => {
                if e != Expect::Any {
                    return Err(mismatch(self));
                }
                return self.skip_value(1);
            }
            _ => {}
        }
        match e {
            Expect::Any => self.skip_value(1),
            Expect::Str => {
                if self.peek() != Some(b'"') {
                    return Err(mismatch(self));
                }
                self.string().map(|_| ())
            }
            Expect::Bool => match self.peek() {
                Some(b't') => self.literal(b"true"),
                Some(b'f') => self.literal(b"false"),
                _ => Err(mismatch(self)),
            },
            Expect::Int { min, max } | Expect::IntOrStr { min, max } => {
                if self.peek() == Some(b'"') {
                    if matches!(e, Expect::IntOrStr { .. }) {
                        return self.string().map(|_| ());
                    }
                    return Err(mismatch(self));
                }
                if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
                    return Err(mismatch(self));
                }
                let (text, integral) = self.number()?;
                if !integral {
                    return Err(format!(
                        "field `{name}`: {} is not an integer ({} expected; use `coerce:` to truncate)",
                        clip(text),
                        e.name(dt)
                    ));
                }
                match text.parse::<i64>() {
                    Ok(v) if v >= min && v <= max => Ok(()),
                    _ => Err(format!(
                        "field `{name}`: {} is out of range for {}",
                        clip(text),
                        e.name(dt)
                    )),
                }
            }
            Expect::Float { max } => {
                if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
                    return Err(mismatch(self));
                }
                let (text, _) = self.number()?;
                match text.parse::<f64>() {
                    Ok(v) if v.is_finite() && v.abs() <= max => Ok(()),
                    _ => Err(format!(
                        "field `{name}`: {} is out of range for {}",
                        clip(text),
                        e.name(dt)
                    )),
                }
            }
        }
    }
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, TimeUnit};

    fn check() -> JsonCheck {
        JsonCheck::strict(&Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("small", DataType::Int32, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("f32", DataType::Float32, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    #[test]
    fn accepts_exact_values() {
        let c = check();
        for rec in [
            r#"{"id": 1}"#,
            r#"{"id": -9223372036854775808, "small": 2147483647}"#,
            r#"{"id": 1, "amount": 1.5e300, "f32": -3.0e38, "s": "a\"b", "ok": true}"#,
            r#"{"id": 1, "ts": "2024-01-01T00:00:00Z", "other": [1, {"a": [null]}]}"#,
            r#"{"id": 1, "ts": 1700000000000, "s": null}  "#,
            r#"{}"#,
            r#"{"i\u0064": 7}"#,
        ] {
            assert_eq!(c.check(rec.as_bytes()), Ok(()), "{rec}");
        }
    }

    #[test]
    fn refuses_lossy_values() {
        let c = check();
        let cases = [
            (r#"{"id": 1.9}"#, "field `id`: 1.9 is not an integer"),
            (
                r#"{"id": "123"}"#,
                "field `id`: expected int64, found a string",
            ),
            (
                r#"{"id": -9223372036854775809}"#,
                "field `id`: -9223372036854775809 is out of range for int64",
            ),
            (r#"{"small": 2147483648}"#, "out of range for int32"),
            (
                r#"{"amount": 1e400}"#,
                "field `amount`: 1e400 is out of range for float64",
            ),
            (r#"{"f32": 1e39}"#, "out of range for float32"),
            (r#"{"s": 5}"#, "field `s`: expected utf8, found a number"),
            (r#"{"ok": "yes"}"#, "expected boolean, found a string"),
            (r#"{"ts": 1.5}"#, "not an integer"),
            (r#"{"i\u0064": 7.5}"#, "field `id`: 7.5 is not an integer"),
        ];
        for (rec, want) in cases {
            let e = c.check(rec.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{rec}: {e}");
        }
    }

    #[test]
    fn refuses_bad_shapes() {
        let c = check();
        let cases = [
            (
                r#"{"id": 1}{"id": 2}"#,
                "unexpected data after the JSON object",
            ),
            (r#"{"id": 1,"#, "incomplete JSON"),
            (r#""amount": 2}"#, "expected a JSON object, found a string"),
            (r#"[1]"#, "expected a JSON object, found an array"),
            (r#"{"x": [1, 2}"#, "expected `,` or `]`"),
            (r#"{"x": tru}"#, "invalid literal"),
            (r#"{"x": 01}"#, "leading zero"),
        ];
        for (rec, want) in cases {
            let e = c.check(rec.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{rec}: {e}");
        }
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let c = check();
        let deep = |n: usize| format!("{{\"s\": {}1{}}}", "[".repeat(n), "]".repeat(n));
        let undeclared = |n: usize| format!("{{\"x\": {}1{}}}", "[".repeat(n), "]".repeat(n));
        // Depth counts the top-level object: 63 arrays inside it = 64 levels.
        assert_eq!(c.check(undeclared(63).as_bytes()), Ok(()));
        let e = c.check(undeclared(64).as_bytes()).unwrap_err();
        assert!(e.contains("nested deeper than max_depth (64)"), "{e}");
        let e = c.check(undeclared(30_000).as_bytes()).unwrap_err();
        assert!(e.contains("max_depth"), "{e}");
        let e = c.check(deep(30_000).as_bytes()).unwrap_err();
        assert!(
            e.contains("field `s`: expected utf8, found an array"),
            "{e}"
        );
        let big = format!("{{\"s\": \"{}\"}}", "a".repeat(1 << 20));
        let e = c.check(big.as_bytes()).unwrap_err();
        assert!(e.contains("over max_record_bytes (1048576)"), "{e}");
        // Mixed object/array nesting past 64 levels closes correctly.
        let mixed = format!("{{\"x\": {}1{}}}", "{\"a\":[".repeat(40), "]}".repeat(40));
        let roomy = JsonCheck::new(
            &Schema::empty(),
            &DecodeSpec {
                max_depth: 1000,
                ..DecodeSpec::default()
            },
        );
        assert_eq!(roomy.check(mixed.as_bytes()), Ok(()));
        let wrong = format!("{{\"x\": {}1{}}}", "{\"a\":[".repeat(40), "}]".repeat(40));
        assert!(roomy.check(wrong.as_bytes()).is_err());
    }

    /// Fuzz-style: mutated records never panic, and with nothing declared
    /// the check accepts exactly what serde_json parses as one object within
    /// the depth bound (serde_json's own recursion limit is 128 > 64).
    #[test]
    fn agrees_with_serde_json_on_mutated_records() {
        let seeds: [&[u8]; 5] = [
            br#"{"a": [1, 2.5, -3e2, {"b": null}], "c": "x\"y", "d": true}"#,
            br#"{"id": 1, "amount": 0.5, "s": "\u00e9"}"#,
            br#"{}"#,
            br#"{"n": [[[[[[]]]]]], "o": {"p": {"q": false}}}"#,
            br#"{"k": "v", "l": -0, "m": 1E+2}"#,
        ];
        let alphabet = b"{}[]\":,.-+eE0123456789 tfnaulrs\\";
        let check = JsonCheck::strict(&Schema::empty());
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut agreed = 0;
        for round in 0..200_000 {
            let mut rec = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % (rec.len() + 1);
                let c = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 if at < rec.len() => rec[at] = c,
                    1 if at < rec.len() => {
                        rec.remove(at);
                    }
                    _ => rec.insert(at, c),
                }
            }
            let ours = check.check(&rec).is_ok();
            let theirs = match serde_json::from_slice::<serde_json::Value>(&rec) {
                Ok(v) => v.is_object(),
                // serde_json refuses numbers beyond f64 in any field; only
                // declared fields are range-checked here.
                Err(e) if e.to_string().contains("number out of range") => continue,
                Err(_) => false,
            };
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(&rec));
            agreed += 1;
        }
        assert!(agreed > 190_000, "{agreed}");
    }

    #[test]
    fn coerce_skips_the_type_check_for_listed_fields() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]);
        let spec = DecodeSpec {
            coerce: Coerce::Fields(vec!["a".into()]),
            ..DecodeSpec::default()
        };
        let c = JsonCheck::new(&schema, &spec);
        assert_eq!(c.check(br#"{"a": "12", "b": 3}"#), Ok(()));
        assert!(c.check(br#"{"a": 1.5, "b": 3.5}"#).is_err());
        let all = JsonCheck::new(&schema, &lenient());
        assert_eq!(all.check(br#"{"a": 1.5, "b": "3"}"#), Ok(()));
    }
}
