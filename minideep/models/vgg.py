"""The VGG family of the Edinburgh MLP coursework 2: VGG08 trains, VGG38 does not.

The network, exactly as the coursework framework builds it (``pytorch_mlp_framework/
model_architectures.py``; see ``shared/reference/vgg-coursework-framework.md``), with
F = ``num_filters`` (32) channels everywhere and leaky ReLU (slope 0.01):

    input_conv:           conv3x3(in_channels -> F, no bias) -> BN -> act
    per stage i = 0, 1, 2:
      block_i_j (j < num_blocks_per_stage):
                          conv3x3 (no bias) -> act -> conv3x3 (no bias) -> act
      reduction_block_i:  conv3x3 (bias) -> act -> avgpool 2x2 -> conv3x3 (bias) -> act
    head:                 global average pool -> flatten -> logit_linear (F -> num_classes)

The entry BN is there even in the "plain" networks. ``batch_norm=True`` adds BN after every
other convolution too (before its activation); ``residual=True`` makes each processing
block act(x + F(x)), F(x) = BN(conv(act(BN(conv(x))))); the reduction blocks stay plain
(the coursework's network) or, with ``shortcut="projection"``, get Pricope's (2021) strided
1x1 convolution shortcut.
Every weight starts at PyTorch's default (U(+-1/sqrt(fan_in)) for convolutions and the
linear layer, weights and biases; BN gamma 1, beta 0): under that init the 37-convolution
plain network's gradient vanishes, which is the experiment.

    VGG08 = VGG(0): 7 convolutions + 1 linear, 59,716 parameters (100 classes)
    VGG38 = VGG(5): 37 convolutions + 1 linear, 336,196 parameters; 338,500 with batch_norm

A VGG is its top-level children applied in order (``model.blocks`` lists them): the
entry block, the processing and reduction blocks, then ``global_pool``, ``flatten`` and
``logit_linear``, so diagnostics can walk the chain block by block.
"""
from __future__ import annotations

from typing import Any

from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from ..nn import AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, Module, Parameter, ResidualBlock
from ..nn import make_activation


class EntryBlock(Module):
    """y = act(BN(conv(x))), conv 3x3 with padding 1 and no bias: (N, C_in, H, W) -> (N, F, H, W)."""

    def __init__(self, in_channels: int, num_filters: int, activation: str, init: Any, dtype: Any) -> None:
        super().__init__()
        self.conv = Conv2d(in_channels, num_filters, 3, padding=1, bias=False, init=init, dtype=dtype)
        self.bn = BatchNorm2d(num_filters, dtype=dtype)
        self.activation = make_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.bn(self.conv(x)))


class ProcessingBlock(Module):
    """y = act(BN_1(conv_1(act(BN_0(conv_0(x)))))), two 3x3 convolutions without bias; BN only if ``batch_norm``.

    Shapes: (N, F, H, W) -> (N, F, H, W).
    """

    def __init__(self, num_filters: int, batch_norm: bool, activation: str, init: Any, dtype: Any) -> None:
        super().__init__()
        self.conv_0 = Conv2d(num_filters, num_filters, 3, padding=1, bias=False, init=init, dtype=dtype)
        self.bn_0 = BatchNorm2d(num_filters, dtype=dtype) if batch_norm else None
        self.conv_1 = Conv2d(num_filters, num_filters, 3, padding=1, bias=False, init=init, dtype=dtype)
        self.bn_1 = BatchNorm2d(num_filters, dtype=dtype) if batch_norm else None
        self.activation = make_activation(activation)

    # --8<-- [start:processing_forward]
    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_0(x)
        out = self.activation(out if self.bn_0 is None else self.bn_0(out))
        out = self.conv_1(out)
        return self.activation(out if self.bn_1 is None else self.bn_1(out))
    # --8<-- [end:processing_forward]


class ReductionBlock(Module):
    """y = act(BN_1(conv_1(avgpool2(act(BN_0(conv_0(x))))))), 3x3 convolutions with bias; BN only if ``batch_norm``.

    Shapes: (N, F, H, W) -> (N, F, H // 2, W // 2).
    """

    def __init__(self, num_filters: int, batch_norm: bool, activation: str, init: Any, dtype: Any) -> None:
        super().__init__()
        self.conv_0 = Conv2d(num_filters, num_filters, 3, padding=1, bias=True, init=init, dtype=dtype)
        self.bn_0 = BatchNorm2d(num_filters, dtype=dtype) if batch_norm else None
        self.pool = AvgPool2d(2)
        self.conv_1 = Conv2d(num_filters, num_filters, 3, padding=1, bias=True, init=init, dtype=dtype)
        self.bn_1 = BatchNorm2d(num_filters, dtype=dtype) if batch_norm else None
        self.activation = make_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_0(x)
        out = self.pool(self.activation(out if self.bn_0 is None else self.bn_0(out)))
        out = self.conv_1(out)
        return self.activation(out if self.bn_1 is None else self.bn_1(out))


class ProjectionReductionBlock(ReductionBlock):
    """y = act(R(x) + BN_s(conv1x1_s2(x))): the reduction block with Pricope's (2021) projection shortcut.

    R(x) is :class:`ReductionBlock`'s body (conv, act, 2x2 average pool, conv, BN where
    ``batch_norm``). The identity cannot skip a block that halves the map, so Pricope
    projects it "as a 1x1 conv with appropriate stride" (He et al. 2016's option B): a learnt
    1x1 convolution with stride 2 and no bias, followed by BN when ``batch_norm`` (as in He et
    al.; Pricope does not say, and a bias would only duplicate BN's beta). With stride 2 the
    projection reads the top-left pixel of every 2x2 pooling window; on an odd map the pool
    drops the last row and column, so the projection reads the input cropped the same way.

    Shapes: (N, F, H, W) -> (N, F, H // 2, W // 2). Parameters beyond the reduction block's:
    ``shortcut.weight`` (F x F x 1 x 1) and ``shortcut_bn.weight``/``shortcut_bn.bias``.
    """

    def __init__(self, num_filters: int, batch_norm: bool, activation: str, init: Any, dtype: Any) -> None:
        super().__init__(num_filters, batch_norm, activation, init, dtype)
        self.shortcut = Conv2d(num_filters, num_filters, 1, stride=2, bias=False, init=init, dtype=dtype)
        self.shortcut_bn = BatchNorm2d(num_filters, dtype=dtype) if batch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_0(x)
        out = self.pool(self.activation(out if self.bn_0 is None else self.bn_0(out)))
        out = self.conv_1(out)
        out = out if self.bn_1 is None else self.bn_1(out)
        height, width = x.shape[-2:]
        skip = self.shortcut(x if height % 2 == 0 and width % 2 == 0 else x[:, :, :height - height % 2, :width - width % 2])
        return self.activation(out + (skip if self.shortcut_bn is None else self.shortcut_bn(skip)))


#: Where the residual VGG puts its shortcuts (``VGG(residual=True, shortcut=...)``).
SHORTCUTS = ("coursework", "projection")


class VGG(Module):
    """The coursework's VGG: an entry block, ``num_stages`` stages, global pooling and a linear head.

    See the module docstring for the layers. Shapes: (N, in_channels, H, W) ->
    (N, num_classes) logits (no softmax; use ``F.cross_entropy``). H and W are halved by
    every stage (32x32 -> 4x4 for three stages).

    Args:
        num_blocks_per_stage: processing blocks per stage (0 for VGG08, 5 for VGG38).
        num_stages: stages, each ending in a reduction block (default 3).
        num_filters: channels of every convolution (default 32).
        num_classes: outputs of the linear head (default 100, CIFAR-100).
        in_channels: input channels (default 3).
        batch_norm: BN after every convolution (the entry BN is always there).
        residual: identity shortcuts around the processing blocks (``nn.ResidualBlock``).
        shortcut: which residual network ``residual=True`` builds. ``"coursework"`` (default):
            the coursework framework's, shortcuts around the processing blocks only (VGG08
            has none, so its residual version is VGG08 itself). ``"projection"``: Pricope
            (2021)'s, which also puts a strided 1x1 convolution shortcut around each
            reduction block (:class:`ProjectionReductionBlock`). The MLP report's third kind,
            an average-pooled identity around the reduction blocks, is
            :class:`~minideep.models.residual_vgg.ResidualVGG`.
        activation: "leaky_relu" (default, slope 0.01), "relu", "sigmoid" or "tanh".
        init: weight init of every convolution and the linear layer; None (default) is
            PyTorch's default, which the coursework used (see ``minideep.nn.init``).
        dtype: parameter dtype (float32; ``model.double()`` converts later).

    Attributes:
        blocks: the top-level (name, module) pairs; forward applies them in this order.

    Parameter names, in network order: ``input_conv.conv.weight``, ``input_conv.bn.weight``,
    ``input_conv.bn.bias``, ``block_0_0.conv_0.weight``, ``block_0_0.conv_1.weight``, ...,
    ``reduction_block_0.conv_0.weight``, ``reduction_block_0.conv_0.bias``, ...,
    ``reduction_block_2.conv_1.bias``, ``logit_linear.weight``, ``logit_linear.bias``
    (with ``bn_0``/``bn_1`` after each ``conv_0``/``conv_1`` when ``batch_norm``).

    Example::

        model = vgg38(num_classes=100)
        model.num_parameters()   # 336196
        logits = model(images)   # images (N, 3, 32, 32) -> logits (N, 100)
    """

    def __init__(self, num_blocks_per_stage: int, num_stages: int = 3, num_filters: int = 32, num_classes: int = 100,
                 in_channels: int = 3, batch_norm: bool = False, residual: bool = False, shortcut: str = "coursework",
                 activation: str = "leaky_relu", init: Any = None, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"VGG: shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        for name, value, low in (("num_blocks_per_stage", num_blocks_per_stage, 0), ("num_stages", num_stages, 1),
                                 ("num_filters", num_filters, 1), ("num_classes", num_classes, 1),
                                 ("in_channels", in_channels, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"VGG: {name} must be an int >= {low}, got {value!r}")
        self.num_blocks_per_stage, self.num_stages = num_blocks_per_stage, num_stages
        self.batch_norm, self.residual, self.activation_name = batch_norm, residual, activation
        self.shortcut = shortcut if residual else None
        reduction = ProjectionReductionBlock if self.shortcut == "projection" else ReductionBlock
        self.input_conv = EntryBlock(in_channels, num_filters, activation, init, dtype)
        for i in range(num_stages):
            for j in range(num_blocks_per_stage):
                if residual:
                    block: Module = ResidualBlock(num_filters, num_filters, batch_norm=batch_norm, shortcut="identity",
                                                  activation=activation, bias=False, init=init, dtype=dtype)
                else:
                    block = ProcessingBlock(num_filters, batch_norm, activation, init, dtype)
                self.add_module(f"block_{i}_{j}", block)
            self.add_module(f"reduction_block_{i}", reduction(num_filters, batch_norm, activation, init, dtype))
        self.global_pool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.logit_linear = Linear(num_filters, num_classes, init=init, dtype=dtype)

    @property
    def blocks(self) -> list[tuple[str, Module]]:
        """The top-level (name, module) pairs, in the order forward applies them."""
        return list(self.named_children())

    def forward(self, x: Tensor) -> Tensor:
        for module in self.children():
            x = module(x)
        return x

    def extra_repr(self) -> str:
        return (f"num_blocks_per_stage={self.num_blocks_per_stage}, num_stages={self.num_stages}, "
                f"batch_norm={self.batch_norm}, residual={self.residual}, "
                + (f"shortcut={self.shortcut!r}, " if self.residual else "") + f"activation={self.activation_name!r}")


def vgg08(**kwargs: Any) -> VGG:
    """VGG08: no processing blocks, 7 convolutions + 1 linear (59,716 parameters for 100 classes)."""
    return VGG(0, **kwargs)


def vgg38(**kwargs: Any) -> VGG:
    """VGG38: 5 processing blocks per stage, 37 convolutions + 1 linear (336,196 parameters; 338,500 with BN)."""
    return VGG(5, **kwargs)


def gradient_flow_parameters(model: Module) -> list[tuple[str, Parameter]]:
    """The parameters the coursework's gradient-flow plot shows: every one whose name has no "bias", in order.

    One point per weight tensor (BN gamma included, biases and BN beta skipped): 9 for
    VGG08, 39 for VGG38. The statistic per point is mean(|dL/dW|). Projection shortcuts
    (``"projection"``) are left out: they are not on the chain of 38 layers the plot follows.
    """
    return [(name, param) for name, param in model.named_parameters() if "bias" not in name and "shortcut" not in name]
