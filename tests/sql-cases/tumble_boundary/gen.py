# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

rows = []
import random
rng = random.Random(33)
for m in range(120):
    for off in (0, 1, 30_000, 59_999):
        rows.append({'id': len(rows), 'k': rng.choice([1, 2, 3]), 'v': rng.randint(0, 99), 'ts': T0 + m * 60_000 + off})
write('input.jsonl', rows)
