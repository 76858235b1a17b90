#!/usr/bin/env python3
"""Train the small scikit-learn models in models/*.onnx and write their parity data.

Usage (from the repository root):

    pip install -r scripts/requirements.txt
    python3 scripts/train_onnx.py             # writes models/*.onnx, models/parity/*.onnx.csv

The training data comes from scripts/train_models.py's make_data (the same
synthetic card transactions, same seed), and the test set is the committed
models/parity/features.csv, so all formats are checked on the same rows.
Everything is deterministic (fixed seeds, one thread).

Models (converted with skl2onnx, classifiers with zipmap=False so they
output `label` and a `probabilities` matrix; ai.onnx.ml opset 3, whose
TreeEnsembleClassifier tract-onnx implements):

    fraud.onnx   binary: HistGradientBoostingClassifier (NaN-aware trees)
    risk.onnx    regression: MLPRegressor (MatMul/Add/Relu; tract-onnx has
                 no TreeEnsembleRegressor), trained on NaN-imputed data,
                 with a double (float64) input; a missing feature gives
                 NaN, as in onnxruntime
    kind.onnx    3 classes: HistGradientBoostingClassifier, SOFTMAX
                 (skl2onnx 1.20 converts a NaN-aware RandomForest's missing
                 branches wrongly, so none is used)

models/parity/<stem>.onnx.csv holds onnxruntime's output for each model on
the test set (as returned: float32, float64 for risk.onnx): `score` (regression; binary: the
probability of class 1) or `score_0..score_2`. The script also checks that
onnxruntime agrees with scikit-learn's own predict / predict_proba to 1e-5
on every row scikit-learn accepts, so the reference is scikit-learn's.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import onnx.helper
import onnxruntime as ort
import skl2onnx.common._container
from skl2onnx import to_onnx
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.neural_network import MLPRegressor

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from train_models import FEATURES, OUT, SEED, make_data, write_csv  # noqa: E402

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def _make_node_with_int_flags(*args, **kwargs):
    """skl2onnx 1.20's HistGradientBoosting converter passes
    nodes_missing_value_tracks_true with some Python bools, which onnx 1.23 rejects
    for an INTS attribute; write them as the 0/1 ints the spec defines."""
    for key, value in kwargs.items():
        if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
            kwargs[key] = [int(v) for v in value]
    return onnx.helper.make_node(*args, **kwargs)


skl2onnx.common._container.make_node = _make_node_with_int_flags


def session(onx) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onx.SerializeToString(), options, providers=["CPUExecutionProvider"])


def check_against_sklearn(name: str, expected: np.ndarray, got: np.ndarray) -> None:
    ok = ~np.isnan(expected).any(axis=1)
    err = np.abs(expected[ok] - got[ok]).max()
    if not err <= 1e-5:
        raise SystemExit(f"{name}: onnxruntime differs from scikit-learn by {err}")
    print(f"{name}: onnxruntime vs scikit-learn max error {err:.2e} on {ok.sum()} rows")


def main() -> int:
    rng = np.random.default_rng(SEED)
    x, fraud, risk, kind = make_data(20_000, rng)
    x32 = x.astype(np.float32)

    fraud_model = HistGradientBoostingClassifier(
        max_iter=30, max_depth=5, learning_rate=0.1, random_state=SEED
    ).fit(x32, fraud.astype(int))
    risk_model = MLPRegressor(
        hidden_layer_sizes=(16,), max_iter=300, random_state=SEED
    ).fit(np.nan_to_num(x, nan=1.0), risk)
    kind_model = HistGradientBoostingClassifier(
        max_iter=10, max_depth=3, learning_rate=0.3, random_state=SEED
    ).fit(x32, kind)

    features = np.genfromtxt(OUT / "parity" / "features.csv", delimiter=",", skip_header=1)
    assert features.shape[1] == len(FEATURES)
    # What each model's input type makes of the test set.
    inputs = {np.float32: features.astype(np.float32), np.float64: features}

    # (model, input type): the regressor takes double, to cover that path.
    models = {
        "fraud.onnx": (fraud_model, np.float32),
        "risk.onnx": (risk_model, np.float64),
        "kind.onnx": (kind_model, np.float32),
    }
    for name, (model, dtype) in models.items():
        test = inputs[dtype]
        options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
        onx = to_onnx(model, x[:1].astype(dtype), target_opset=TARGET_OPSET, options=options)
        # No producer version or doc strings that change between runs.
        onx.producer_version = ""
        (OUT / name).write_bytes(onx.SerializeToString())

        outputs = session(onx).run(None, {onx.graph.input[0].name: test})
        if hasattr(model, "predict_proba"):
            probs = np.asarray(outputs[1], dtype=np.float32)
            check_against_sklearn(name, model.predict_proba(test), probs)
            pred = probs[:, 1:] if probs.shape[1] == 2 else probs
        else:
            pred = np.asarray(outputs[0]).reshape(len(test), -1)
            ok = ~np.isnan(test).any(axis=1)
            check_against_sklearn(
                name, model.predict(test[ok]).reshape(-1, 1), pred[ok]
            )
        header = ["score"] if pred.shape[1] == 1 else [f"score_{k}" for k in range(pred.shape[1])]
        write_csv(OUT / "parity" / f"{name}.csv", header, pred)

    sizes = {name: (OUT / name).stat().st_size for name in models}
    print("wrote " + ", ".join(f"{n} ({s / 1024:.0f} KiB)" for n, s in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
