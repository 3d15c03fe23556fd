"""Grades ch01_autodiff.py. Run ``pytest`` in this folder; read a failure's message first."""
import numpy as np

import minideep as md
import minideep.nn.functional as F
from minideep.classroom.check import check_op, compare, graded

SEEDS = (0, 1, 2)


def random_shape(rng, ndim):
    return tuple(int(n) for n in rng.integers(1, 5, size=ndim))


def test_sin(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(random_shape(rng, 2))
        check_op("sin", student.sin, lambda x: md.tensor(np.sin(x.data)), [x], ["x"], seed=seed)


def test_exp(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        check_op("exp", student.exp, md.exp, [rng.standard_normal(random_shape(rng, 3))], ["x"], seed=seed)


def test_sigmoid(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x = 3 * rng.standard_normal(random_shape(rng, 2))
        check_op("sigmoid", student.sigmoid, F.sigmoid, [x], ["x"], seed=seed)


def broadcast_pairs(rng):
    """(shape, a shape it broadcasts to): leading axes added, length-1 axes stretched."""
    for _ in range(6):
        target = random_shape(rng, int(rng.integers(1, 4)))
        keep = int(rng.integers(0, len(target) + 1))
        shape = tuple(1 if rng.random() < 0.5 else n for n in target[len(target) - keep:])
        yield shape, target


class BroadcastTo(md.Function):
    """x stretched to ``shape`` by broadcasting; its backward is your sum_to."""

    def __init__(self, student, shape):
        self.student, self.shape = student, shape

    def forward(self, x):
        self.x_shape = x.shape
        return np.broadcast_to(x, self.shape).copy()

    def backward(self, grad):
        return self.student.sum_to(grad, self.x_shape)


def test_sum_to(student):
    hint = "Sum over the leading axes that broadcasting added and over the axes where shape has 1."
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        for shape, target in broadcast_pairs(rng):
            grad = rng.standard_normal(target)
            with graded("sum_to"):
                got = student.sum_to(grad, shape)
            compare(f"sum_to(grad of shape {target}, {shape})", got, md.sum_to(grad, shape), hint)
            # The same, as the backward pass of broadcasting (minideep's is x + zeros).
            check_op("sum_to", lambda x: BroadcastTo(student, target)(x), lambda x: x + np.zeros(target),
                     [rng.standard_normal(shape)], ["x"], hint=hint, seed=seed)


def test_mul(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        for shape, target in list(broadcast_pairs(rng))[:3]:
            a, b = rng.standard_normal(target), rng.standard_normal(shape)
            check_op("mul", student.mul, lambda a, b: a * b, [a, b], ["a", "b"], seed=seed)


def test_matmul(student):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        batch, (m, k, n) = random_shape(rng, 1), random_shape(rng, 3)
        # A square case first: there a transposed gradient has the right shape and wrong values.
        for shape_a, shape_b in (((k, k), (k, k)), ((*batch, m, k), (k, n))):
            a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
            check_op("matmul", student.matmul, lambda a, b: a @ b, [a, b], ["A", "B"], seed=seed,
                     hint="dL/dA = G @ B^T, dL/dB = A^T @ G: check which factor is transposed and on which side.")
