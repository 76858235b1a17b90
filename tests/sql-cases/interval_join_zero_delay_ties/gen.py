# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

import random
rng = random.Random(103)
clicks, buys = [], []
for i in range(600):
    t = T0 + (i // 3) * 5000
    clicks.append({'id': i, 'u': i % 4, 'ts': t})
for i in range(600):
    t = T0 + (i // 3) * 5000
    buys.append({'id': i, 'u': rng.randint(0, 3), 'amount': float(i), 'ts': t})
write('clicks.jsonl', clicks)
write('buys.jsonl', buys)
