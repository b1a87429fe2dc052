"""Steps of the churn example: synthetic data, a logistic regression in plain Python, metrics
and the model file logged to MLflow through ``ctx.plugins.mlops``."""

from __future__ import annotations

import json
import math
import random
from typing import Any

FEATURES = ("tenure", "monthly_spend", "support_calls")


def make_data(n_rows: int, seed: int) -> list[dict[str, float]]:
    """Customers whose churn probability falls with tenure and rises with support calls."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n_rows):
        tenure = rng.uniform(0, 6)
        spend = rng.uniform(0, 3)
        calls = rng.uniform(0, 5)
        logit = -0.9 * tenure + 0.4 * spend + 0.8 * calls - 0.5
        churn = 1.0 if rng.random() < 1 / (1 + math.exp(-logit)) else 0.0
        rows.append(
            {"tenure": tenure, "monthly_spend": spend, "support_calls": calls, "churn": churn}
        )
    return rows


def split(
    rows: list[dict[str, float]], test_fraction: float, seed: int, ctx: Any
) -> dict[str, Any]:
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    cut = int(len(shuffled) * (1 - test_fraction))
    ctx.plugins.mlops.log_params({"train_rows": cut, "test_rows": len(shuffled) - cut})
    return {"train": shuffled[:cut], "test": shuffled[cut:]}


def _predict(w: list[float], row: dict[str, float]) -> float:
    z = w[0] + sum(wi * row[f] for wi, f in zip(w[1:], FEATURES, strict=True))
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))


def train(rows: list[dict[str, float]], epochs: int, lr: float, ctx: Any) -> dict[str, Any]:
    """Batch gradient descent on the log loss; the loss curve goes to MLflow."""
    w = [0.0] * (len(FEATURES) + 1)
    n = len(rows)
    for epoch in range(epochs):
        grad = [0.0] * len(w)
        loss = 0.0
        for r in rows:
            p = _predict(w, r)
            err = p - r["churn"]
            grad[0] += err
            for i, f in enumerate(FEATURES, 1):
                grad[i] += err * r[f]
            p = min(max(p, 1e-9), 1 - 1e-9)
            loss -= r["churn"] * math.log(p) + (1 - r["churn"]) * math.log(1 - p)
        w = [wi - lr * g / n for wi, g in zip(w, grad, strict=True)]
        ctx.plugins.mlops.log_metrics({"train_loss": loss / n}, step=epoch)
    return {"weights": w, "features": list(FEATURES)}


def _auc(scores: list[float], labels: list[float]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1.0]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0.0]
    if not pos or not neg:
        return 0.5
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def evaluate(model: dict[str, Any], rows: list[dict[str, float]], ctx: Any) -> dict[str, float]:
    scores = [_predict(model["weights"], r) for r in rows]
    labels = [r["churn"] for r in rows]
    auc = _auc(scores, labels)
    accuracy = sum((s >= 0.5) == (y == 1.0) for s, y in zip(scores, labels, strict=True)) / len(
        rows
    )
    ctx.plugins.mlops.log_metrics({"auc": auc, "accuracy": accuracy})
    return {"auc": round(auc, 6), "accuracy": round(accuracy, 6)}


def publish(model: dict[str, Any], auc: float, ctx: Any) -> str:
    """Write the model as JSON into the step's folder and attach it to the MLflow run."""
    path = ctx.artifact_path("model.json")
    path.write_text(json.dumps({**model, "auc": auc}, indent=2, sort_keys=True))
    ctx.plugins.mlops.log_artifact(str(path), "model")
    ctx.plugins.mlops.set_tags({"published": "true"})
    return str(path)
