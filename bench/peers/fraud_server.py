"""The fraud-scoring server a team would write itself: Flask + XGBoost, served by gunicorn.

bench/services.sh runs it beside `prescale serve fraud`, on the same model file and the same
requests, so that our figures come with a baseline (the project's rule: a benchmark runs the
peer in the same run). It is deliberately plain, idiomatic Python: the model is loaded once per
worker, a request is one `Booster.inplace_predict` on a 1 x 30 float32 array.

It reads the model `prescale train fraud` writes (fraud-v<N>.json, docs/services/fraud.md):
XGBoost's own JSON model is the file's "xgboost_model" member, so both servers score with the
same trees. As in ours (docs/services/fraud.md, "Probability"), the probability undoes training's
weighting of frauds: sigmoid(margin - log(positive_weight)); the decision threshold is the file's
"threshold".

API (the subset of docs/api/fraud.yaml the bench uses):
  POST /v1/score  a transaction {"Time": .., "V1": .., ..., "V28": .., "Amount": ..}, every
                  feature present, a number or null (missing); answers {"fraud_probability",
                  "decision", "threshold", "model_version"}. Unlike ours it computes no
                  "top_features" (per-feature contributions): the peer does less per request.
  GET  /healthz   200 once the model is loaded.

Run: FRAUD_MODEL_FILE=models/fraud/fraud-v1.json \
       gunicorn --chdir bench/peers -w 1 -b 127.0.0.1:8000 fraud_server:app
"""

import json
import math
import os

import numpy as np
import xgboost as xgb
from flask import Flask, jsonify, request

FEATURES = ["Time"] + [f"V{i}" for i in range(1, 29)] + ["Amount"]


def load_model(path):
    """The booster, its margin offset, the decision threshold and the version label of a
    fraud-v<N>.json file."""
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("model") != "gradient_boosted_trees":
        raise ValueError(f"{path}: not a gradient_boosted_trees model")
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(manifest["xgboost_model"]).encode()))
    # One sync worker is one core: no OpenMP threads of its own.
    booster.set_param({"nthread": 1})
    margin_offset = -math.log(float(manifest["positive_weight"]))
    return booster, margin_offset, float(manifest["threshold"]), f"fraud-v{manifest['version']}"


def parse_transaction(body):
    """A 1 x 30 float32 row (NaN = missing), or an error message."""
    if not isinstance(body, dict):
        return None, "body: expected a JSON object (a transaction)"
    unknown = body.keys() - set(FEATURES)
    if unknown:
        return None, f"{sorted(unknown)[0]}: unknown field (features are Time, V1..V28, Amount)"
    row = []
    for name in FEATURES:
        if name not in body:
            return None, f"{name}: missing (send null for an unknown value)"
        value = body[name]
        if value is None:
            row.append(math.nan)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            row.append(value)
        else:
            return None, f"{name}: expected a number or null"
    return np.array([row], dtype=np.float32), None


booster, margin_offset, threshold, model_version = load_model(os.environ["FRAUD_MODEL_FILE"])
app = Flask(__name__)


@app.post("/v1/score")
def score():
    x, error = parse_transaction(request.get_json(force=True, silent=True))
    if error:
        return jsonify(error={"code": "invalid_argument", "message": error}), 400
    margin = float(booster.inplace_predict(x, predict_type="margin")[0]) + margin_offset
    probability = 1.0 / (1.0 + math.exp(-margin))
    return jsonify(
        fraud_probability=probability,
        decision="fraud" if probability >= threshold else "legit",
        threshold=threshold,
        model_version=model_version,
    )


@app.get("/healthz")
def healthz():
    return "ok\n"
