"""Gil's networks: a plain stack of 3x3 convolutions, with or without a path from every layer to the head.

The three variants of Gil, *Addressing issues with training deep networks*
(``shared/papers/gil-skip-to-head-concat-sum.txt``), exactly as its Methodology describes
them, with L = ``depth`` convolutional layers of K = ``kernels`` channels each:

    body:   L times  conv3x3 (stride 1, "same" zero padding, K kernels) -> ReLU
            with a 2x2 max pool followed by batch normalisation after every L/3-th layer
            (after layers 4, 8, 12 of 12; 23, 46, 69 of 69; 33, 66, 99 of 99; 40, 80, 120 of 120)
    head:   flatten -> FC 2048 -> ReLU -> dropout 0.5 -> FC 1024 -> ReLU -> dropout 0.5 -> FC 10
            (the softmax is in the loss, ``F.cross_entropy``)

- ``baseline``: the body alone (Gil's Figure 1).
- ``concat``: every layer's output z_l (after its ReLU) is max-pooled down to the head's
  spatial size (32x32 -> 4x4 is an 8x8 pool) and concatenated, channel-wise, with the
  third max pool's (batch-normalised) output z_L (Figure 2): K (L + 1) channels reach the head.
- ``sum``: the same pooled outputs are summed into z_L instead (Figure 3): K channels.
  This is one reading of Gil's "only 1 additional map is fed to the fully connected
  stages": the sum *is* the map the head sees, so the head's width is the baseline's.
- ``sum2k``: the other reading: the pooled outputs are summed into one extra map
  S = P_1(z_1) + ... + P_L(z_L), concatenated with z_L (not added to it): 2K channels,
  [z_L, S], so the head sees the last layer's features unmixed and one map more.

All three are ``nn.SkipToHead`` bodies (the baseline taps no layer), so the parameters
have the same names in every variant: ``body.layers.{i}.conv.weight`` for the convolutions,
``body.layers.{i}.weight`` for the three BN layers, ``fc_0``, ``fc_1``, ``logits``.
Initialisation is Keras's default, which Gil used: Glorot-uniform weights, zero biases,
BN gamma 1 and beta 0 with Keras's eps = 1e-3 and running-average momentum 0.99
(``bn_momentum=0.01`` in PyTorch's convention).
"""
from __future__ import annotations

from typing import Any

from .. import ops
from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from ..nn import BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Module, ReLU, SkipToHead

#: The three connectivity patterns of Gil's Figures 1-3.
CONNECTIONS = ("baseline", "concat", "sum", "sum2k")


class ConvReLU(Module):
    """y = ReLU(conv3x3(x)), stride 1 and zero padding 1: (N, C_in, H, W) -> (N, C_out, H, W).

    One of Gil's "layers"; its output is what a skip sends to the head.
    """

    def __init__(self, in_channels: int, out_channels: int, init: Any, dtype: Any) -> None:
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, 3, padding=1, init=init, dtype=dtype)
        self.act = ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(x))


def pool_positions(depth: int, num_pools: int = 3) -> list[int]:
    """The layers (counted from 1) after which Gil puts a 2x2 max pool: every depth / num_pools layers.

    Example::

        pool_positions(69)   # [23, 46, 69]
    """
    if not isinstance(depth, int) or not isinstance(num_pools, int) or num_pools < 1 or depth < num_pools \
            or depth % num_pools:
        raise ValueError(f"pool_positions: depth must be a positive multiple of num_pools={num_pools}, got {depth!r}")
    every = depth // num_pools
    return [every * (s + 1) for s in range(num_pools)]


class SkipToHeadNet(Module):
    """Gil's baseline, concatenation and summation networks (see the module docstring).

    With z_1..z_L the conv layers' outputs, z_head the batch-normalised output of the third
    max pool, and P_l the max pool from z_l's size to z_head's:

        baseline:  features = z_head
        concat:    features = [z_head, P_1(z_1), ..., P_L(z_L)]   (channels concatenated)
        sum:       features = z_head + P_1(z_1) + ... + P_L(z_L)
        sum2k:     features = [z_head, P_1(z_1) + ... + P_L(z_L)]   (2K channels)

    then logits = FC_10(drop(ReLU(FC_1024(drop(ReLU(FC_2048(flatten(features)))))))).

    Shapes: (N, in_channels, S, S) -> (N, num_classes) logits, with S divisible by 2 ** num_pools
    (S = 32: the head sees 4x4 maps, i.e. 16 K features for baseline and sum, 16 K (L + 1) for concat).

    Args:
        depth: number of convolutional layers L (Gil: 12, 69, 99 for the baseline, 120);
            a multiple of ``num_pools``.
        kernels: channels K of every convolution (Gil: 3, 16, 64).
        connection: ``"baseline"``, ``"concat"``, ``"sum"`` (K channels) or ``"sum2k"`` (2K channels).
        num_classes: outputs (10 for CIFAR-10).
        in_channels: input channels (3).
        image_size: input height = width (32).
        num_pools: max pools, evenly placed (3).
        hidden: widths of the fully connected layers ((2048, 1024)).
        dropout: dropout rate after each of them (0.5).
        init: weight init of every conv and linear layer ("glorot_uniform", Keras's default;
            biases start at zero under it).
        bn_eps, bn_momentum: the BN layers' epsilon and running-average momentum (PyTorch's
            convention; Keras's defaults are 1e-3 and 0.01).
        dtype: parameter dtype.

    Example::

        net = SkipToHeadNet(69, 3, "concat")
        net(images).shape   # (N, 10) for images of shape (N, 3, 32, 32)
        net.head_features   # 3 * 70 * 16 = 3360
    """

    def __init__(self, depth: int, kernels: int, connection: str = "concat", num_classes: int = 10,
                 in_channels: int = 3, image_size: int = 32, num_pools: int = 3,
                 hidden: tuple[int, ...] = (2048, 1024), dropout: float = 0.5, init: Any = "glorot_uniform",
                 bn_eps: float = 1e-3, bn_momentum: float = 0.01, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        if connection not in CONNECTIONS:
            raise ValueError(f"SkipToHeadNet: connection must be one of {CONNECTIONS}, got {connection!r}")
        for name, value in (("kernels", kernels), ("num_classes", num_classes), ("in_channels", in_channels),
                            ("image_size", image_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SkipToHeadNet: {name} must be a positive int, got {value!r}")
        pools = pool_positions(depth, num_pools)
        if image_size % 2 ** num_pools:
            raise ValueError(f"SkipToHeadNet: image_size {image_size} must be divisible by 2 ** {num_pools} "
                             f"(each of the {num_pools} max pools halves it)")
        if len(hidden) != 2:
            raise ValueError(f"SkipToHeadNet: hidden must give the two FC widths, got {hidden!r}")
        self.depth, self.kernels, self.connection = depth, kernels, connection
        # --8<-- [start:net_body]
        layers: list[Module] = []
        taps: list[int] = []
        for l in range(1, depth + 1):
            taps.append(len(layers))
            layers.append(ConvReLU(in_channels if l == 1 else kernels, kernels, init, dtype))
            if l in pools:
                layers.append(MaxPool2d(2))
                layers.append(BatchNorm2d(kernels, eps=bn_eps, momentum=bn_momentum, dtype=dtype))
        # The baseline is the same body with no layer tapped: its head sees z_head alone.
        # sum2k: the body concatenates, the forward then sums the L pooled maps into one.
        self.body = SkipToHead(layers, mode="sum" if connection == "sum" else "concat",
                               taps=taps if connection != "baseline" else [])
        # --8<-- [end:net_body]
        side = image_size // 2 ** num_pools
        channels = {"concat": kernels * (depth + 1), "sum2k": 2 * kernels}.get(connection, kernels)
        self.head_features = channels * side * side
        self.flatten = Flatten()
        self.fc_0 = Linear(self.head_features, hidden[0], init=init, dtype=dtype)
        self.act_0, self.drop_0 = ReLU(), Dropout(dropout)
        self.fc_1 = Linear(hidden[0], hidden[1], init=init, dtype=dtype)
        self.act_1, self.drop_1 = ReLU(), Dropout(dropout)
        self.logits = Linear(hidden[1], num_classes, init=init, dtype=dtype)

    # --8<-- [start:net_forward]
    def forward(self, x: Tensor) -> Tensor:
        x = self.body(x)
        if self.connection == "sum2k":  # [z_head, P_1 z_1, ..., P_L z_L] -> [z_head, sum_l P_l z_l]
            n, _, h, w = x.shape
            k = self.kernels
            x = ops.cat([x[:, :k], x[:, k:].reshape(n, self.depth, k, h, w).sum(axis=1)], axis=1)
        x = self.flatten(x)
        x = self.drop_0(self.act_0(self.fc_0(x)))
        x = self.drop_1(self.act_1(self.fc_1(x)))
        return self.logits(x)
    # --8<-- [end:net_forward]

    def conv_layers(self) -> list[str]:
        """Module names of the L conv layers (``body.layers.{i}``), input to output."""
        return [f"body.layers.{i}" for i, m in enumerate(self.body.layers) if isinstance(m, ConvReLU)]

    def chain_layers(self) -> list[str]:
        """The points h_1..h_L' where the chain-rule diagnostics measure the gradient: every conv
        layer's output, the three BN outputs, and the three fully connected layers."""
        body = [f"body.layers.{i}" for i, m in enumerate(self.body.layers) if not isinstance(m, MaxPool2d)]
        return body + ["fc_0", "fc_1", "logits"]

    def extra_repr(self) -> str:
        return f"depth={self.depth}, kernels={self.kernels}, connection={self.connection!r}"
