#!/usr/bin/env python3
"""Time the reference libraries on the data Shoal's score-bench uses (benches/score/).

Usage (from the repository root, after pip install -r scripts/requirements.txt):

    python3 scripts/bench_reference.py [SECONDS]

Data: models/parity/features.csv (600 rows) repeated to 65 536 rows, as a
C-contiguous float64 array. For each batch size the script calls, on
consecutive slices for SECONDS (default 1) after a short warm-up:

    XGBoost      booster.inplace_predict(x)          with nthread=1
    LightGBM     booster.predict(x, num_threads=1)
    onnxruntime  session.run(None, {input: x32})     one intra/inter-op thread,
                 on models/fraud.onnx (x as float32, converted once up front)
                 and models/risk.onnx (a small MLP, float64 input)

and prints rows per second of wall time and per CPU-second of the process
(time.process_time), i.e. per core for these one-thread calls. Batch size 1
mostly measures the Python call.
"""

from __future__ import annotations

import pathlib
import sys
import time

import lightgbm as lgb
import numpy as np
import onnxruntime as ort
import xgboost as xgb

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
ROWS = 65_536
BATCH_SIZES = [1, 64, 1024, 8192]


def rate(secs: float, score) -> tuple[float, float]:
    """(rows per wall-second, rows per CPU-second)."""
    i = 0
    warm = time.perf_counter()
    while time.perf_counter() - warm < 0.2:
        score(i)
        i += 1
    start = time.perf_counter()
    cpu = time.process_time()
    rows = 0
    while True:
        for _ in range(4):
            rows += score(i)
            i += 1
        elapsed = time.perf_counter() - start
        if elapsed >= secs:
            used = time.process_time() - cpu
            return rows / elapsed, (rows / used if used > 0 else float("nan"))


def human(r: float) -> str:
    return f"{r / 1e6:.2f} M" if r >= 1e6 else f"{r / 1e3:.0f} k"


def main() -> int:
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    base = np.genfromtxt(MODELS / "parity" / "features.csv", delimiter=",", skip_header=1)
    data = np.ascontiguousarray(np.resize(base, (ROWS, base.shape[1])))

    xgb_model = xgb.Booster(model_file=str(MODELS / "fraud.xgb.json"))
    xgb_model.set_param({"nthread": 1})
    lgb_model = lgb.Booster(model_file=str(MODELS / "fraud.lgbm.txt"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    onnx_model = ort.InferenceSession(
        str(MODELS / "fraud.onnx"), options, providers=["CPUExecutionProvider"]
    )
    onnx_input = onnx_model.get_inputs()[0].name
    risk_model = ort.InferenceSession(
        str(MODELS / "risk.onnx"), options, providers=["CPUExecutionProvider"]
    )
    risk_input = risk_model.get_inputs()[0].name
    data32 = data.astype(np.float32)

    print(
        f"xgboost {xgb.__version__}, lightgbm {lgb.__version__}, "
        f"onnxruntime {ort.__version__}, numpy {np.__version__}"
    )
    print("| model | library call | batch | rows/s (wall) | rows/s per core (CPU time) |")
    print("|---|---|---:|---:|---:|")
    for name, call, source, score in [
        ("fraud.xgb.json", "xgboost inplace_predict, nthread=1", data,
         lambda x: xgb_model.inplace_predict(x)),
        ("fraud.lgbm.txt", "lightgbm predict, num_threads=1", data,
         lambda x: lgb_model.predict(x, num_threads=1)),
        ("fraud.onnx", "onnxruntime run, 1 thread", data32,
         lambda x: onnx_model.run(None, {onnx_input: x})),
        ("risk.onnx", "onnxruntime run, 1 thread", data,
         lambda x: risk_model.run(None, {risk_input: x})),
    ]:
        for batch in BATCH_SIZES:
            slices = [source[b * batch : (b + 1) * batch] for b in range(ROWS // batch)]

            def one(i, slices=slices, batch=batch, score=score):
                score(slices[i % len(slices)])
                return batch

            wall, cpu = rate(secs, one)
            print(f"| {name} | {call} | {batch} | {human(wall)} | {human(cpu)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
