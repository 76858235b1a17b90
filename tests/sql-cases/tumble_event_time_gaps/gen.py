# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

write('input.jsonl', bursts(seed=39, count=8, per_burst=250, gap=10_800_000, keys=list(range(4)), step=2000, jitter=1000))
