"""Grades ch04_highway.py. Run ``pytest`` in this folder; read a failure's message first."""
import numpy as np

from minideep import nn
from minideep.classroom.check import check_module, check_op

SEEDS = (0, 1, 2)


def test_highway_mix(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        shape = tuple(int(v) for v in rng.integers(1, 5, size=2))
        h, x = rng.standard_normal(shape), rng.standard_normal(shape)
        t = rng.uniform(0.05, 0.95, size=shape)
        check_op("highway_mix", student.highway_mix, lambda h, t, x: h * t + x * (1 - t), [h, t, x],
                 ["h", "t", "x"], seed=seed, hint="dL/dt = (h - x) g: the gate learns from the gap between transform and input.")


def test_highway(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        n, d = (int(v) for v in rng.integers(1, 5, size=2))
        weights = {"transform.weight": rng.standard_normal((d, d)), "transform.bias": rng.standard_normal(d),
                   "gate.weight": rng.standard_normal((d, d)), "gate.bias": rng.standard_normal(d) - 1}
        check_module("highway", student.highway, nn.Highway(d), rng.standard_normal((n, d)), weights, seed=seed,
                     hint="H = relu(x W_H^T + b_H), T = sigmoid(x W_T^T + b_T), y = H T + x (1 - T).")
