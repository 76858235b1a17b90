# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

rows = []
import random
rng = random.Random(52)
for j in range(200):
    for off in (0, 15_000, 29_999):
        rows.append({'id': len(rows), 'k': rng.choice([1, 2]), 'v': rng.randint(0, 99), 'ts': T0 + j * 30_000 + off})
write('input.jsonl', rows)
