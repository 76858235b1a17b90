"""Seeded input generators shared by the cases' gen.py scripts.

A case's gen.py (run by scripts/bless_sql_cases.py from the case folder)
writes its committed input files; the Rust test reads only the committed
files. Event times are ms since the epoch from T0, which is aligned to a
day (so minute, hour and day windows start on multiples of T0's offsets).
"""

import json
import random

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z, a multiple of 86 400 000
BIG = 2**53  # 9 007 199 254 740 992: the first int64 an f64 cannot tell apart


def write(path, rows):
    """Write `rows` (dicts) as JSON lines, keys in insertion order."""
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


def pick(rng, weighted):
    """One value of `weighted`: a list of values, or of (value, weight) pairs."""
    if weighted and isinstance(weighted[0], tuple):
        vals, weights = zip(*weighted)
        return rng.choices(vals, weights)[0]
    return rng.choice(weighted)


def stream(seed, n, keys, step, jitter=0, t0=T0, values=(0, 999), null_v=0.0,
           quantum=1, extra=None):
    """`n` rows `{id, k, v, ts}` in id order: row i has event time about
    t0 + i*step, moved by up to ±jitter ms (so out of order), rounded down
    to a multiple of `quantum` (ties); key drawn from `keys` (a list; None
    is a NULL key); v from `values` (an inclusive range (lo, hi) or a list),
    NULL with probability null_v. `extra(rng, i)` may add fields."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        ts = t0 + i * step + (rng.randint(-jitter, jitter) if jitter else 0)
        ts -= (ts - t0) % quantum
        k = pick(rng, keys)
        if isinstance(values, tuple):
            v = rng.randint(values[0], values[1])
        else:
            v = pick(rng, values)
        if rng.random() < null_v:
            v = None
        row = {"id": i, "k": k, "v": v, "ts": ts}
        if extra:
            row.update(extra(rng, i))
        rows.append(row)
    return rows


def bursts(seed, count, per_burst, gap, keys, step=1000, jitter=0, values=(0, 999)):
    """`count` bursts of `per_burst` rows each (`step` apart, ±jitter),
    separated by `gap` ms of silence."""
    rows = []
    for b in range(count):
        part = stream(seed * 1000 + b, per_burst, keys, step, jitter,
                      t0=T0 + b * (per_burst * step + gap), values=values)
        rows.extend(part)
    for i, r in enumerate(rows):
        r["id"] = i
    return rows
