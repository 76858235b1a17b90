# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

rows = stream(seed=36, n=1500, keys=list(range(4)), step=500, jitter=1000, null_v=0.4)
for r in rows:
    if r['k'] == 3:
        r['v'] = None
write('input.jsonl', rows)
