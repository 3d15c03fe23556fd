"""Tiny-YOLO as an image classifier: McInroe (2020), appendix Table 1 (darknet's yolov1-tiny stack).

Eight 3x3 convolutions (stride 1, zero padding 1, with bias), each optionally followed by
batch normalisation and then a leaky ReLU (slope 0.1, darknet's); the first six are
followed by a 2x2/2 max pool. YOLO's detection head is replaced, as in the paper, by two
dense layers of 1,470 and ``num_classes`` units:

    for c in 16, 32, 64, 128, 256, 512:   conv3x3(c) [-> BN] -> leaky -> maxpool 2x2/2
    conv3x3(1024) [-> BN] -> leaky
    conv3x3(256)  [-> BN] -> leaky
    flatten -> dense 1470 -> leaky -> dense num_classes (logits)

With a (3, 128, 128) input the six pools leave 256 x 2 x 2 = 1,024 features, and the
network has **10,307,257** parameters without BN and **10,311,833** with BN after all eight
convolutions: exactly the paper's numbers. (The paper's Table 1 draws BN only after the
first six convolutions, which would give 10,309,273; its published count needs the last
two as well.) There is no shortcut anywhere: every gradient passes through all ten layers.

``width`` scales every convolution's channels and the 1,470-unit layer (the quick preset
uses a narrow network); ``width=1`` is the paper's network.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from ..nn import BatchNorm2d, Conv2d, Flatten, LeakyReLU, Linear, MaxPool2d, Module, Sequential

#: Output channels of the eight convolutions (paper's Table 1) and the hidden dense width.
CHANNELS = (16, 32, 64, 128, 256, 512, 1024, 256)
POOLED = 6  # the first six convolutions are each followed by a 2x2/2 max pool
HIDDEN = 1470  # YOLOv1's 7 x 7 x 30 output, kept as the first dense layer
LEAKY_SLOPE = 0.1  # darknet's leaky ReLU (Keras' LeakyReLU would default to 0.3)


def scaled(channels: int, width: float) -> int:
    """``round(channels * width)``, at least 1: a layer's size under a width multiplier."""
    return max(1, int(round(channels * width)))


class TinyYOLO(Module):
    """Tiny-YOLO's convolutional stack with a dense classification head (McInroe 2020, Table 1).

    See the module docstring for the layers and the parameter counts.
    Shapes: (N, in_channels, S, S) -> (N, num_classes) logits, S a multiple of 64 (the six
    2x2 pools halve it six times; 128 in the paper, 64 in the quick preset).

    Args:
        num_classes: outputs of the last dense layer (101 for Food-101).
        in_channels: input channels (3).
        image_size: side S of the square input; fixes the first dense layer's fan-in.
        batch_norm: BN after each of the eight convolutions, before the leaky ReLU.
        init: weight init of every convolution and dense layer, e.g. ``"he_truncated_normal"``
            or ``"glorot_truncated_normal"`` (biases then start at zero; see ``minideep.nn.init``).
        width: multiplier of the channel counts and the hidden dense width (1.0: the paper's).
        negative_slope: slope of the leaky ReLU for x < 0 (0.1).
        dtype: parameter dtype.

    Attributes:
        blocks: the top-level (name, module) pairs, in the order forward applies them.

    Parameter names: ``conv_0.conv.weight``, ``conv_0.conv.bias``, (``conv_0.bn.weight``,
    ``conv_0.bn.bias``), ..., ``conv_7...``, ``dense.weight``, ``dense.bias``,
    ``logits.weight``, ``logits.bias``.

    Example::

        model = TinyYOLO(101, image_size=128, batch_norm=True, init="he_truncated_normal")
        model.num_parameters()   # 10311833
        model(images).shape      # (N, 101) for images of shape (N, 3, 128, 128)
    """

    def __init__(self, num_classes: int = 101, in_channels: int = 3, image_size: int = 128, batch_norm: bool = True,
                 init: Any = "he_truncated_normal", width: float = 1.0, negative_slope: float = LEAKY_SLOPE,
                 dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels), ("image_size", image_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TinyYOLO: {name} must be a positive int, got {value!r}")
        if image_size % 2**POOLED:
            raise ValueError(
                f"TinyYOLO: image_size must be a multiple of {2**POOLED} (six 2x2 pools), got {image_size}"
            )
        if not width > 0:
            raise ValueError(f"TinyYOLO: width must be positive, got {width!r}")
        self.batch_norm, self.width, self.image_size = batch_norm, width, image_size
        channels = [scaled(c, width) for c in CHANNELS]
        previous = in_channels
        for i, c in enumerate(channels):
            layers = OrderedDict(conv=Conv2d(previous, c, 3, padding=1, bias=True, init=init, dtype=dtype))
            if batch_norm:
                layers["bn"] = BatchNorm2d(c, dtype=dtype)
            layers["act"] = LeakyReLU(negative_slope)
            if i < POOLED:
                layers["pool"] = MaxPool2d(2)
            block = Sequential(layers)
            self.add_module(f"conv_{i}", block)
            previous = c
        side = image_size // 2**POOLED
        hidden = scaled(HIDDEN, width)
        self.flatten = Flatten()
        self.dense = Linear(previous * side * side, hidden, init=init, dtype=dtype)
        self.dense_act = LeakyReLU(negative_slope)
        self.logits = Linear(hidden, num_classes, init=init, dtype=dtype)

    @property
    def blocks(self) -> list[tuple[str, Module]]:
        """The top-level (name, module) pairs, in the order forward applies them."""
        return list(self.named_children())

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[2] != self.image_size or x.shape[3] != self.image_size:
            raise ValueError(
                f"TinyYOLO: expected input (N, C, {self.image_size}, {self.image_size}), got {tuple(x.shape)}"
            )
        for module in self.children():
            x = module(x)
        return x

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, batch_norm={self.batch_norm}, width={self.width}"
