"""Grades ch03_vgg38.py. Run ``pytest`` in this folder; read a failure's message first."""
import numpy as np

import minideep as md
import minideep.nn.functional as F
from minideep import nn
from minideep.classroom.check import check_module, check_op, compare, graded

SEEDS = (0, 1, 2)


def conv_case(rng):
    """Input, weight, bias, stride and padding; stride 1 or 2, so some windows overlap."""
    n, c_in, c_out = (int(v) for v in rng.integers(1, 4, size=3))
    k, stride, padding = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
    h, w = (int(v) for v in rng.integers(k, k + 4, size=2))
    x = rng.standard_normal((n, c_in, h, w))
    return x, rng.standard_normal((c_out, c_in, k, k)), rng.standard_normal(c_out), stride, padding


def test_im2col(student):
    # Graded through the convolution's forward pass, whose weights fix the column order (c, i, j).
    for seed in SEEDS:
        x, weight, bias, stride, padding = conv_case(np.random.default_rng(seed))
        with graded("im2col"), md.no_grad():
            got = student.conv2d(md.tensor(x), md.tensor(weight), md.tensor(bias), stride, padding)
        expected = F.conv2d(md.tensor(x), md.tensor(weight), md.tensor(bias), stride=stride, padding=padding)
        compare(f"Conv2d.forward with your im2col (x {x.shape}, weight {weight.shape}, stride {stride}, "
                f"padding {padding})", got.data, expected.data,
                hint="Each row is one output pixel's window, its columns in the order (c, i, j).")


class Im2col(md.Function):
    """im2col as an op whose backward is col2im: gradcheck then tests col2im against im2col."""

    def __init__(self, student, kh, kw, stride, padding):
        self.student, self.geometry = student, (kh, kw, stride, padding)

    def forward(self, x):
        self.x_shape = x.shape
        return self.student.im2col(x, *self.geometry)

    def backward(self, grad):
        return self.student.col2im(grad, self.x_shape, *self.geometry)


def test_col2im(student):
    for seed in SEEDS:
        x, weight, _, stride, padding = conv_case(np.random.default_rng(seed))
        kh, kw = weight.shape[2:]
        # Gradcheck compares col2im with the finite differences of your im2col, so fix im2col first.
        check_op("col2im", lambda x: Im2col(student, kh, kw, stride, padding)(x),
                 lambda x: md.tensor(student.im2col(x.data, kh, kw, stride, padding)), [x], ["x"], seed=seed,
                 hint="col2im must add (+=) every column entry back onto the pixel it was read from; "
                      "with stride < kernel a pixel sits in several windows.")


def test_conv2d_backward(student):
    for seed in SEEDS:
        x, weight, bias, stride, padding = conv_case(np.random.default_rng(seed))
        check_op("conv2d", lambda x, w, b: student.conv2d(x, w, b, stride, padding),
                 lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding),
                 [x, weight, bias], ["x", "weight", "bias"], seed=seed)


def test_max_pool2d_backward(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        k, s = int(rng.integers(2, 4)), int(rng.integers(1, 3))  # s < k: overlapping windows
        x = rng.standard_normal((int(rng.integers(1, 3)), int(rng.integers(1, 3)), *rng.integers(k, k + 4, size=2)))
        check_op("max_pool2d", lambda x: student.max_pool2d(x, k, s), lambda x: F.max_pool2d(x, k, s),
                 [x], ["x"], seed=seed, hint="Route each window's gradient to its argmax, and add where windows overlap.")


def test_batch_norm_backward(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        c = int(rng.integers(1, 4))
        shape = (int(rng.integers(2, 5)), c) if seed % 2 else (int(rng.integers(2, 4)), c, 2, 3)
        x, gamma, beta = 2 * rng.standard_normal(shape) + 1, rng.standard_normal(c), rng.standard_normal(c)
        check_op("batch_norm", student.batch_norm,
                 lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True),
                 [x, gamma, beta], ["x", "gamma", "beta"], seed=seed,
                 hint="mu and var depend on every x of the channel: dL/dx has three terms, not one.")


def test_residual_block(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        c = int(rng.integers(1, 3))
        x = rng.standard_normal((int(rng.integers(1, 3)), c, *rng.integers(2, 5, size=2)))
        w0, w1 = 0.5 * rng.standard_normal((c, c, 3, 3)), 0.5 * rng.standard_normal((c, c, 3, 3))
        block = nn.ResidualBlock(c, c, batch_norm=False, shortcut="identity")
        check_module("residual_block", student.residual_block, block, x,
                     {"conv_0.weight": w0, "conv_1.weight": w1}, seed=seed,
                     hint="y = relu(conv(relu(conv(x, w0)), w1) + x), with padding 1 so that the shapes match.")
