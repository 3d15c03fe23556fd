"""McInroe's (2020) "ResNet26": a 7x7 stem, four stages of residual blocks, global pooling, dense.

Built from ``nn.ResidualBlock`` (two 3x3 convolutions, BN optional, ReLU after the
addition) with a 1x1 projection shortcut wherever a block changes shape:

    stem:     conv7x7/2 (64, padding 3) [-> BN] -> ReLU -> maxpool 2x2/2
    for c in 64, 128, 256, 512:
        block 0:   ResidualBlock(c_prev -> c, stride 2), shortcut conv1x1/2 [-> BN]
        block 1..: ResidualBlock(c -> c), identity shortcut
    head:     global average pool -> dense num_classes (logits)

Every convolution keeps its bias (Keras' default, which the paper's TensorFlow code used).
Every stage starts with a stride-2 convolution, the first one included (the paper's
Table 2: "Conv2d-2 3x3 64" right after the pool), so a 128 x 128 image is 64 after the
stem, 32 after the pool, then 16, 8, 4 and 2 before global pooling.

**Which network the paper trained.** With two blocks per stage (``blocks_per_stage=2``,
the default) and 101 classes this is **11,237,413** parameters with BN after every one of
its 21 convolutions (17 on the main path, 4 projections): exactly the paper's number.
Without BN it is 11,227,685, 128 fewer than the paper's 11,227,813: the paper's two counts
differ by 9,600 = 2 x 4,800, while the 21 BN layers hold 2 x 4,864 parameters, so the
paper's "no BN" network must still have kept one 64-channel BN layer (most likely the
stem's). The table as printed lists six convolutions per stage, i.e. three blocks (1 + 24
convolutions + 1 dense = the "26" of the name); that reading,
``ResNet26(blocks_per_stage=3)``, has 17,510,053 parameters with BN (17,496,485 without)
and cannot be what the counts were taken from.

``width`` scales every channel count (the quick preset uses a narrow network); ``width=1``
is the paper's network.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from ..nn import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, ResidualBlock
from ..nn import Sequential
from .tiny_yolo import scaled

#: Channels of the stem and of the four stages.
STEM_CHANNELS = 64
STAGE_CHANNELS = (64, 128, 256, 512)


class ResNet26(Module):
    """A residual network of McInroe (2020), Table 2: 7x7/2 stem, 4 stages of residual blocks, dense head.

    See the module docstring for the layers and for how its parameter count meets the paper's.
    Shapes: (N, in_channels, H, W) -> (N, num_classes) logits; any H, W >= 32 (global
    pooling fixes the head's size; 128 in the paper, 64 in the quick preset).

    Args:
        num_classes: outputs of the dense layer (101 for Food-101).
        in_channels: input channels (3).
        batch_norm: BN after every convolution (main path and projections), before the ReLU.
        init: weight init of every convolution and the dense layer, e.g.
            ``"he_truncated_normal"`` or ``"glorot_truncated_normal"`` (biases then start at 0).
        width: multiplier of every channel count (1.0: the paper's).
        blocks_per_stage: residual blocks per stage (2: the network the paper's parameter
            counts describe; 3: its Table 2 read literally).
        dtype: parameter dtype.

    Attributes:
        blocks: the top-level (name, module) pairs, in the order forward applies them.

    Parameter names: ``stem.conv.weight``, ``stem.conv.bias``, (``stem.bn.*``),
    ``stage_0_0.conv_0.weight``, ..., ``stage_0_0.shortcut.0.weight`` (the projection), ...,
    ``stage_3_1.conv_1.bias``, ``logits.weight``, ``logits.bias``.

    Example::

        model = ResNet26(101, batch_norm=True, init="he_truncated_normal")
        model.num_parameters()   # 11237413
        model(images).shape      # (N, 101) for images of shape (N, 3, 128, 128)
    """

    def __init__(self, num_classes: int = 101, in_channels: int = 3, batch_norm: bool = True,
                 init: Any = "he_truncated_normal", width: float = 1.0, blocks_per_stage: int = 2,
                 dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels),
                            ("blocks_per_stage", blocks_per_stage)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ResNet26: {name} must be a positive int, got {value!r}")
        if not width > 0:
            raise ValueError(f"ResNet26: width must be positive, got {width!r}")
        self.batch_norm, self.width, self.blocks_per_stage = batch_norm, width, blocks_per_stage
        stem_channels = scaled(STEM_CHANNELS, width)
        stem = OrderedDict(conv=Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=True, init=init,
                                       dtype=dtype))
        if batch_norm:
            stem["bn"] = BatchNorm2d(stem_channels, dtype=dtype)
        stem["act"] = ReLU()
        stem["pool"] = MaxPool2d(2)
        self.stem = Sequential(stem)
        previous = stem_channels
        for s, channels in enumerate(STAGE_CHANNELS):
            c = scaled(channels, width)
            for b in range(blocks_per_stage):
                # The first block of every stage halves the size, so its shortcut is a 1x1/2 projection.
                self.add_module(f"stage_{s}_{b}", ResidualBlock(
                    previous, c, stride=2 if b == 0 else 1, batch_norm=batch_norm, shortcut="auto",
                    activation="relu", bias=True, init=init, dtype=dtype))
                previous = c
        self.global_pool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.logits = Linear(previous, num_classes, init=init, dtype=dtype)

    @property
    def blocks(self) -> list[tuple[str, Module]]:
        """The top-level (name, module) pairs, in the order forward applies them."""
        return list(self.named_children())

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or min(x.shape[2], x.shape[3]) < 32:
            raise ValueError(f"ResNet26: expected input (N, C, H, W) with H, W >= 32, got {tuple(x.shape)}")
        for module in self.children():
            x = module(x)
        return x

    def extra_repr(self) -> str:
        return f"batch_norm={self.batch_norm}, width={self.width}, blocks_per_stage={self.blocks_per_stage}"
