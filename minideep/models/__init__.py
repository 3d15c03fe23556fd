"""The papers' networks, built from ``minideep.nn`` blocks."""
from .vgg import VGG, EntryBlock, ProcessingBlock, ReductionBlock, gradient_flow_parameters, vgg08, vgg38

__all__ = ["VGG", "EntryBlock", "ProcessingBlock", "ReductionBlock", "gradient_flow_parameters", "vgg08", "vgg38"]
