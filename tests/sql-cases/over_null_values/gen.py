# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

rows = stream(seed=13, n=1500, keys=list(range(5)), step=1000, jitter=1500, null_v=0.3)
for r in rows:
    if r['k'] == 4:
        r['v'] = None
write('input.jsonl', rows)
