# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

import random
rng = random.Random(61)
rows = []
t = {k: T0 for k in range(8)}
events = []
for k in range(8):
    tk = T0
    for _ in range(150):
        tk += rng.choice([1_000, 5_000, 20_000, 29_000, 30_000, 31_000, 90_000, 600_000])
        events.append((tk, k))
events.sort()
for i, (ts, k) in enumerate(events):
    rows.append({'id': i, 'k': k, 'v': rng.randint(0, 99), 'ts': ts + rng.randint(-0, 0)})
write('input.jsonl', rows)
