#!/usr/bin/env python3
"""Time the reference libraries on the data crates/shoal-score's score_bench uses.

Usage (from the repository root, after pip install -r scripts/requirements.txt):

    python3 scripts/bench_reference.py [SECONDS]

Data: models/parity/features.csv (600 rows) repeated to 65 536 rows, as a
C-contiguous float64 array. For each batch size the script calls, on
consecutive slices for SECONDS (default 1) after a short warm-up:

    XGBoost   booster.inplace_predict(x)          with nthread=1
    LightGBM  booster.predict(x, num_threads=1)

and prints rows per second. Batch size 1 mostly measures the Python call.
"""

from __future__ import annotations

import pathlib
import sys
import time

import lightgbm as lgb
import numpy as np
import xgboost as xgb

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
ROWS = 65_536
BATCH_SIZES = [1, 64, 1024, 8192]


def rate(secs: float, score) -> float:
    i = 0
    warm = time.perf_counter()
    while time.perf_counter() - warm < 0.2:
        score(i)
        i += 1
    start = time.perf_counter()
    rows = 0
    while True:
        for _ in range(4):
            rows += score(i)
            i += 1
        elapsed = time.perf_counter() - start
        if elapsed >= secs:
            return rows / elapsed


def human(r: float) -> str:
    return f"{r / 1e6:.2f} M" if r >= 1e6 else f"{r / 1e3:.0f} k"


def main() -> int:
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    base = np.genfromtxt(MODELS / "parity" / "features.csv", delimiter=",", skip_header=1)
    data = np.ascontiguousarray(np.resize(base, (ROWS, base.shape[1])))

    xgb_model = xgb.Booster(model_file=str(MODELS / "fraud.xgb.json"))
    xgb_model.set_param({"nthread": 1})
    lgb_model = lgb.Booster(model_file=str(MODELS / "fraud.lgbm.txt"))

    print(f"xgboost {xgb.__version__}, lightgbm {lgb.__version__}, numpy {np.__version__}")
    print("| model | library call | batch | rows/s |")
    print("|---|---|---:|---:|")
    for name, call, score in [
        ("fraud.xgb.json", "inplace_predict, nthread=1", lambda x: xgb_model.inplace_predict(x)),
        ("fraud.lgbm.txt", "predict, num_threads=1", lambda x: lgb_model.predict(x, num_threads=1)),
    ]:
        for batch in BATCH_SIZES:
            slices = [data[b * batch : (b + 1) * batch] for b in range(ROWS // batch)]

            def one(i, slices=slices, batch=batch, score=score):
                score(slices[i % len(slices)])
                return batch

            print(f"| {name} | {call} | {batch} | {human(rate(secs, one))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
