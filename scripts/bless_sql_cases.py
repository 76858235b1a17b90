#!/usr/bin/env python3
"""Bless the streaming-SQL oracle cases in tests/sql-cases/: run DuckDB's
batch query of each case over the case's input and (re)write its
expected.jsonl, which `tests/tests/sql_cases.rs` compares Shoal's output to.

    pip install duckdb pyyaml
    python3 scripts/bless_sql_cases.py                 # every case
    python3 scripts/bless_sql_cases.py tumble_basic    # some cases
    python3 scripts/bless_sql_cases.py --check         # compare only, write nothing
    python3 scripts/bless_sql_cases.py --dir tests/sql-cases-failing

A case folder holds:
  pipeline.yaml      the streaming pipeline (file sources, sql transforms,
                     a file sink to out/rows, dead letters to out/dead)
  input*.jsonl       the inputs its file sources read (committed)
  gen.py             optional: a seeded generator that (re)writes the inputs;
                     run first, so an edited generator is re-blessed too
  query.duckdb.sql   the equivalent batch query; each file source of the
                     pipeline is a DuckDB table of the same name, with the
                     declared schema (timestamp_ms columns as BIGINT ms)
  expected.jsonl     written here: DuckDB's rows, one JSON object a line,
                     sorted canonically

Before querying, each input is checked against the source's lateness rule
(a row is late if its time is before max(time seen before it) - max_delay,
the strictest batching), so that DuckDB's batch answer is the streaming one.
"""

import argparse
import datetime
import decimal
import json
import math
import os
import re
import subprocess
import sys

import duckdb
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TYPES = {
    "utf8": "VARCHAR",
    "string": "VARCHAR",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp_ms": "BIGINT",  # ms since the epoch, as in the JSON input
    "date32": "DATE",
}

UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text):
    m = re.fullmatch(r"(\d+)\s*(ms|s|m|h|d)", str(text).strip())
    if not m:
        raise SystemExit(f"cannot read duration {text!r}")
    return int(m.group(1)) * UNITS[m.group(2)]


def jsonable(v):
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise SystemExit(f"non-finite float {v} in DuckDB output")
        return v
    if isinstance(v, (datetime.datetime, datetime.date)):
        raise SystemExit(f"DuckDB returned a {type(v).__name__}: cast timestamps to BIGINT ms")
    return v


def check_lateness(name, path, column, max_delay):
    seen = None
    late = []
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            ts = json.loads(line).get(column)
            if ts is None:
                continue
            if seen is not None and ts < seen - max_delay:
                late.append((line_no, ts, seen))
            seen = ts if seen is None else max(seen, ts)
    if late:
        raise SystemExit(
            f"{name}: {path}: {len(late)} rows may be late (line, ts, max before): {late[:3]}"
        )


def bless(case_dir, check):
    name = os.path.basename(case_dir)
    gen = os.path.join(case_dir, "gen.py")
    if os.path.exists(gen) and not check:
        subprocess.run(
            [sys.executable, "gen.py"],
            cwd=case_dir,
            check=True,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        )
    with open(os.path.join(case_dir, "pipeline.yaml")) as f:
        spec = yaml.safe_load(f)
    con = duckdb.connect()
    for src_id, src in spec["sources"].items():
        if src.get("type") != "file":
            raise SystemExit(f"{name}: source {src_id} is not a file source")
        schema = src["schema"]
        cols = ", ".join(
            f"'{c}': '{TYPES[t.rstrip('?')]}'" for c, t in schema.items()
        )
        path = os.path.join(case_dir, src["path"])
        et = src.get("event_time")
        if et:
            check_lateness(name, path, et["column"], duration_ms(et.get("max_delay", "0s")))
        con.execute(
            f"CREATE TABLE \"{src_id}\" AS SELECT * FROM read_json('{path}', "
            f"format = 'newline_delimited', columns = {{{cols}}})"
        )
    with open(os.path.join(case_dir, "query.duckdb.sql")) as f:
        query = f.read()
    rel = con.execute(query)
    names = [d[0] for d in rel.description]
    rows = [
        json.dumps({n: jsonable(v) for n, v in zip(names, r)}, separators=(",", ":"))
        for r in rel.fetchall()
    ]
    rows.sort()
    text = "".join(r + "\n" for r in rows)
    out = os.path.join(case_dir, "expected.jsonl")
    old = open(out).read() if os.path.exists(out) else None
    if check:
        status = "ok" if old == text else "DIFFERS"
    else:
        if old != text:
            with open(out, "w") as f:
                f.write(text)
        status = "unchanged" if old == text else "written"
    print(f"{name}: {len(rows)} rows, {status}")
    return old == text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--dir", default=os.path.join(ROOT, "tests", "sql-cases"))
    ap.add_argument("--check", action="store_true", help="compare, write nothing")
    args = ap.parse_args()
    names = args.cases or sorted(
        d
        for d in os.listdir(args.dir)
        if os.path.exists(os.path.join(args.dir, d, "pipeline.yaml"))
    )
    same = [bless(os.path.join(args.dir, n), args.check) for n in names]
    if args.check and not all(same):
        sys.exit(1)


if __name__ == "__main__":
    main()
