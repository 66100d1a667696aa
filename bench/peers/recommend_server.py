"""The recommendation server a team would write itself: Flask + numpy EASE, served by gunicorn.

bench/services.sh runs it beside `prescale serve recommend`, on the same ratings and the same
requests, so that our figures come with a baseline (the project's rule: a benchmark runs the
peer in the same run). It is deliberately plain, idiomatic Python: the model is trained once at
startup (before gunicorn forks its workers when run with --preload), a request is one numpy
sum over the rows of B of the user's history and an argpartition.

The model is ours by default (`prescale train recommend`, src/services/recommend/): EASE
(Steck 2019), B = I - P diag(1/diag(P)) with P = (X'X + lambda I)^-1, lambda = 100, over the
items with at least 2 interactions (at most 4,000, the most interacted with); an interaction is
a rating >= 3.5, weight 1; each item's score is divided by its interaction count ^ 0.2. The
items of the user's history are excluded. A user without interactions gets the most popular
items (cold start). Unlike ours it takes no new interactions while it runs.

API (the subset of docs/api/recommend.yaml the bench uses):
  GET /v1/users/{id}/recommendations?k=10  {"user", "model", "cold_start", "items": [{"item",
                                           "score"}, ...]}, best first
  GET /healthz                             200 once the model is trained

Run: RATINGS_CSV=../shared/data/recsys/movielens-latest-small/ratings.csv \
       gunicorn --preload --chdir bench/peers -w 1 -b 127.0.0.1:8000 recommend_server:app
"""

import os

import numpy as np
from flask import Flask, jsonify, request

LAMBDA = 100.0
MIN_RATING = 3.5
MIN_ITEM_INTERACTIONS = 2
MAX_ITEMS = 4000
POPULARITY_PENALTY = 0.2
MAX_K = 1000


class Ease:
    """EASE trained on a MovieLens ratings.csv (userId,movieId,rating,timestamp)."""

    def __init__(self, ratings_csv):
        users, items, ratings = np.loadtxt(
            ratings_csv, delimiter=",", skiprows=1, usecols=(0, 1, 2), unpack=True)
        liked = ratings >= MIN_RATING
        users, items = users[liked].astype(np.int64), items[liked].astype(np.int64)
        # Items numbered in order of first appearance, as ours does: ties in popularity (at the
        # 4,000-item cut, among the cold-start items) break the same way.
        ids, first, item_index = np.unique(items, return_index=True, return_inverse=True)
        appearance = np.argsort(first)
        self.item_ids = ids[appearance]
        item_index = np.argsort(appearance)[item_index]
        user_ids, user_index = np.unique(users, return_inverse=True)
        counts = np.bincount(item_index)
        self.popular = np.argsort(-counts, kind="stable")
        self.counts = counts

        # The modelled items, most interacted with first, and each item's column (-1: none).
        kept = self.popular[counts[self.popular] >= MIN_ITEM_INTERACTIONS][:MAX_ITEMS]
        column = np.full(len(self.item_ids), -1)
        column[kept] = np.arange(len(kept))
        self.kept = kept

        x = np.zeros((len(user_ids), len(kept)), dtype=np.float32)
        in_model = column[item_index] >= 0
        x[user_index[in_model], column[item_index[in_model]]] = 1.0
        # Single precision, as ours: half the time of the cubic inverse, and lambda keeps the
        # matrix well conditioned.
        gram = x.T @ x
        gram[np.diag_indices_from(gram)] += LAMBDA
        p = np.linalg.inv(gram)
        b = p / -np.diag(p)
        np.fill_diagonal(b, 0.0)
        self.b = b
        self.popularity_scale = (counts[kept] ** -POPULARITY_PENALTY).astype(np.float32)

        # Each user's history as columns of B (items outside the model cannot be recommended).
        order = np.argsort(user_index, kind="stable")
        starts = np.searchsorted(user_index[order], np.arange(len(user_ids) + 1))
        cols = column[item_index[order]]
        self.history = {
            int(u): cols[starts[i]:starts[i + 1]][cols[starts[i]:starts[i + 1]] >= 0]
            for i, u in enumerate(user_ids)
        }

    def recommend(self, user, k):
        """[(item id, score)] best first, and whether the user was a cold start."""
        history = self.history.get(user)
        if history is None:
            top = self.popular[:k]
            return list(zip(self.item_ids[top].tolist(), self.counts[top].tolist())), True
        scores = self.b[history].sum(axis=0) * self.popularity_scale
        scores[history] = -np.inf
        k = min(k, len(scores) - len(history))
        top = np.argpartition(-scores, k - 1)[:k] if k > 0 else np.arange(0)
        top = top[np.argsort(-scores[top], kind="stable")]
        return list(zip(self.item_ids[self.kept[top]].tolist(), scores[top].tolist())), False


model = Ease(os.environ["RATINGS_CSV"])
app = Flask(__name__)


@app.get("/v1/users/<int:user>/recommendations")
def recommendations(user):
    k = request.args.get("k", 10, type=int)
    if not 1 <= k <= MAX_K:
        return jsonify(error={"code": "invalid_argument",
                              "message": f"query parameter \"k\": expected 1..{MAX_K}"}), 400
    items, cold_start = model.recommend(user, k)
    return jsonify(user=user, model="ease", cold_start=cold_start,
                   items=[{"item": item, "score": score} for item, score in items])


@app.get("/healthz")
def healthz():
    return "ok\n"
