# Writes this case's input (seeded; run by scripts/bless_sql_cases.py).
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql-cases'))
from casegen import *  # noqa: E402,F401,F403

write('input.jsonl', stream(seed=15, n=2000, keys=list(range(12)), step=800, jitter=2000, values=[0.01, 19.99, 250.5, 1e6 + 0.25, 3.3333, 42.0], null_v=0.05))
