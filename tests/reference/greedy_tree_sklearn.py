"""Writes greedy_tree_sklearn.json: scikit-learn's DecisionTreeRegressor predictions on
decision-tree-task prompts, the oracle of the greedy-tree baseline's unit test
(`src/tasks/baselines/greedy_tree.rs`).

    pip install scikit-learn   # any machine; CPU only
    python3 tests/reference/greedy_tree_sklearn.py > tests/reference/greedy_tree_sklearn.json

Each prompt: n examples, x ~ N(0, I_d) in float32, y from a random depth-4 tree over the
coordinates (splits at 0, leaf values N(0, 1), as the decision-tree task draws them) or, for
every other prompt, y ~ N(0, 1) with no structure. At each position i >= 1 a tree is fitted on
examples 0..i-1 and predicts x_i, for max_depth 4 and None.

Ties: in small nodes several features often split the examples into the same two sets (equal
error reduction up to rounding), and which one a tree keeps decides where x_i goes. Any choice
is correct CART, so such a prediction is no oracle: at every node on the path of x_i through
sklearn's tree, every split whose squared error is within 1e-9 of the best is tried, and the
position is kept ("checked") only when all of them send x_i the same way.
"""

import json
import sys

import numpy as np
import sklearn
from sklearn.tree import DecisionTreeRegressor


def tree_targets(rng, xs, depth=4):
    d = xs.shape[1]
    features = rng.integers(0, d, size=2**depth - 1)
    leaves = rng.standard_normal(2**depth)
    ys = np.empty(len(xs))
    for i, x in enumerate(xs):
        node = 0
        for _ in range(depth):
            node = 2 * node + (1 if x[features[node]] > 0 else 2)
        ys[i] = leaves[node - (2**depth - 1)]
    return ys


def split_is_unique(xs, ys, members, x):
    """True when every best split (within 1e-9) of `members` puts x with the same examples."""
    y = ys[members].astype(np.float64)
    total, total_sq, n = y.sum(), (y * y).sum(), len(members)
    candidates = []
    for f in range(xs.shape[1]):
        order = sorted(members, key=lambda j: xs[j, f])
        left, left_sq = 0.0, 0.0
        for k in range(n - 1):
            v = float(ys[order[k]])
            left, left_sq = left + v, left_sq + v * v
            lo, hi = xs[order[k], f], xs[order[k + 1], f]
            if lo == hi:
                continue
            nl, right = k + 1, total - left
            sse = (left_sq - left * left / nl) + (total_sq - left_sq - right * right / (n - nl))
            # The side is the set of examples x joins: "left" of one feature can be "right" of another.
            side = order[:k + 1] if x[f] <= (float(lo) + float(hi)) / 2 else order[k + 1:]
            candidates.append((sse, frozenset(side)))
    if not candidates:
        return True
    best = min(c[0] for c in candidates)
    sides = {side for sse, side in candidates if sse <= best + 1e-9}
    return len(sides) == 1


def path_is_tie_free(tree, xs, ys, n_fit, x):
    t = tree.tree_
    members, node = list(range(n_fit)), 0
    while t.children_left[node] != -1:
        if not split_is_unique(xs, ys, members, x):
            return False
        f, th = t.feature[node], t.threshold[node]
        go_left = x[f] <= th
        members = [j for j in members if (xs[j, f] <= th) == go_left]
        node = t.children_left[node] if go_left else t.children_right[node]
    return True


def main():
    rng = np.random.default_rng(20261201)
    prompts = []
    for p in range(8):
        d, n = 5, 40
        xs = rng.standard_normal((n, d)).astype(np.float32)
        ys = (tree_targets(rng, xs) if p % 2 == 0 else rng.standard_normal(n)).astype(np.float32)
        for depth in (4, None):
            preds, checked = [0.0], [False]
            for i in range(1, n):
                t = DecisionTreeRegressor(max_depth=depth, random_state=0).fit(xs[:i], ys[:i])
                preds.append(float(t.predict(xs[i:i + 1])[0]))
                checked.append(path_is_tie_free(t, xs, ys, i, xs[i]))
            prompts.append({"d": d, "max_depth": depth, "xs": xs.ravel().tolist(), "ys": ys.tolist(),
                            "predictions": preds, "checked": checked})
    json.dump({"sklearn": sklearn.__version__, "prompts": prompts}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
