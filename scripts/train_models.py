#!/usr/bin/env python3
"""Train the small tree models in models/ and write their parity data.

Usage (from the repository root):

    pip install -r scripts/requirements.txt
    python3 scripts/train_models.py            # writes models/

Everything is deterministic (fixed seeds, one thread), so re-running with the
pinned versions reproduces the committed files.

The data imitates the features a fraud pipeline computes over Shoal's
`transactions` generator (see crates/shoal-connectors/src/generator/
transactions.rs): about 2 % fraud, fraud is larger, more often foreign and
comes in bursts. Features, in model order:

    amount                 transaction amount (log-normal)
    n_1h                   the card's transactions in the last hour
    sum_1h                 their total amount
    distinct_merchants_1h  distinct merchants among them
    amount_avg_ratio       amount / the card's average amount (NaN for a new card)
    is_foreign             1 if the country is not the card's home country

Models (each format gets the same three tasks):

    fraud.xgb.json / fraud.lgbm.txt   binary: is the transaction fraud?
    risk.xgb.json  / risk.lgbm.txt    regression: a continuous risk score
    kind.xgb.json  / kind.lgbm.txt    3 classes: legit / card testing / takeover

and models/parity/:

    features.csv       the fixed test set (NaN = missing), including rows
                       whose values sit exactly on (and one ulp around) the
                       models' split thresholds
    <model>.csv        the library's own predictions for each model, one
                       column `score` or `score_0..score_2`
"""

from __future__ import annotations

import json
import pathlib
import sys

import lightgbm as lgb
import numpy as np
import xgboost as xgb

FEATURES = [
    "amount",
    "n_1h",
    "sum_1h",
    "distinct_merchants_1h",
    "amount_avg_ratio",
    "is_foreign",
]
ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "models"
SEED = 20260101


def make_data(n: int, rng: np.random.Generator):
    """Synthetic transactions: features, fraud label, risk target, 3-class kind."""
    fraud = rng.random(n) < 0.02
    # Two kinds of fraud: card testing (many small charges) and account
    # takeover (few large, foreign charges).
    testing = fraud & (rng.random(n) < 0.4)
    takeover = fraud & ~testing

    amount = np.where(
        takeover,
        rng.lognormal(6.0, 0.8, n),
        np.where(testing, rng.lognormal(1.0, 0.7, n), rng.lognormal(3.5, 1.0, n)),
    )
    amount = np.round(amount, 2)
    n_1h = 1 + np.where(
        testing, rng.poisson(6.0, n), np.where(takeover, rng.poisson(2.0, n), rng.poisson(0.6, n))
    )
    others = n_1h - 1
    sum_1h = amount + np.round(others * rng.lognormal(3.3, 0.6, n), 2)
    distinct = 1 + rng.binomial(others, np.where(testing, 0.9, 0.4))
    card_avg = rng.lognormal(3.5, 0.5, n)
    ratio = amount / card_avg
    ratio[rng.random(n) < 0.05] = np.nan  # new card: no history yet
    foreign = (rng.random(n) < np.where(fraud, 0.7, 0.03)).astype(float)
    x = np.column_stack([amount, n_1h, sum_1h, distinct, ratio, foreign]).astype(np.float64)

    risk = (
        0.3 * np.log1p(amount)
        + 0.8 * foreign
        + 0.15 * n_1h
        + 0.5 * np.log1p(np.nan_to_num(ratio, nan=1.0))
        + rng.normal(0.0, 0.2, n)
    )
    kind = np.where(testing, 1, np.where(takeover, 2, 0))
    return x, fraud.astype(float), risk, kind


def train_xgb(x, y, params, rounds):
    params = {"nthread": 1, "seed": SEED, "tree_method": "hist", **params}
    dtrain = xgb.DMatrix(x, label=y, feature_names=FEATURES)
    return xgb.train(params, dtrain, num_boost_round=rounds)


def train_lgbm(x, y, params, rounds):
    params = {
        "num_threads": 1,
        "seed": SEED,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
        **params,
    }
    data = lgb.Dataset(x, label=y, feature_name=FEATURES, free_raw_data=False)
    return lgb.train(params, data, num_boost_round=rounds)


def xgb_thresholds(booster) -> list[tuple[int, float]]:
    out = []
    model = json.loads(booster.save_raw("json"))
    for tree in model["learner"]["gradient_booster"]["model"]["trees"]:
        for f, t, left in zip(tree["split_indices"], tree["split_conditions"], tree["left_children"]):
            if left != -1:
                out.append((f, float(np.float32(t))))
    return out


def lgbm_thresholds(booster) -> list[tuple[int, float]]:
    out = []

    def walk(node):
        if "split_index" in node:
            out.append((node["split_feature"], float(node["threshold"])))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return out


def boundary_rows(base: np.ndarray, thresholds, rng: np.random.Generator, count: int):
    """Rows of `base` with one feature set exactly on a split threshold, or
    one f64 / f32 ulp either side of it."""
    rows = []
    picks = rng.choice(len(thresholds), size=count, replace=len(thresholds) < count)
    for i, p in enumerate(picks):
        f, t = thresholds[p]
        t32 = np.float32(t)
        value = [
            t,
            np.nextafter(t, -np.inf),
            np.nextafter(t, np.inf),
            float(np.nextafter(t32, np.float32(-np.inf))),
            float(np.nextafter(t32, np.float32(np.inf))),
            # the midpoint between t32 and its f32 neighbours (a rounding tie)
            (float(t32) + float(np.nextafter(t32, np.float32(np.inf)))) / 2,
        ][i % 6]
        row = base[i % len(base)].copy()
        row[f] = value
        rows.append(row)
    return np.array(rows)


def write_csv(path: pathlib.Path, header: list[str], values: np.ndarray) -> None:
    """Shortest round-trip text for each value: float32 results (XGBoost's)
    as float32, so the file holds exactly what the library returned."""
    values = np.asarray(values)
    values = values.reshape(len(values), -1)
    with path.open("w") as fh:
        fh.write(",".join(header) + "\n")
        for row in values:
            fh.write(",".join("nan" if np.isnan(v) else str(v) for v in row) + "\n")


def main() -> int:
    OUT.mkdir(exist_ok=True)
    (OUT / "parity").mkdir(exist_ok=True)
    rng = np.random.default_rng(SEED)
    x, fraud, risk, kind = make_data(20_000, rng)
    # A little missing data everywhere, so both libraries learn default
    # directions (ratio already has NaN for new cards).
    x_train = x.copy()
    x_train[:, 2][rng.random(len(x)) < 0.02] = np.nan

    tree = {"max_depth": 6, "eta": 0.1}
    models = {
        "fraud.xgb.json": train_xgb(x_train, fraud, {**tree, "objective": "binary:logistic"}, 35),
        "risk.xgb.json": train_xgb(
            x_train, risk, {"max_depth": 4, "eta": 0.2, "objective": "reg:squarederror"}, 15
        ),
        "kind.xgb.json": train_xgb(
            x_train,
            kind,
            {"max_depth": 3, "eta": 0.3, "objective": "multi:softprob", "num_class": 3},
            10,
        ),
        "fraud.lgbm.txt": train_lgbm(
            x_train,
            fraud,
            {"objective": "binary", "num_leaves": 31, "max_depth": 6, "learning_rate": 0.1},
            35,
        ),
        # zero_as_missing exercises LightGBM's "Zero" missing type.
        "risk.lgbm.txt": train_lgbm(
            x_train,
            risk,
            {
                "objective": "regression",
                "num_leaves": 15,
                "max_depth": 4,
                "learning_rate": 0.2,
                "zero_as_missing": True,
            },
            15,
        ),
        "kind.lgbm.txt": train_lgbm(
            x_train,
            kind,
            {
                "objective": "multiclass",
                "num_class": 3,
                "num_leaves": 8,
                "max_depth": 3,
                "learning_rate": 0.3,
            },
            10,
        ),
    }
    for name, booster in models.items():
        booster.save_model(str(OUT / name))

    # The parity set: fresh rows (some missing), plus boundary rows and a few
    # values inside LightGBM's zero band.
    test_rng = np.random.default_rng(SEED + 1)
    base, *_ = make_data(400, test_rng)
    base[test_rng.random(base.shape) < 0.05] = np.nan
    thresholds = []
    for name, booster in models.items():
        thresholds += xgb_thresholds(booster) if name.endswith(".json") else lgbm_thresholds(booster)
    edges = boundary_rows(base, thresholds, test_rng, 180)
    tiny = base[:20].copy()
    tiny[:, 5] = [0.0, -0.0, 1e-36, -1e-36, 1e-35, 2e-35, np.nan, 1.0, 0.5, -1e-40] * 2
    tiny[:10, 4] = [0.0, 1e-36, -1e-36, np.float32(1e-35), -np.float32(1e-35), 3e-35, 0, 0, 0, 0]
    features = np.vstack([base, edges, tiny])
    write_csv(OUT / "parity" / "features.csv", FEATURES, features.astype(np.float64))

    for name, booster in models.items():
        if name.endswith(".json"):
            pred = booster.inplace_predict(features)
        else:
            pred = booster.predict(features, num_threads=1)
        pred = np.asarray(pred).reshape(len(features), -1)
        header = ["score"] if pred.shape[1] == 1 else [f"score_{k}" for k in range(pred.shape[1])]
        stem = name.rsplit(".", 1)[0]
        write_csv(OUT / "parity" / f"{stem}.csv", header, pred)

    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {len(models)} models and {len(features)} parity rows; models/ is {total / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
