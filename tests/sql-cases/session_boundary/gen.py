# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

rows = []
t = T0
for i in range(300):
    t += [10_000, 9_999, 10_001, 10_000, 1, 0][i % 6]
    rows.append({'id': i, 'k': i % 2, 'v': i, 'ts': t})
write('input.jsonl', rows)
