"""Grades ch02_chain_rule.py. Run ``pytest`` in this folder; read a failure's message first."""
import numpy as np

import minideep.nn.functional as F
from minideep.classroom.check import check_op

SEEDS = (0, 1, 2)


def test_leaky_relu(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(tuple(rng.integers(1, 6, size=2)))
        slope = float(rng.uniform(0.01, 0.5))
        check_op("leaky_relu", lambda x: student.leaky_relu(x, slope), lambda x: F.leaky_relu(x, slope),
                 [x], ["x"], seed=seed)


def test_linear(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        n, fan_in, fan_out = (int(v) for v in rng.integers(1, 6, size=3))
        # A square weight first: there a transposed dL/dW has the right shape and wrong values.
        for fan_in, fan_out in ((fan_in, fan_in), (fan_in, fan_out)):
            x, w, b = rng.standard_normal((n, fan_in)), rng.standard_normal((fan_out, fan_in)), rng.standard_normal(fan_out)
            check_op("linear", student.linear, F.linear, [x, w, b], ["x", "weight", "bias"], seed=seed,
                     hint="dL/dW = G^T x has W's shape (out, in); x^T G would be its transpose.")
