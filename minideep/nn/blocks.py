"""The blocks the very-deep-network papers are about: residual, highway, skip-to-head.

Each block gives the gradient a short path back to early layers:

- ``ResidualBlock`` (He et al. 2015): y = act(F(x) + shortcut(x)); dy/dx contains the
  identity, so the gradient is not a product of many small per-layer gains.
- ``Highway`` / ``HighwayConv2d`` (Srivastava et al. 2015): y = H(x) T(x) + x (1 - T(x)); a
  gate T decides per unit how much of the input is carried through unchanged.
- ``SkipToHead`` (Gil): every layer's output is pooled down and concatenated with (or
  summed into) the features that reach the classifier, so each layer is one step from
  the loss.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from .. import ops
from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from . import init as init_schemes
from .activation import make_activation
from .batchnorm import BatchNorm2d
from .conv import Conv2d
from .linear import Linear
from .module import Module, ModuleList, Sequential
from .shape import Identity

SHORTCUTS = ("auto", "identity", "conv", "pool", "subsample")


class PoolShortcut(Module):
    """A parameter-free shortcut for a block that changes shape: downsample, then pad channels with zeros.

    y = pad_channels(P(x)), where P is a (stride x stride) average pool (``mode="avg"``) or
    keeps every stride-th pixel (``mode="subsample"``, He et al.'s option A), and the
    ``out_channels - in_channels`` extra channels are zeros appended after the input's.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, mode: str = "avg") -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"PoolShortcut: cannot pad {in_channels} channels down to {out_channels}; use shortcut='conv'"
            )
        if mode not in ("avg", "subsample"):
            raise ValueError(f"PoolShortcut: mode must be 'avg' or 'subsample', got {mode!r}")
        self.in_channels, self.out_channels, self.stride, self.mode = in_channels, out_channels, stride, mode

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = ops.avg_pool2d(x, self.stride) if self.mode == "avg" else x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        if extra:
            x = ops.pad(x, [(0, 0), (0, extra), (0, 0), (0, 0)])
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, mode={self.mode!r}"


class ResidualBlock(Module):
    """y = act(F(x) + S(x)),  F(x) = BN_1(conv_1(act(BN_0(conv_0(x))))).

    Two k x k convolutions (the first with ``stride``), each optionally followed by batch
    normalisation, an activation between them and one after the addition (He et al. 2015,
    Fig. 2). The shortcut S is the identity when the shape is unchanged; otherwise a 1x1
    convolution with the stride (plus BN when ``batch_norm``), or a parameter-free
    downsample with zero-padded channels (``"pool"``: average pool; ``"subsample"``: every
    stride-th pixel, He et al.'s option A).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H_out, W_out), H_out = ceil(H / stride)
    (``"pool"`` needs H and W divisible by the stride).

    Args:
        in_channels, out_channels: channel counts.
        stride: stride of the first convolution (default 1).
        batch_norm: BN after each convolution, before its activation (default True).
        shortcut: "auto" (identity if the shape is unchanged, else "conv"), "identity",
            "conv", "pool" or "subsample".
        activation: "relu" (default), "leaky_relu", "sigmoid", "tanh" or a Module.
        kernel_size: odd kernel size of both convolutions (default 3), padded to keep the size.
        bias: biases on the convolutions (default False: BN's beta makes them redundant).
        init: weight init of every convolution (see ``minideep.nn.init``).
        dtype: parameter dtype.

    Parameter names: ``conv_0``, ``bn_0``, ``conv_1``, ``bn_1``, and ``shortcut.0`` (conv),
    ``shortcut.1`` (BN) for a projection shortcut.

    Example::

        block = nn.ResidualBlock(16, 32, stride=2)   # 1x1 conv shortcut
        block(x).shape  # (N, 32, H/2, W/2) for x of shape (N, 16, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, batch_norm: bool = True,
                 shortcut: str = "auto", activation: str | Module = "relu", kernel_size: int = 3,
                 bias: bool = False, init: Any = None, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"ResidualBlock: shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        if not isinstance(kernel_size, int) or kernel_size % 2 == 0:
            raise ValueError(f"ResidualBlock: kernel_size must be an odd int (to keep the size), got {kernel_size!r}")
        reshapes = stride != 1 or in_channels != out_channels
        if shortcut == "identity" and reshapes:
            raise ValueError(
                f"ResidualBlock: an identity shortcut needs in_channels == out_channels and stride 1, got "
                f"{in_channels} -> {out_channels} with stride {stride}; use shortcut='conv', 'pool' or 'subsample'"
            )
        if shortcut == "auto":
            shortcut = "conv" if reshapes else "identity"
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.batch_norm, self.shortcut_kind = batch_norm, shortcut
        pad = kernel_size // 2
        self.conv_0 = Conv2d(in_channels, out_channels, kernel_size, stride, pad, bias=bias, init=init, dtype=dtype)
        self.bn_0 = BatchNorm2d(out_channels, dtype=dtype) if batch_norm else None
        self.conv_1 = Conv2d(out_channels, out_channels, kernel_size, 1, pad, bias=bias, init=init, dtype=dtype)
        self.bn_1 = BatchNorm2d(out_channels, dtype=dtype) if batch_norm else None
        self.activation = make_activation(activation)
        if shortcut == "identity":
            self.shortcut = Identity()
        elif shortcut == "conv":
            projection = [Conv2d(in_channels, out_channels, 1, stride, bias=bias, init=init, dtype=dtype)]
            if batch_norm:
                projection.append(BatchNorm2d(out_channels, dtype=dtype))
            self.shortcut = Sequential(*projection)
        else:
            self.shortcut = PoolShortcut(in_channels, out_channels, stride, "avg" if shortcut == "pool" else "subsample")

    def residual(self, x: Tensor) -> Tensor:
        """F(x), the residual branch alone (before the addition and the last activation)."""
        out = self.conv_0(x)
        if self.bn_0 is not None:
            out = self.bn_0(out)
        out = self.conv_1(self.activation(out))
        if self.bn_1 is not None:
            out = self.bn_1(out)
        return out

    # --8<-- [start:residual_forward]
    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.residual(x) + self.shortcut(x))
    # --8<-- [end:residual_forward]

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, stride={self.stride}, batch_norm={self.batch_norm}, "
                f"shortcut={self.shortcut_kind!r}")


class _Highway(Module):
    """The gate arithmetic shared by the dense and the convolutional highway layer."""

    def _setup(self, transform: Module, gate: Module, activation: str | Module, gate_bias: float) -> None:
        self.transform, self.gate = transform, gate
        self.activation = make_activation(activation)
        init_schemes.constant_(self.gate.bias, gate_bias)
        self.gate_bias = gate_bias

    # --8<-- [start:highway_forward]
    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.features:
            raise ValueError(
                f"{type(self).__name__}: input has {x.shape[1]} features/channels on axis 1 (shape {x.shape}) "
                f"but the layer has {self.features}; a highway layer keeps its width"
            )
        h = self.activation(self.transform(x))
        t = ops.sigmoid(self.gate(x))
        return h * t + x * (1 - t)
    # --8<-- [end:highway_forward]

    def extra_repr(self) -> str:
        return f"{self.features}, gate_bias={self.gate_bias}"


class Highway(_Highway):
    """y = H(x) * T(x) + x * (1 - T(x)),  H(x) = act(W_H x + b_H),  T(x) = sigmoid(W_T x + b_T).

    A fully connected highway layer (Srivastava et al. 2015, Eq. 3). T is the transform
    gate, 1 - T the carry gate; b_T starts at ``gate_bias`` (negative, so the layer starts
    by mostly carrying its input: Srivastava et al. suggest -1, -2, -3 for depths about 10,
    20, 30). The gradient (their Eq. 9): dL/dH = T g, dL/dT = (H - x) g, and x receives
    (1 - T) g directly, plus what flows back through H and T.

    Shapes: (N, features) -> (N, features).

    Args:
        features: width of input and output.
        activation: of H, "relu" (default), "tanh", ... or a Module.
        gate_bias: initial value of every b_T (default -2.0).
        init: weight init of W_H and W_T (see ``minideep.nn.init``); b_H follows the scheme.
        dtype: parameter dtype.

    The gate values T(x) of a forward pass are recorded, and a layer is lesioned (T = 0, so
    y = x), by forward hooks in :mod:`minideep.diagnostics` (``recorded_gates``, ``lesioned``),
    not by switches in the layer.

    Parameter names: ``transform.weight``, ``transform.bias``, ``gate.weight``, ``gate.bias``.
    """

    def __init__(self, features: int, activation: str | Module = "relu", gate_bias: float = -2.0, init: Any = None,
                 dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        self.features = features
        self._setup(Linear(features, features, init=init, dtype=dtype), Linear(features, features, init=init, dtype=dtype),
                    activation, gate_bias)


class HighwayConv2d(_Highway):
    """y = H(x) * T(x) + x * (1 - T(x)),  H(x) = act(conv_H(x)),  T(x) = sigmoid(conv_T(x)).

    The convolutional highway layer: H and T are k x k convolutions with the same receptive
    field and zero padding k // 2, so the output has the input's shape; the gate is one
    number per channel and pixel. Everything else as ``Highway``.

    Shapes: (N, channels, H, W) -> (N, channels, H, W).

    Args:
        channels: channels of input and output.
        kernel_size: odd kernel size (default 3).
        activation, gate_bias, init, dtype: as ``Highway``.

    Parameter names: ``transform.weight``, ``transform.bias``, ``gate.weight``, ``gate.bias``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, activation: str | Module = "relu", gate_bias: float = -2.0,
                 init: Any = None, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        if not isinstance(kernel_size, int) or kernel_size % 2 == 0:
            raise ValueError(f"HighwayConv2d: kernel_size must be an odd int (to keep the size), got {kernel_size!r}")
        self.features = channels
        pad = kernel_size // 2
        self._setup(Conv2d(channels, channels, kernel_size, padding=pad, init=init, dtype=dtype),
                    Conv2d(channels, channels, kernel_size, padding=pad, init=init, dtype=dtype),
                    activation, gate_bias)


class SkipToHead(Module):
    """Layers in sequence, with every tapped layer's output pooled down and sent to the head (Gil).

    With z_0 = x, z_i = layer_i(z_{i-1}) for i = 1..L, and P_i the max pool that brings z_i
    to the spatial size of the last output z_L (kernel = stride = size_i / size_L):

        mode="concat":  y = concat over channels of (z_L, P_i(z_i) for every tapped i)
        mode="sum":     y = z_L + sum over tapped i of P_i(z_i)

    Each tapped layer is then one pooling step from the features the classifier sees, so
    its gradient does not have to pass through all the later layers. "sum" needs every
    tapped output to have z_L's channel count; "concat" gives C_L + sum_i C_i channels.

    Shapes: (N, C, H, W) -> (N, C_out, h, w), (h, w) the spatial size of z_L; every tapped
    output's size must be a multiple of it.

    Args:
        layers: the modules to apply in order (a list, ModuleList or Sequential); group a
            conv and its activation into one ``Sequential`` to tap after the activation.
        mode: "concat" (default) or "sum".
        taps: indices of the layers whose outputs go to the head; default every layer but
            the last (whose output is z_L itself).

    Parameter names: ``layers.0...``, ``layers.1...``.

    Example::

        convs = [nn.Sequential(nn.Conv2d(3 if i == 0 else 16, 16, 3, padding=1), nn.ReLU()) for i in range(4)]
        body = nn.SkipToHead(convs[:2] + [nn.MaxPool2d(2)] + convs[2:], taps=[0, 1, 3])
        body(x).shape  # (N, 16 * 4, H/2, W/2) for x of shape (N, 3, H, W)
    """

    def __init__(self, layers: Iterable[Module], mode: str = "concat", taps: Sequence[int] | None = None) -> None:
        super().__init__()
        if mode not in ("concat", "sum"):
            raise ValueError(f"SkipToHead: mode must be 'concat' or 'sum', got {mode!r}")
        self.layers = ModuleList(layers)
        n = len(self.layers)
        if n == 0:
            raise ValueError("SkipToHead: needs at least one layer")
        taps = list(range(n - 1)) if taps is None else [int(t) for t in taps]
        for t in taps:
            if not 0 <= t < n - 1:
                raise ValueError(f"SkipToHead: tap {t} must index one of the first {n - 1} layers (0..{n - 2})")
        self.mode, self.taps = mode, sorted(set(taps))

    # --8<-- [start:skip_to_head_forward]
    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.taps:
                skips.append((i, x))
        if x.ndim != 4:
            raise ValueError(f"SkipToHead: the last layer's output must be (N, C, H, W), got {x.shape}")
        pooled = [self._pool_to(i, z, x.shape[2:]) for i, z in skips]
        if self.mode == "concat":
            return ops.cat([x] + pooled, axis=1)
        for i, z in zip((i for i, _ in skips), pooled):
            if z.shape[1] != x.shape[1]:
                raise ValueError(
                    f"SkipToHead(mode='sum'): layer {i} has {z.shape[1]} channels but the last layer has "
                    f"{x.shape[1]}; summing needs equal channel counts (or use mode='concat')"
                )
            x = x + z
        return x
    # --8<-- [end:skip_to_head_forward]

    @staticmethod
    def _pool_to(index: int, z: Tensor, size: tuple[int, int]) -> Tensor:
        """Max-pool z (N, C, H, W) down to ``size`` with kernel = stride = H / size."""
        if z.ndim != 4:
            raise ValueError(f"SkipToHead: layer {index}'s output must be (N, C, H, W), got {z.shape}")
        h, w = z.shape[2:]
        if h % size[0] or w % size[1]:
            raise ValueError(
                f"SkipToHead: layer {index}'s output is {h}x{w}, not a multiple of the head's {size[0]}x{size[1]}"
            )
        kernel = (h // size[0], w // size[1])
        return z if kernel == (1, 1) else ops.max_pool2d(z, kernel)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, taps={self.taps}"
