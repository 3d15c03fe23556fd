"""Reference solution of ch05_skip_to_head.py."""
import numpy as np

import minideep as md
import minideep.nn.functional as F


def sum_skips_to_head(x, layers):
    outputs = []
    for layer in layers:
        x = layer(x)
        outputs.append(x)
    y = outputs[-1]
    for z in outputs[:-1]:
        kernel = z.shape[2] // y.shape[2]
        y = y + (z if kernel == 1 else F.max_pool2d(z, kernel))
    return y
