"""An XGBoost booster's trees walked in plain Python for one row at a time.

For a single row, ``Booster.inplace_predict`` spends most of its ~50-200 µs in its Python wrapper
(array interface, validation, output shaping), not in the trees; walking a few dozen small trees
over Python lists takes ~10-30 µs. The arithmetic is XGBoost's: inputs and split values as float32,
``x < split`` goes left, a missing value takes the node's default direction, leaves summed in
float32 from the base score, the logistic link in float32. :meth:`Trees.of` returns None for what it
does not know (categorical splits, vector leaves, other objectives); callers compare it with the
booster on probe rows before using it, and use the booster otherwise.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np

OBJECTIVES = ("reg:squarederror", "binary:logistic")


class Trees:
    def __init__(self, trees: list[tuple[list[int], list[int], list[int], list[float], list[bool]]],
                 base_margin: np.float32, logistic: bool):
        self.trees, self.base, self.logistic = trees, np.float32(base_margin), logistic

    @classmethod
    def of(cls, booster: Any, iteration_range: tuple[int, int]) -> "Trees | None":
        try:
            learner = json.loads(booster.save_raw("json"))["learner"]
            objective = learner["objective"]["name"]
            model = learner["gradient_booster"]["model"]
            params = learner["learner_model_param"]
            if (objective not in OBJECTIVES or model["gbtree_model_param"]["num_parallel_tree"] != "1"
                    or params.get("num_target", "1") != "1" or params.get("num_class", "0") != "0"):
                return None
            base = np.float32(str(params["base_score"]).strip("[]"))
            if objective == "binary:logistic":  # a probability; the trees add to its logit, in float32
                one = np.float32(1.0)
                base = -np.log(one / base - one)
            start, stop = iteration_range
            trees = []
            for tree in model["trees"][start:stop]:
                if tree["categories_nodes"] or tree["tree_param"].get("size_leaf_vector", "1") not in ("0", "1"):
                    return None
                # float32 values as Python floats: comparisons and sums below are then float32's
                cond = [float(v) for v in np.asarray(tree["split_conditions"], dtype=np.float32)]
                trees.append((tree["left_children"], tree["right_children"], tree["split_indices"], cond,
                              [bool(d) for d in tree["default_left"]]))
            return cls(trees, base, objective == "binary:logistic")
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None

    @classmethod
    def checked(cls, booster: Any, iteration_range: tuple[int, int], probe: np.ndarray) -> "Trees | None":
        """:meth:`of`, kept only if it gives the booster's own predictions on the ``probe`` rows."""
        trees = cls.of(booster, iteration_range)
        if trees is None:
            return None
        ref = np.asarray(booster.inplace_predict(probe, iteration_range=iteration_range), dtype=float).reshape(-1)
        mine = np.array([trees.predict(row) for row in probe])
        return trees if np.allclose(mine, ref, rtol=1e-6, atol=1e-7) else None

    def predict(self, row: Sequence[float]) -> float:
        """The booster's prediction for one row (``row``: the feature values in the booster's order)."""
        x = np.asarray(row, dtype=np.float32).tolist()  # float32 values as Python floats
        leaves = [self.base]
        for left, right, feature, cond, default_left in self.trees:
            node = 0
            while left[node] != -1:
                v = x[feature[node]]
                if v != v:
                    node = left[node] if default_left[node] else right[node]
                else:
                    node = left[node] if v < cond[node] else right[node]
            leaves.append(cond[node])
        # XGBoost adds the leaves one by one to the base in float32; accumulate is that sequential sum.
        acc = np.add.accumulate(np.array(leaves, dtype=np.float32))[-1]
        if self.logistic:  # 1 / (1 + expf(-margin)): glibc's expf is exp correctly rounded to float32
            one = np.float32(1.0)
            return float(one / (one + np.float32(math.exp(-float(acc)))))
        return float(acc)
