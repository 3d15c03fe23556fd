"""Grades ch05_skip_to_head.py. Run ``pytest`` in this folder; read a failure's message first."""
import numpy as np

import minideep as md
from minideep import nn
from minideep.classroom.check import check_op

SEEDS = (0, 1, 2)


def layers_for(rng, channels):
    """Tanh convolutions (keeping the size) with a 2x2 max pool after the first, so z_i have two sizes."""
    convs = [nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.Tanh()).double()
             for _ in range(int(rng.integers(2, 4)))]
    return [convs[0], nn.MaxPool2d(2), *convs[1:]]


def test_sum_skips_to_head(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        md.manual_seed(seed)  # the layers' initial weights
        c = int(rng.integers(1, 3))
        layers = layers_for(rng, c)
        x = rng.standard_normal((int(rng.integers(1, 3)), c, 4, 4))
        body = nn.SkipToHead(layers, mode="sum")
        check_op("sum_skips_to_head", lambda x: student.sum_skips_to_head(x, layers), body, [x], ["x"], seed=seed,
                 hint="y = z_L + the sum of the pooled z_i of every layer but the last.")
