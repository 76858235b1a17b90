# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

import random
rng = random.Random(64)
rows = []
t = T0
for i in range(1200):
    t += rng.choice([500, 3_000, 20_000, 61_000, 120_000])
    rows.append({'id': i, 'k': rng.choice([None, '', 'a', 'b']), 'v': rng.randint(0, 99), 'ts': t})
write('input.jsonl', rows)
