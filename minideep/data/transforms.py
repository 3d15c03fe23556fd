"""Batch transforms: scaling, normalisation and augmentation of a whole ``(N, C, H, W)`` batch.

Each transform works on the batch's own array module (``xp`` is NumPy or CuPy, from
``minideep.backend.get_array_module``), so a batch on the GPU stays there, and none loops
over samples in Python: a random crop of a whole batch is one fancy-indexing gather.

Random transforms take a ``numpy.random.Generator`` (``rng``). The few random numbers per
sample (crop offsets, flip coins) are drawn from it on the CPU, so a seed gives the same
augmentation on either device; Gaussian noise on the GPU is drawn there from a seed taken
from ``rng``. Functions (``random_crop(x, 32, 4, rng)``) and classes (``RandomCrop(32, 4)``,
composed with ``Compose``) do the same; the ``DataLoader`` calls ``transform(x, rng)``.

Example:
    >>> train_tf = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
    ...                     ToFloat(), Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    >>> x = np.zeros((8, 3, 32, 32), np.uint8)
    >>> train_tf(x, np.random.default_rng(0)).shape
    (8, 3, 32, 32)
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..backend import DEFAULT_DTYPE, get_array_module

#: Per-channel mean and std of CIFAR-10's training images, as the VGG coursework and many
#: CIFAR repositories use them (also for CIFAR-100).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)

def _rng(rng: Any) -> np.random.Generator:
    """A Generator from a Generator, an int seed, or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_batch(x: Any, op: str) -> None:
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"{op}: expected a batch of shape (N, C, H, W), got shape {getattr(x, 'shape', type(x))}")


def to_float(x: Any, dtype: Any = DEFAULT_DTYPE) -> Any:
    """Integer pixels to floats in [0, 1]: ``y = x / 255``; float input is only cast to ``dtype``.

    Shapes: any -> same. Example: ``to_float(np.array([0, 255], np.uint8))`` is ``[0., 1.]``.
    """
    if np.issubdtype(x.dtype, np.integer):
        y = x.astype(dtype)
        y /= 255  # in place: a second temporary of the batch's size costs more than the division
        return y
    return x.astype(dtype, copy=False)


def normalize(x: Any, mean: Sequence[float], std: Sequence[float]) -> Any:
    """Per-channel standardisation: ``y[:, c] = (x[:, c] - mean[c]) / std[c]``.

    Integer (uint8) input is first scaled to [0, 1] with ``to_float``, so ``mean``/``std``
    are always in [0, 1] units, as torchvision's ``Normalize`` after ``ToTensor``.

    Shapes: ``(N, C, H, W)`` -> same; ``mean`` and ``std`` have ``C`` (or 1) entries.
    """
    _check_batch(x, "normalize")
    if np.issubdtype(x.dtype, np.integer):
        x = to_float(x)
    xp = get_array_module(x)
    mean_arr = xp.asarray(mean, dtype=x.dtype).reshape(1, -1, 1, 1)
    std_arr = xp.asarray(std, dtype=x.dtype).reshape(1, -1, 1, 1)
    if mean_arr.shape[1] not in (1, x.shape[1]) or std_arr.shape[1] not in (1, x.shape[1]):
        raise ValueError(
            f"normalize: mean ({mean_arr.shape[1]} values) and std ({std_arr.shape[1]} values) "
            f"must have 1 or C={x.shape[1]} entries"
        )
    if bool((std_arr <= 0).any()):
        raise ValueError(f"normalize: std must be positive, got {list(std)}")
    y = x - mean_arr
    y /= std_arr
    return y


def pad(x: Any, padding: int | tuple[int, int, int, int]) -> Any:
    """Zero padding of the two spatial axes: ``padding`` on every side, or (top, bottom, left, right)."""
    _check_batch(x, "pad")
    top, bottom, left, right = (padding,) * 4 if isinstance(padding, (int, np.integer)) else padding
    if min(top, bottom, left, right) < 0:
        raise ValueError(f"pad: padding must be >= 0, got {padding}")
    if top == bottom == left == right == 0:
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def pad_to(x: Any, size: int) -> Any:
    """Zero-pad ``(N, C, H, W)`` to ``(N, C, size, size)``, centred (28 x 28 -> 32 x 32 adds 2 per side)."""
    _check_batch(x, "pad_to")
    h, w = x.shape[2:]
    if h > size or w > size:
        raise ValueError(f"pad_to: images of {h}x{w} are larger than size={size}")
    top, left = (size - h) // 2, (size - w) // 2
    return pad(x, (top, size - h - top, left, size - w - left))


def repeat_channels(x: Any, channels: int = 3) -> Any:
    """Repeat a one-channel batch to ``channels`` identical channels: ``(N, 1, H, W)`` -> ``(N, channels, H, W)``."""
    _check_batch(x, "repeat_channels")
    if x.shape[1] == channels:
        return x
    if x.shape[1] != 1:
        raise ValueError(f"repeat_channels: can only repeat a 1-channel batch, got {x.shape[1]} channels")
    return get_array_module(x).repeat(x, channels, axis=1)


def resize(x: Any, size: int, grow: str = "pad") -> np.ndarray:
    """Square uint8 images ``(N, C, H, H)`` to ``(N, C, size, size)``, done once on a whole split.

    Larger images are average-pooled by the factor ``f = ceil(H / size)`` (rows and columns
    past a multiple of ``f`` are dropped), rounded to uint8 and zero-padded (centred) to
    ``size``: 28 x 28 to 8 becomes 7 x 7 then 8 x 8. Smaller ones are zero-padded, centred
    (``grow="pad"``, as :func:`pad_to`), or padded to the smallest divisor of ``size`` that
    holds them and each pixel repeated (``grow="repeat"``, nearest upsampling: 28 -> 32 -> 64).
    """
    _check_batch(x, "resize")
    if grow not in ("pad", "repeat"):
        raise ValueError(f"resize: grow must be 'pad' or 'repeat', got {grow!r}")
    x = np.asarray(x)
    n, c, h, w = x.shape
    if h != w:
        raise ValueError(f"resize: images must be square, got {h}x{w}")
    if h > size:
        f = -(-h // size)
        pooled = x[:, :, : h // f * f, : w // f * f].astype(np.float32).reshape(n, c, h // f, f, w // f, f)
        x = np.rint(pooled.mean(axis=(3, 5))).astype(np.uint8)
        return np.ascontiguousarray(pad_to(x, size))
    if h == size:
        return x
    if grow == "pad":
        return np.ascontiguousarray(pad_to(x, size))
    target = next(d for d in range(h, size + 1) if size % d == 0)
    k = size // target
    return np.ascontiguousarray(pad_to(x, target).repeat(k, axis=2).repeat(k, axis=3))


def channel_statistics(x: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images ``(N, C, H, W)``, in [0, 1] units, to 4 decimals."""
    _check_batch(x, "channel_statistics")
    pixels = np.asarray(x).astype(np.float64) / 255.0
    return tuple(pixels.mean(axis=(0, 2, 3)).round(4)), tuple(pixels.std(axis=(0, 2, 3)).round(4))


def random_crop(x: Any, size: int | tuple[int, int], padding: int = 0, rng: Any = None) -> Any:
    """A random ``size`` crop of each image after zero-padding it by ``padding`` on every side.

    Image ``n`` is cropped at an offset ``(i_n, j_n)`` drawn uniformly from
    ``0 .. H + 2p - h`` and ``0 .. W + 2p - w``:
    ``y[n, c, a, b] = x_padded[n, c, i_n + a, j_n + b]``. The whole batch is one gather:
    a strided view lists every possible crop of every image without copying, and fancy
    indexing picks crop ``(i_n, j_n)`` of image ``n``. With ``size=32, padding=4`` this is
    the standard CIFAR augmentation (torchvision's ``RandomCrop(32, padding=4)``).

    Shapes: ``(N, C, H, W)`` -> ``(N, C, h, w)``.
    """
    _check_batch(x, "random_crop")
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    padded = xp_contiguous(pad(x, padding))
    n, c, hp, wp = padded.shape
    if h > hp or w > wp:
        raise ValueError(f"random_crop: crop {h}x{w} is larger than the padded image {hp}x{wp}")
    gen = _rng(rng)
    xp = get_array_module(x)
    # --8<-- [start:random_crop]
    top = xp.asarray(gen.integers(0, hp - h + 1, size=n))
    left = xp.asarray(gen.integers(0, wp - w + 1, size=n))
    # windows[n, i, j] is the (C, h, w) crop of image n whose top-left corner is (i, j).
    s_n, s_c, s_h, s_w = padded.strides
    windows = _as_strided(padded, (n, hp - h + 1, wp - w + 1, c, h, w), (s_n, s_h, s_w, s_c, s_h, s_w))
    return windows[xp.arange(n), top, left]
    # --8<-- [end:random_crop]


def xp_contiguous(x: Any) -> Any:
    """``x`` in C order (the strided crop view assumes nothing else)."""
    return get_array_module(x).ascontiguousarray(x)


def _as_strided(x: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    """A read-only view of ``x`` with the given shape and byte strides (NumPy or CuPy)."""
    xp = get_array_module(x)
    if xp is np:
        return np.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(x, shape, strides)


def random_horizontal_flip(x: Any, p: float = 0.5, rng: Any = None) -> Any:
    """Mirror each image left-right with probability ``p``: ``y[n] = x[n, :, :, ::-1]`` if ``u_n < p``.

    Shapes: ``(N, C, H, W)`` -> same.
    """
    _check_batch(x, "random_horizontal_flip")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random_horizontal_flip: p must be in [0, 1], got {p}")
    xp = get_array_module(x)
    flip = xp.asarray(np.flatnonzero(_rng(rng).random(len(x)) < p))
    out = x.copy()
    out[flip] = x[flip][..., ::-1]
    return out


def gaussian_noise(x: Any, std: float, rng: Any = None) -> Any:
    """Additive noise: ``y = x + std * z`` with ``z ~ N(0, 1)`` per element (integers are scaled to [0, 1] first).

    On the GPU the noise is drawn there, by one device generator per ``rng`` (a data loader
    passes the same ``rng`` to every batch of an epoch), seeded once from ``rng``.
    """
    _check_batch(x, "gaussian_noise")
    if std < 0:
        raise ValueError(f"gaussian_noise: std must be >= 0, got {std}")
    x = to_float(x) if np.issubdtype(x.dtype, np.integer) else x
    xp = get_array_module(x)
    gen = _rng(rng)
    if xp is np:
        z = gen.standard_normal(x.shape, dtype=np.float64 if x.dtype == np.float64 else np.float32)
    else:  # CuPy: draw on the device, reproducibly under the seed
        z = _device_generator(gen, xp).standard_normal(x.shape, dtype=x.dtype)
    return x + x.dtype.type(std) * z.astype(x.dtype, copy=False)


# The device generators of the last few host generators (kept with them, so an id is never reused).
_device_generators: dict[int, tuple[np.random.Generator, Any]] = {}


def _device_generator(gen: np.random.Generator, xp: Any) -> Any:
    """The device generator that belongs to ``gen``: made once (seeded from it), not once per batch."""
    entry = _device_generators.get(id(gen))
    if entry is None or entry[0] is not gen:
        if len(_device_generators) >= 8:
            _device_generators.pop(next(iter(_device_generators)))
        entry = _device_generators[id(gen)] = (gen, xp.random.RandomState(int(gen.integers(2**31 - 1))))
    return entry[1]


# ------------------------------------------------------------------------------------------
# The same as callable objects, for composing a pipeline once and reusing it
# ------------------------------------------------------------------------------------------


class Transform:
    """A batch transform: ``t(x, rng=None)`` returns the transformed batch."""

    def __call__(self, x: Any, rng: Any = None) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order, sharing one random generator: ``y = t_k(...t_1(x))``."""

    def __init__(self, transforms: Sequence[Callable[..., Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any, rng: Any = None) -> Any:
        gen = _rng(rng)
        for t in self.transforms:
            x = t(x, gen)
        return x


class ToFloat(Transform):
    """``to_float``: integer pixels to [0, 1] floats."""

    def __init__(self, dtype: Any = DEFAULT_DTYPE) -> None:
        self.dtype = dtype

    def __call__(self, x: Any, rng: Any = None) -> Any:
        return to_float(x, self.dtype)


class Normalize(Transform):
    """``normalize``: ``(x - mean[c]) / std[c]`` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = tuple(mean), tuple(std)
        # Checked once: a NaN mean or a zero std (a constant channel) would make every image NaN/inf.
        if not all(np.isfinite(self.mean)) or not all(np.isfinite(self.std)) or min(self.std, default=1) <= 0:
            raise ValueError(f"Normalize: mean must be finite and std finite and positive, got mean={list(mean)}, std={list(std)}")

    def __call__(self, x: Any, rng: Any = None) -> Any:
        return normalize(x, self.mean, self.std)


class RandomCrop(Transform):
    """``random_crop``: zero-pad by ``padding``, then a random ``size`` crop per image."""

    def __init__(self, size: int | tuple[int, int], padding: int = 0) -> None:
        self.size, self.padding = size, padding

    def __call__(self, x: Any, rng: Any = None) -> Any:
        return random_crop(x, self.size, self.padding, rng)


class RandomHorizontalFlip(Transform):
    """``random_horizontal_flip``: mirror each image with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, x: Any, rng: Any = None) -> Any:
        return random_horizontal_flip(x, self.p, rng)


class GaussianNoise(Transform):
    """``gaussian_noise``: add ``std * N(0, 1)`` to every value."""

    def __init__(self, std: float) -> None:
        self.std = std

    def __call__(self, x: Any, rng: Any = None) -> Any:
        return gaussian_noise(x, self.std, rng)


class PadTo(Transform):
    """``pad_to``: centred zero padding to ``size x size``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, x: Any, rng: Any = None) -> Any:
        return pad_to(x, self.size)


class RepeatChannels(Transform):
    """``repeat_channels``: one channel to ``channels`` identical ones."""

    def __init__(self, channels: int = 3) -> None:
        self.channels = channels

    def __call__(self, x: Any, rng: Any = None) -> Any:
        return repeat_channels(x, self.channels)


def cifar_train_transform(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> Compose:
    """The standard CIFAR training pipeline: crop 32 with padding 4, flip, scale, normalise."""
    return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), ToFloat(), Normalize(mean, std)])


def cifar_eval_transform(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> Compose:
    """The CIFAR evaluation pipeline: scale and normalise only."""
    return Compose([ToFloat(), Normalize(mean, std)])
