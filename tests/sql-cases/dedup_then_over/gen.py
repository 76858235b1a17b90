# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

import random
rng = random.Random(92)
events = []
for k in range(25):
    start = T0 + rng.randint(0, 60_000)
    for _ in range(40):
        for _ in range(rng.choice([1, 1, 2, 3, 5])):
            events.append((start + rng.randint(0, 40_000), k))
        start += rng.randint(180_000, 900_000)
events.sort(key=lambda e: e[0] + rng.randint(-3000, 3000))
write('input.jsonl', [{'id': i, 'k': k, 'v': rng.randint(0, 99), 'ts': ts} for i, (ts, k) in enumerate(events)])
