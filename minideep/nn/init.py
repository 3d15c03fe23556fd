"""Weight initialisation: PyTorch's default, He and Glorot (normal, uniform, truncated normal).

An init *scheme* is a function ``scheme(shape, fan_in, fan_out, rng) -> numpy array``
(float64; the layer casts it to its dtype). Layers take ``init=`` as a scheme's name or as
such a callable. The fans of a weight are

    Linear (out, in):                fan_in = in,            fan_out = out
    Conv2d (out, in, kh, kw):        fan_in = in * kh * kw,  fan_out = out * kh * kw

The variance-scaling family (Keras' ``VarianceScaling``, which covers He and Glorot):
with n = fan_in ("fan_in"), fan_out ("fan_out") or (fan_in + fan_out) / 2 ("fan_avg"),
the target variance is s / n and

    normal:            W ~ N(0, s / n)
    uniform:           W ~ U(-a, a),  a = sqrt(3 s / n)
    truncated normal:  W ~ N(0, sigma^2) redrawn outside +-2 sigma,
                       sigma = sqrt(s / n) / 0.87962566103423978

0.8796... is the standard deviation of a standard normal cut at +-2, so the truncated
draw has exactly the target variance s / n (Keras/TensorFlow 2's convention).

    He (2015):      s = 2, n = fan_in     -> Var = 2 / fan_in
    Glorot (2010):  s = 1, n = fan_avg    -> Var = 2 / (fan_in + fan_out)

PyTorch's default for ``nn.Linear`` and ``nn.Conv2d`` is ``kaiming_uniform_(a=sqrt(5))``:
U(-b, b) with b = sqrt(6 / ((1 + 5) fan_in)) = 1 / sqrt(fan_in), i.e. Var = 1 / (3 fan_in),
and the bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)). It is the layers' default here too,
because the coursework's VGG38 fails to train under exactly that init.

Traps: PyTorch's ``kaiming_normal_``/``xavier_normal_`` are *not* truncated (our
``he_normal``/``glorot_normal``); Keras' ``HeNormal``/``GlorotNormal`` *are* (our
``he_truncated_normal``/``glorot_truncated_normal``).

Everything draws from minideep's seeded CPU generator, so ``md.manual_seed(s)`` makes a
model's initial weights reproducible.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..autograd import Tensor
from ..backend import get_generator, to_device, device_of

#: std of N(0, 1) truncated to (-2, 2) (scipy.stats.truncnorm.std(-2, 2)).
TRUNCATED_NORMAL_STD = 0.87962566103423978

Scheme = Callable[[tuple[int, ...], int, int, np.random.Generator], np.ndarray]


def calculate_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: (in, out) for (out, in); times kh*kw for (out, in, kh, kw).

    A 1-D shape (a bias or a BN scale) has fan_in = fan_out = its length.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) == 0:
        raise ValueError("calculate_fans: a scalar has no fan-in or fan-out")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])  # kh * kw for a conv kernel, 1 for a matrix
    return shape[1] * receptive, shape[0] * receptive


def truncated_normal(shape: tuple[int, ...], std: float, rng: np.random.Generator) -> np.ndarray:
    """N(0, std^2) with every value outside +-2 std redrawn until none is (TensorFlow's rule)."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2
    return values * std


# --8<-- [start:variance_scaling]
def variance_scaling(scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal") -> Scheme:
    """The scheme with Var(W) = scale / n, n = fan_in, fan_out or their mean (see the module docstring).

    Args:
        scale: s in Var = s / n (2 for He with ReLU, 1 for Glorot).
        mode: "fan_in", "fan_out" or "fan_avg".
        distribution: "normal", "uniform" or "truncated_normal".
    """
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise ValueError(f"variance_scaling: mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
    if distribution not in ("normal", "uniform", "truncated_normal"):
        raise ValueError(
            f"variance_scaling: distribution must be 'normal', 'uniform' or 'truncated_normal', got {distribution!r}"
        )
    if scale <= 0:
        raise ValueError(f"variance_scaling: scale must be positive, got {scale}")

    def scheme(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(n, 1)
        if distribution == "normal":
            return rng.normal(0.0, math.sqrt(variance), shape)
        if distribution == "uniform":
            limit = math.sqrt(3 * variance)
            return rng.uniform(-limit, limit, shape)
        return truncated_normal(shape, math.sqrt(variance) / TRUNCATED_NORMAL_STD, rng)

    scheme.__name__ = f"variance_scaling(scale={scale}, mode={mode!r}, distribution={distribution!r})"
    return scheme
# --8<-- [end:variance_scaling]


def pytorch_default(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """PyTorch's Linear/Conv2d weight init, kaiming_uniform_(a=sqrt(5)): U(+-1/sqrt(fan_in))."""
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, shape)


def constant(value: float) -> Scheme:
    """The scheme that fills with ``value``."""

    def scheme(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(shape, float(value))

    scheme.__name__ = f"constant({value})"
    return scheme


def small_normal(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """W ~ N(0, 0.01^2) whatever the layer's size: a fixed scale that ignores the width (an extra of chapter 02)."""
    return rng.normal(0.0, 0.01, shape)


def standard_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """Glorot & Bengio's (2010, Eq. 1) "standard" init W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), Var = 1 / (3 fan_in).

    The same weights as ``pytorch_default``, but biases start at 0 (as in the paper).
    """
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, shape)


he_normal = variance_scaling(2.0, "fan_in", "normal")
he_uniform = variance_scaling(2.0, "fan_in", "uniform")
he_truncated_normal = variance_scaling(2.0, "fan_in", "truncated_normal")
glorot_normal = variance_scaling(1.0, "fan_avg", "normal")
glorot_uniform = variance_scaling(1.0, "fan_avg", "uniform")
glorot_truncated_normal = variance_scaling(1.0, "fan_avg", "truncated_normal")
zeros = constant(0.0)
ones = constant(1.0)

#: Every scheme a layer's ``init=`` accepts by name.
SCHEMES: dict[str, Scheme] = {
    "pytorch_default": pytorch_default,
    "small_normal": small_normal,
    "standard_uniform": standard_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "he_truncated_normal": he_truncated_normal,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "glorot_truncated_normal": glorot_truncated_normal,
    "zeros": zeros,
    "ones": ones,
}
# PyTorch's names for the same schemes.
SCHEMES.update(kaiming_normal=he_normal, kaiming_uniform=he_uniform, xavier_normal=glorot_normal,
               xavier_uniform=glorot_uniform)


def get_scheme(init: str | Scheme | None) -> Scheme:
    """The scheme named ``init`` (None means "pytorch_default"), or ``init`` itself if callable."""
    if init is None:
        return pytorch_default
    if callable(init):
        return init
    if isinstance(init, str) and init in SCHEMES:
        return SCHEMES[init]
    raise ValueError(f"init: unknown scheme {init!r}; use a callable or one of {sorted(SCHEMES)}")


def initial_weight(shape: tuple[int, ...], init: str | Scheme | None, dtype: Any) -> np.ndarray:
    """A new weight array of ``shape`` drawn by the scheme ``init`` from the seeded generator."""
    fan_in, fan_out = calculate_fans(shape)
    values = np.asarray(get_scheme(init)(tuple(shape), fan_in, fan_out, get_generator(np)))
    if values.shape != tuple(shape):
        raise ValueError(f"init: scheme returned shape {values.shape}, expected {tuple(shape)}")
    return values.astype(dtype)


def initial_bias(size: int, fan_in: int, init: str | Scheme | None, dtype: Any) -> np.ndarray:
    """A new bias: U(+-1/sqrt(fan_in)) under PyTorch's default init, zeros under every other scheme.

    He, Glorot and Keras all start biases at zero; only PyTorch's layers draw them.
    """
    if get_scheme(init) is pytorch_default:
        return pytorch_default((size,), fan_in, size, get_generator(np)).astype(dtype)
    return np.zeros(size, dtype=dtype)


def init_(tensor: Tensor, init: str | Scheme, fan_in: int | None = None, fan_out: int | None = None) -> Tensor:
    """Redraw ``tensor`` in place with the scheme ``init`` (fans from its shape unless given).

    Example::

        nn.init.init_(layer.weight, "he_normal")
    """
    default_in, default_out = calculate_fans(tensor.shape)
    fan_in = default_in if fan_in is None else fan_in
    fan_out = default_out if fan_out is None else fan_out
    values = np.asarray(get_scheme(init)(tuple(tensor.shape), fan_in, fan_out, get_generator(np)))
    tensor.data[...] = to_device(values.astype(tensor.dtype), device_of(tensor.data))
    return tensor


def constant_(tensor: Tensor, value: float) -> Tensor:
    """Fill ``tensor`` with ``value`` in place."""
    tensor.data[...] = value
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` with zeros in place."""
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` with ones in place."""
    return constant_(tensor, 1.0)
