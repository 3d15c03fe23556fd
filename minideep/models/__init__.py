"""The papers' networks, built from ``minideep.nn`` blocks."""
from .vgg import VGG, EntryBlock, ProcessingBlock, ReductionBlock, gradient_flow_parameters, vgg08, vgg38

__all__ = ["VGG", "EntryBlock", "ProcessingBlock", "ReductionBlock", "gradient_flow_parameters", "vgg08", "vgg38"]
from .highway import ConvHighwayNet, HighwayMLP, PlainMLP  # noqa: E402, F401
from .plain_mlp import plain_mlp  # noqa: E402, F401
from .skip_to_head import SkipToHeadNet, pool_positions  # noqa: E402, F401
from .resnet26 import ResNet26  # noqa: E402, F401
from .tiny_yolo import TinyYOLO  # noqa: E402, F401
from .residual_vgg import ResidualReductionBlock, ResidualVGG, residual_vgg38  # noqa: E402, F401
