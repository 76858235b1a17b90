#!/usr/bin/env python3
"""Train models/fraud-job.xgb.json, the model of pipelines/fraud-detection.yaml.

The model is trained on the features that pipeline itself computes, so what
it learns is exactly what it is given when it runs:

1. Take pipelines/fraud-detection.yaml, swap its generator seed (42) for a
   training seed (7) and more records, drop the `score` and `filter` steps,
   and send every row of `country_features` (features + the generator's
   `is_fraud` label) to a file sink.
2. Run it with `shoal run` (pass --shoal, or have `shoal` on PATH).
3. Fit XGBoost (binary:logistic, one thread, fixed seed) on those rows and
   write the model as JSON.

The pipeline is then evaluated on seed 42, which the model never saw
(tests/tests/fraud_detection.rs checks its precision and recall).

Usage (from the repository root):

    pip install -r scripts/requirements.txt
    python3 scripts/train_fraud_job.py --shoal target/debug/shoal
"""

from __future__ import annotations

import argparse
import glob
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import xgboost as xgb
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "fraud-detection.yaml"
MODEL = ROOT / "models" / "fraud-job.xgb.json"
TRAIN_SEED = 7
TRAIN_COUNT = 400_000
THRESHOLD = 0.5


def training_pipeline(work: pathlib.Path) -> tuple[pathlib.Path, list[str]]:
    spec = yaml.safe_load(PIPELINE.read_text())
    features = spec["transforms"]["scored"]["features"]
    feature_step = spec["transforms"]["scored"]["inputs"][0]
    spec["name"] = "fraud-training"
    spec.pop("checkpoint", None)
    spec["sources"]["seed_txns"]["seed"] = TRAIN_SEED
    spec["sources"]["seed_txns"]["count"] = TRAIN_COUNT
    spec["sources"]["txns"]["group"] = "fraud-training"
    del spec["transforms"]["scored"]
    del spec["transforms"]["alerts_only"]
    spec["sinks"]["alerts"] = {
        "type": "file",
        "inputs": [feature_step],
        "path": str(work / "rows"),
        "format": "jsonl",
    }
    spec["dead_letter"] = {"type": "file", "path": str(work / "dead-letter")}
    path = work / "training.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path, features


def load_rows(work: pathlib.Path, features: list[str]):
    x, y = [], []
    for f in sorted(glob.glob(str(work / "rows" / "*.jsonl"))):
        with open(f) as fh:
            for line in fh:
                r = json.loads(line)
                x.append([np.nan if r.get(c) is None else float(r[c]) for c in features])
                y.append(1.0 if r["is_fraud"] else 0.0)
    return np.array(x, dtype=np.float64), np.array(y)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shoal", default="shoal", help="the shoal binary")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        pipeline, features = training_pipeline(work)
        subprocess.run(
            [args.shoal, "run", str(pipeline), "--data-dir", str(work / "data")],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        x, y = load_rows(work, features)
    print(f"{len(y)} training rows, {int(y.sum())} fraud, features {features}")
    # Hold out the last quarter (by row order) to report quality.
    cut = len(y) * 3 // 4
    params = {
        "objective": "binary:logistic",
        "max_depth": 4,
        "eta": 0.3,
        "nthread": 1,
        "seed": 20261125,
        "eval_metric": "logloss",
    }
    dfit = xgb.DMatrix(x[:cut], label=y[:cut], feature_names=features)
    booster = xgb.train(params, dfit, num_boost_round=40)
    p = booster.inplace_predict(x[cut:])
    pred = p > THRESHOLD
    truth = y[cut:] > 0.5
    tp = int((pred & truth).sum())
    precision = tp / max(int(pred.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    print(f"holdout at {THRESHOLD}: precision {precision:.3f} recall {recall:.3f}")
    # The shipped model is fit on all rows.
    final = xgb.train(params, xgb.DMatrix(x, label=y, feature_names=features), num_boost_round=40)
    final.save_model(str(MODEL))
    print(f"wrote {MODEL.relative_to(ROOT)} ({MODEL.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
