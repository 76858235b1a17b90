# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

import random
rng = random.Random(107)
clicks, buys = [], []
for i in range(1500):
    t = T0 + i * 2000
    u = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    clicks.append({'id': i, 'u': u, 'ts': t + rng.randint(-1000, 1000)})
    for j in range(rng.choice([0, 1, 1, 2])):
        d = rng.choice([0, 1, 3_000, 9_999, 10_000, 10_001, 25_000, -1])
        buys.append({'id': len(buys), 'u': rng.choice([u, u, u, rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])]), 'amount': round(rng.uniform(1, 500), 2), 'ts': t + d})
buys.sort(key=lambda b: (b['ts'] + rng.randint(-1000, 1000), b['id']))
for i, b in enumerate(buys):
    b['id'] = i
write('clicks.jsonl', clicks)
write('buys.jsonl', buys)
