"""Layers and networks: ``Module``, ``Parameter``, the layers, the blocks and their init schemes.

    from minideep import nn
    import minideep.nn.functional as F

Layer names, argument orders and defaults follow ``torch.nn``. Parameters are float32 by
default; ``model.double()`` converts a model to float64 in place (for gradient checks).
"""
from . import functional, init
from .activation import LeakyReLU, ReLU, Sigmoid, Tanh, make_activation
from .batchnorm import BatchNorm1d, BatchNorm2d
from .blocks import Highway, HighwayConv2d, PoolShortcut, ResidualBlock, SkipToHead
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout
from .linear import Linear
from .module import Module, ModuleList, Parameter, RemovableHandle, Sequential
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .shape import Flatten, Identity

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "ConvTranspose2d", "Dropout", "Flatten", "Highway",
    "HighwayConv2d", "Identity", "LeakyReLU", "Linear", "MaxPool2d", "Module", "ModuleList", "Parameter",
    "PoolShortcut", "ReLU", "RemovableHandle", "ResidualBlock", "Sequential", "Sigmoid", "SkipToHead", "Tanh",
    "functional", "init", "make_activation",
]
