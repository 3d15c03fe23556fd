"""The residual VGG38 of the MLP coursework 2 report (mlp-cw2-residual-vgg37, section 4, Algorithm 1).

The coursework's VGG (``minideep.models.vgg``) with an identity shortcut around *every*
block, as the report's Algorithm 1 writes it:

    processing block:  y = act(conv_1(act(conv_0(x))) + x)
    reduction block:   y = act(conv_1(P(act(conv_0(x)))) + P(x)),   P = 2x2 average pool

``VGG(5, residual=True)`` puts shortcuts around the processing blocks only (the coursework
specification's "VGG38 RC"); the report also pools the input of each reduction block into a
shortcut ("x_0 = avg_pool(x_0) {Only used in pooling block}"), so no block of the 37
convolutions is without one. The shortcuts have no parameters: the network has the same
336,196 parameters (100 classes) as VGG38, under the same names.
"""
from __future__ import annotations

from typing import Any

from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from .vgg import VGG, ReductionBlock


class ResidualReductionBlock(ReductionBlock):
    """y = act(BN_1(conv_1(P(act(BN_0(conv_0(x)))))) + P(x)), P a 2x2 average pool; BN only if ``batch_norm``.

    The reduction block of :class:`~minideep.models.vgg.ReductionBlock` with the report's
    pooled identity shortcut. Since P is linear, dL/dx gets P's adjoint of dL/dy (each of the
    four input pixels of a window gets a quarter of its gradient) whatever the convolutions do.

    Shapes: (N, F, H, W) -> (N, F, H // 2, W // 2) (H and W even).
    """

    # --8<-- [start:residual_reduction_forward]
    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_0(x)
        out = self.pool(self.activation(out if self.bn_0 is None else self.bn_0(out)))
        out = self.conv_1(out)
        out = out if self.bn_1 is None else self.bn_1(out)
        return self.activation(out + self.pool(x))
    # --8<-- [end:residual_reduction_forward]


class ResidualVGG(VGG):
    """The report's residual VGG: :class:`~minideep.models.vgg.VGG` with ``residual=True`` and pooled shortcuts in the reduction blocks.

    Shapes: (N, in_channels, H, W) -> (N, num_classes) logits; H and W are halved by each
    stage, so they must be divisible by ``2 ** num_stages`` (32 -> 4 for three stages).

    Args:
        num_blocks_per_stage: residual processing blocks per stage (5: the 37-convolution
            network of the report).
        num_stages, num_filters, num_classes, in_channels, batch_norm, activation, init,
        dtype: as for :class:`~minideep.models.vgg.VGG` (the report used no batch norm
        beyond the coursework's entry BN).

    Example::

        model = ResidualVGG(5)           # 37 convolutions, 336,196 parameters
        logits = model(images)           # (N, 3, 32, 32) -> (N, 100)
    """

    def __init__(self, num_blocks_per_stage: int = 5, num_stages: int = 3, num_filters: int = 32,
                 num_classes: int = 100, in_channels: int = 3, batch_norm: bool = False,
                 activation: str = "leaky_relu", init: Any = None, dtype: Any = DEFAULT_DTYPE) -> None:
        super().__init__(num_blocks_per_stage, num_stages=num_stages, num_filters=num_filters,
                         num_classes=num_classes, in_channels=in_channels, batch_norm=batch_norm, residual=True,
                         activation=activation, init=init, dtype=dtype)
        for i in range(num_stages):
            # Same place in the network, same parameter names: only the forward gains the shortcut.
            self.add_module(f"reduction_block_{i}",
                            ResidualReductionBlock(num_filters, batch_norm, activation, init, dtype))

    def forward(self, x: Tensor) -> Tensor:
        side = 2 ** self.num_stages
        if x.ndim != 4 or x.shape[-1] % side or x.shape[-2] % side:
            raise ValueError(f"ResidualVGG: input must be (N, C, H, W) with H and W divisible by {side} "
                             f"(the pooled shortcuts), got shape {tuple(x.shape)}")
        return super().forward(x)


def residual_vgg38(**kwargs: Any) -> ResidualVGG:
    """The report's residual VGG38: 5 residual processing blocks per stage, pooled shortcuts in the reduction blocks."""
    return ResidualVGG(5, **kwargs)
