"""Srivastava, Greff and Schmidhuber (2015): plain and highway networks, fully connected and convolutional.

The optimisation experiment (their Section 3.1, Fig. 1) compares, at depths 10, 20, 50
and 100, a plain network with a highway network of about the same size:

    PlainMLP(depth):    flatten -> act(W_1 x + b_1)                          (the entry layer)
                        -> (depth - 1) x act(W_l h + b_l)                    (plain layers)
                        -> classifier (width -> classes, softmax in the loss)
    HighwayMLP(depth):  flatten -> act(W_1 x + b_1)                          (the entry layer, plain)
                        -> (depth - 1) x [H(h) T(h) + h (1 - T(h))]          (nn.Highway layers)
                        -> classifier

The entry layer changes the width, so it is plain (a highway layer keeps its width). The
paper's widths give every hidden layer about 5,000 parameters: 71 units per plain layer
(71 * 71 + 71 = 5,112) and 50 per highway layer (2 * (50 * 50 + 50) = 5,100).

The convolutional highway network of their Table 1 (MNIST, 10 layers, official Caffe
topology ``examples/highways/mnist-10layers``), with w channels throughout:

    dropout 0.2 -> conv 5x5 (w, no padding) + ReLU
    -> 2 x HighwayConv2d 3x3 -> max-pool 3x3/2 -> dropout 0.3
    -> 3 x HighwayConv2d 3x3 -> max-pool 3x3/2 -> dropout 0.4
    -> 3 x HighwayConv2d 3x3 -> max-pool 2x2/2 -> dropout 0.5
    -> flatten -> linear (w * 3 * 3 -> 10)

Caffe rounds pooled sizes up (24 -> 12 -> 6 -> 3 for 28 x 28 digits), which
``CeilMaxPool2d`` reproduces; then w = 16 has 38,986 parameters and w = 32 has 151,690,
the paper's 39K and 151K. Every model is a sequence of layers in ``self.layers`` (an
``nn.Sequential``), so the diagnostics (``chain_rule_gains``, ``gate_analysis``,
``lesion_study``) walk it layer by layer.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import ops
from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from ..nn import Conv2d, Dropout, Flatten, Highway, HighwayConv2d, Linear, Module, Sequential, make_activation

#: The paper's widths: about 5,000 parameters per hidden layer for both families.
PLAIN_WIDTH, HIGHWAY_WIDTH = 71, 50
#: Exact parameter counts of the official 10-layer conv highway nets (Table 1 rounds them to 39K and 151K).
PAPER_CONV_PARAMETERS = {16: 38_986, 32: 151_690}


def gate_bias_for_depth(depth: int) -> float:
    """The initial transform-gate bias by depth: -1 up to 10 layers, -2 up to 20, -3 beyond.

    Srivastava et al. suggest "-1, -2 and -3 for ... depth approximately 10, 20 and 30"; a
    more negative b_T makes a deeper network start closer to carrying its input unchanged.
    """
    if not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"gate_bias_for_depth: depth must be a positive int, got {depth!r}")
    return -1.0 if depth <= 10 else -2.0 if depth <= 20 else -3.0


def normal_std(std: float):
    """An init scheme (see ``minideep.nn.init``) drawing W ~ N(0, std^2), Caffe's "gaussian" filler."""

    def scheme(shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, std, shape)

    scheme.__name__ = f"normal_std({std})"
    return scheme


class Dense(Module):
    """y = act(x W^T + b): one plain fully connected layer with its activation.

    Shapes: (N, in_features) -> (N, out_features).

    Args:
        in_features, out_features: widths.
        activation: "relu" (default), "tanh", ... or a Module.
        init: weight init scheme (see ``minideep.nn.init``).
        dtype: parameter dtype.

    Parameter names: ``linear.weight``, ``linear.bias``.
    """

    def __init__(self, in_features: int, out_features: int, activation: str | Module = "relu", init: Any = None,
                 dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        self.linear = Linear(in_features, out_features, init=init, dtype=dtype)
        self.activation = make_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.linear(x))


class ConvReLU(Module):
    """y = relu(conv(x)), a k x k convolution (the conv highway nets' plain layers); no padding by default.

    Shapes: (N, C_in, H, W) -> (N, C_out, H - k + 1 + 2 padding, W - k + 1 + 2 padding).

    Parameter names: ``conv.weight``, ``conv.bias``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, init: Any = None,
                 dtype: Any = DEFAULT_DTYPE, padding: int = 0) -> None:
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size, padding=padding, init=init, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(self.conv(x))


def ceil_pool_size(size: int, kernel: int, stride: int) -> int:
    """Caffe's pooled size, ceil((size - kernel) / stride) + 1 (PyTorch's ``ceil_mode=True``)."""
    return -(-(size - kernel) // stride) + 1


class CeilMaxPool2d(Module):
    """Max pooling that rounds the output size up, as Caffe does: H_out = ceil((H - k) / s) + 1.

    The last window may hang over the bottom/right edge; the input is padded there with
    -inf so that the window takes the maximum of the pixels it does cover.

    Shapes: (N, C, H, W) -> (N, C, H_out, W_out).

    Args:
        kernel_size: the window (an int, square).
        stride: the step (an int).
    """

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"CeilMaxPool2d: input must be (N, C, H, W), got shape {x.shape}")
        k, s = self.kernel_size, self.stride
        extra = [(ceil_pool_size(n, k, s) - 1) * s + k - n for n in x.shape[2:]]
        if any(extra):
            x = ops.pad(x, [(0, 0), (0, 0), (0, extra[0]), (0, extra[1])], value=-math.inf)
        return ops.max_pool2d(x, k, s)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, ceil_mode=True"


def _check_depth(fn: str, depth: int) -> None:
    if not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"{fn}: depth must be a positive int (hidden layers, entry layer included), got {depth!r}")


class PlainMLP(Module):
    """A plain fully connected network: ``depth`` layers y = act(W h + b), then a linear classifier.

    Shapes: (N, *) -> (N, num_classes) logits; the input is flattened to in_features.

    Args:
        depth: hidden layers, the entry layer included (10, 20, 50, 100 in the paper).
        width: units per hidden layer (default 71, the paper's plain width).
        in_features: input size after flattening (default 784, a 28 x 28 image).
        num_classes: outputs (default 10).
        activation: "relu" (default) or "tanh", ...
        init: weight init of every layer (default "glorot_uniform", Glorot's "normalized
            initialization"); see ``minideep.nn.init``.
        dtype: parameter dtype.

    Parameter names: ``layers.1.linear.weight`` (entry), ``layers.2.linear.weight``, ...,
    ``classifier.weight``; ``layers.0`` is the flatten.

    Example::

        net = PlainMLP(50)                     # 50 hidden layers of 71 units
        net(md.tensor(np.zeros((8, 1, 28, 28)))).shape   # (8, 10)
    """

    def __init__(self, depth: int, width: int = PLAIN_WIDTH, in_features: int = 784, num_classes: int = 10,
                 activation: str = "relu", init: Any = "glorot_uniform", dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        _check_depth("PlainMLP", depth)
        self.depth, self.width = int(depth), width
        hidden = [Dense(in_features, width, activation, init, dtype)]
        hidden += [Dense(width, width, activation, init, dtype) for _ in range(depth - 1)]
        self.layers = Sequential(Flatten(), *hidden)
        self.classifier = Linear(width, num_classes, init=init, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.layers(x))

    def extra_repr(self) -> str:
        return f"depth={self.depth}, width={self.width}"


class HighwayMLP(Module):
    """A fully connected highway network: a plain entry layer, ``depth - 1`` highway layers, a classifier.

    Every highway layer computes y = H(h) T(h) + h (1 - T(h)) with H(h) = act(W_H h + b_H)
    and T(h) = sigmoid(W_T h + b_T), b_T starting at ``gate_bias`` (``nn.Highway``).

    Shapes: (N, *) -> (N, num_classes) logits; the input is flattened to in_features.

    Args:
        depth: hidden layers, the plain entry layer included (so depth - 1 highway layers).
        width: units per layer (default 50, the paper's highway width).
        in_features, num_classes: as ``PlainMLP``.
        activation: of the entry layer and of every H, "relu" (default) or "tanh", ...
        gate_bias: initial b_T; default ``gate_bias_for_depth(depth)``.
        init: weight init of every W (default "glorot_uniform").
        dtype: parameter dtype.

    Attributes:
        highways: the highway layers in order (for gates and lesions).

    Parameter names: ``layers.1.linear.weight`` (entry), ``layers.2.transform.weight``,
    ``layers.2.gate.weight``, ..., ``classifier.weight``; ``layers.0`` is the flatten.

    Example::

        net = HighwayMLP(50)                   # entry layer + 49 highway layers of 50 units, b_T = -3
        net(md.tensor(np.zeros((8, 1, 28, 28)))).shape   # (8, 10)
    """

    def __init__(self, depth: int, width: int = HIGHWAY_WIDTH, in_features: int = 784, num_classes: int = 10,
                 activation: str = "relu", gate_bias: float | None = None, init: Any = "glorot_uniform",
                 dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        _check_depth("HighwayMLP", depth)
        self.depth, self.width = int(depth), width
        self.gate_bias = gate_bias_for_depth(depth) if gate_bias is None else float(gate_bias)
        entry = Dense(in_features, width, activation, init, dtype)
        highways = [Highway(width, activation, self.gate_bias, init, dtype=dtype) for _ in range(depth - 1)]
        self.layers = Sequential(Flatten(), entry, *highways)
        self.classifier = Linear(width, num_classes, init=init, dtype=dtype)

    @property
    def highways(self) -> list[Highway]:
        return [m for m in self.layers if isinstance(m, Highway)]

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.layers(x))

    def extra_repr(self) -> str:
        return f"depth={self.depth}, width={self.width}, gate_bias={self.gate_bias}"


class _ConvHighwayStack(Module):
    """A ``layers`` stack of convolutions (highway and plain) and a ``classifier`` on its output."""

    @property
    def highways(self) -> list[HighwayConv2d]:
        """The highway convolutions, in order (their gates are what chapter 04 analyses)."""
        return [m for m in self.layers if isinstance(m, HighwayConv2d)]

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.layers(x))


class ConvHighwayNet(_ConvHighwayStack):
    """The 10-layer convolutional highway network of Srivastava et al. (2015, Table 1) for MNIST.

    See the module docstring for the layers: a 5 x 5 plain convolution, three stages of
    3 x 3 highway convolutions (2, 3, 3 layers) each followed by Caffe-style max pooling and
    dropout, and a linear classifier. Every convolution starts He-normal (the official
    code's "xavier" filler is He's), the classifier N(0, 0.1^2), biases zero, b_T = -1.

    Shapes: (N, in_channels, S, S) -> (N, num_classes) logits (S = 28 gives 3 x 3 maps before
    the classifier).

    Args:
        width: channels of every layer (16 or 32 in the paper).
        in_channels: input channels (default 1).
        num_classes: outputs (default 10).
        image_size: input height and width (default 28).
        gate_bias: initial b_T of every highway layer (default -1, the official value).
        dropout: the official dropout (0.2 on the input, then 0.3, 0.4, 0.5 after the pools).
        dtype: parameter dtype.

    Example::

        net = ConvHighwayNet(16)
        net.num_parameters()   # 38986, the paper's "39K"
    """

    def __init__(self, width: int, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 gate_bias: float = -1.0, dropout: bool = True, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"ConvHighwayNet: width must be a positive int, got {width!r}")
        if image_size < 5 + 4:
            raise ValueError(f"ConvHighwayNet: image_size must be at least 9 (5x5 conv, then three pools), got {image_size}")
        self.width, self.gate_bias = width, gate_bias
        rates = (0.2, 0.3, 0.4, 0.5) if dropout else (0.0,) * 4

        def drop(p: float) -> list[Module]:
            return [Dropout(p)] if p > 0 else []

        layers: list[Module] = drop(rates[0]) + [ConvReLU(in_channels, width, 5, init="he_normal", dtype=dtype)]
        size = image_size - 4
        for n_highway, (kernel, stride), p in zip((2, 3, 3), ((3, 2), (3, 2), (2, 2)), rates[1:]):
            layers += [HighwayConv2d(width, 3, "relu", gate_bias, init="he_normal", dtype=dtype) for _ in range(n_highway)]
            layers += [CeilMaxPool2d(kernel, stride)] + drop(p)
            size = ceil_pool_size(size, kernel, stride)
        layers += [Flatten()]
        self.layers = Sequential(*layers)
        self.classifier = Linear(width * size * size, num_classes, init=normal_std(0.1), dtype=dtype)
        self.feature_size = size


    def extra_repr(self) -> str:
        return f"width={self.width}, gate_bias={self.gate_bias}, feature_size={self.feature_size}"


class ConvHighwayCIFAR(_ConvHighwayStack):
    """The official 19-layer convolutional highway net for CIFAR (Srivastava et al. 2015, Table 3; "Highway B").

    From ``examples/highways/cifar10-19layers`` of the official Caffe code:

        dropout 0.2 -> conv 3x3 (32) + ReLU -> 4 x HighwayConv2d 3x3 (32)  -> max-pool 2x2/2 -> dropout 0.2
                    -> conv 3x3 (80) + ReLU -> 5 x HighwayConv2d 3x3 (80)  -> max-pool 2x2/2 -> dropout 0.2
                    -> conv 3x3 (128) + ReLU -> 5 x HighwayConv2d 3x3 (128)
                    -> conv 1x1 (100) + ReLU -> average pool 8x8 -> dropout 0.2 -> linear (100 -> classes)

    1 + 4 + 1 + 5 + 1 + 5 + 1 + 1 = 19 layers; 2,256,838 parameters for 10 classes (the
    paper's "~2.3M"), 2,265,928 for 100. Convolutions He-normal (the fork's "xavier"), the
    classifier N(0, 0.05^2), biases zero, b_T = -2 (the guideline for about 20 layers).
    The official conv1's filler is mis-specified (``value`` instead of ``std``); He-normal here.

    Shapes: (N, 3, 32, 32) -> (N, num_classes) logits.

    Example::

        ConvHighwayCIFAR(10).num_parameters()   # 2256838
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, gate_bias: float = -2.0,
                 dropout: bool = True, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"ConvHighwayCIFAR: num_classes must be a positive int, got {num_classes!r}")
        p = 0.2 if dropout else 0.0
        drop = [Dropout(p)] if p > 0 else []
        layers: list[Module] = list(drop)
        channels = in_channels
        for stage, (width, n_highway) in enumerate(((32, 4), (80, 5), (128, 5))):
            layers.append(ConvReLU(channels, width, 3, init="he_normal", dtype=dtype, padding=1))
            layers += [HighwayConv2d(width, 3, "relu", gate_bias, init="he_normal", dtype=dtype) for _ in range(n_highway)]
            if stage < 2:
                layers += [CeilMaxPool2d(2, 2)] + ([Dropout(p)] if p > 0 else [])
            channels = width
        layers += [ConvReLU(channels, 100, 1, init="he_normal", dtype=dtype), GlobalAveragePool()]
        layers += [Dropout(p)] if p > 0 else []
        self.layers = Sequential(*layers)
        self.classifier = Linear(100, num_classes, init=normal_std(0.05), dtype=dtype)
        self.gate_bias = gate_bias


class GlobalAveragePool(Module):
    """(N, C, H, W) -> (N, C): the mean over the pixels (the official net's 8x8 average pool on 8x8 maps)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"GlobalAveragePool: expected (N, C, H, W), got shape {x.shape}")
        return x.mean(axis=(2, 3))
