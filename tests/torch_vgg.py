"""The coursework VGG written again in PyTorch, as an oracle for minideep's ``models.vgg``.

``build_torch_vgg(model)`` returns a float64 ``torch.nn.Module`` that computes the same
function as the minideep VGG ``model`` (same architecture flags, the same parameter and
buffer names, the weights and running statistics copied, the same train/eval mode).
It is written from the coursework framework's description, not from minideep's code, so
an agreement means both implement the reference.

Import it only after ``pytest.importorskip("torch")``::

    torch = pytest.importorskip("torch")
    from torch_vgg import build_torch_vgg, torch_grads, torch_state

    reference = build_torch_vgg(model)          # model: a minideep VGG, any dtype
    loss = torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    torch_grads(reference)["logit_linear.weight"]   # a NumPy array
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as TF
from torch import nn as tnn

from minideep.backend import as_numpy


def _activation(name: str):
    return {
        "leaky_relu": lambda x: TF.leaky_relu(x, 0.01),
        "relu": TF.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
    }[name]


def _conv(filters_in: int, filters_out: int, bias: bool) -> tnn.Conv2d:
    return tnn.Conv2d(filters_in, filters_out, kernel_size=3, stride=1, padding=1, bias=bias)


class TorchEntry(tnn.Module):
    """act(BN(conv3x3 without bias))."""

    def __init__(self, in_channels: int, filters: int, act) -> None:
        super().__init__()
        self.conv = _conv(in_channels, filters, bias=False)
        self.bn = tnn.BatchNorm2d(filters)
        self.act = act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class TorchProcessing(tnn.Module):
    """act(conv -> [BN] -> act -> conv -> [BN]  [+ x]), convolutions without bias."""

    def __init__(self, filters: int, batch_norm: bool, residual: bool, act) -> None:
        super().__init__()
        self.conv_0 = _conv(filters, filters, bias=False)
        self.bn_0 = tnn.BatchNorm2d(filters) if batch_norm else None
        self.conv_1 = _conv(filters, filters, bias=False)
        self.bn_1 = tnn.BatchNorm2d(filters) if batch_norm else None
        self.residual, self.act = residual, act

    def forward(self, x):
        out = self.conv_0(x)
        out = self.act(self.bn_0(out) if self.bn_0 is not None else out)
        out = self.conv_1(out)
        out = self.bn_1(out) if self.bn_1 is not None else out
        return self.act(out + x if self.residual else out)


class TorchReduction(tnn.Module):
    """act(conv) -> avg_pool2d(2) -> act(conv), convolutions with bias, optional BN before each act.

    With ``projection`` (Pricope 2021): act(... + [BN](conv1x1 stride 2 (x))), the input cropped
    to even height and width first, as the average pool drops an odd last row and column.
    """

    def __init__(self, filters: int, batch_norm: bool, act, projection: bool = False) -> None:
        super().__init__()
        self.conv_0 = _conv(filters, filters, bias=True)
        self.bn_0 = tnn.BatchNorm2d(filters) if batch_norm else None
        self.conv_1 = _conv(filters, filters, bias=True)
        self.bn_1 = tnn.BatchNorm2d(filters) if batch_norm else None
        self.shortcut = tnn.Conv2d(filters, filters, kernel_size=1, stride=2, bias=False) if projection else None
        self.shortcut_bn = tnn.BatchNorm2d(filters) if projection and batch_norm else None
        self.act = act

    def forward(self, x):
        out = self.conv_0(x)
        out = TF.avg_pool2d(self.act(self.bn_0(out) if self.bn_0 is not None else out), 2)
        out = self.conv_1(out)
        out = self.bn_1(out) if self.bn_1 is not None else out
        if self.shortcut is not None:
            h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
            skip = self.shortcut(x[:, :, :h, :w])
            out = out + (self.shortcut_bn(skip) if self.shortcut_bn is not None else skip)
        return self.act(out)


class TorchVGG(tnn.Module):
    """The coursework's ConvolutionalNetwork, with minideep's module names."""

    def __init__(self, num_blocks_per_stage: int, num_stages: int, filters: int, num_classes: int, in_channels: int,
                 batch_norm: bool, residual: bool, activation: str, projection: bool = False) -> None:
        super().__init__()
        act = _activation(activation)
        self.input_conv = TorchEntry(in_channels, filters, act)
        for i in range(num_stages):
            for j in range(num_blocks_per_stage):
                self.add_module(f"block_{i}_{j}", TorchProcessing(filters, batch_norm, residual, act))
            self.add_module(f"reduction_block_{i}", TorchReduction(filters, batch_norm, act, projection))
        self.logit_linear = tnn.Linear(filters, num_classes)

    def forward(self, x):
        for name, module in self.named_children():
            if name != "logit_linear":
                x = module(x)
        x = TF.avg_pool2d(x, x.shape[-1])  # the framework's global pool over the final square map
        return self.logit_linear(x.view(x.shape[0], -1))


def build_torch_vgg(model: Any) -> TorchVGG:
    """A float64 PyTorch twin of the minideep VGG ``model``, with its weights and buffers copied."""
    reference = TorchVGG(
        model.num_blocks_per_stage, model.num_stages, model.input_conv.conv.out_channels,
        model.logit_linear.out_features, model.input_conv.conv.in_channels, model.batch_norm, model.residual,
        model.activation_name, projection=getattr(model, "shortcut", None) == "projection",
    ).double()
    load_into_torch(reference, model.state_dict())
    reference.train(model.training)
    return reference


def load_into_torch(reference: tnn.Module, state: dict[str, Any]) -> None:
    """Copy a minideep state dict (name -> array) into a torch module with the same names (strict)."""
    tensors = {}
    for name, value in state.items():
        array = as_numpy(value)
        tensors[name] = torch.from_numpy(array.astype(np.float64) if array.dtype.kind == "f" else array.copy())
    reference.load_state_dict(tensors, strict=True)


def torch_state(reference: tnn.Module) -> dict[str, np.ndarray]:
    """name -> NumPy copy of every parameter and buffer of a torch module."""
    return {name: value.detach().cpu().numpy().copy() for name, value in reference.state_dict().items()}


def torch_grads(reference: tnn.Module) -> dict[str, np.ndarray]:
    """name -> NumPy copy of every parameter's gradient (zeros where there is none)."""
    return {
        name: (p.grad.detach().cpu().numpy().copy() if p.grad is not None else np.zeros(tuple(p.shape)))
        for name, p in reference.named_parameters()
    }


def max_relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """max |got - expected| / max |expected| (0 when both are all zeros): a tensor-wise relative error."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    scale = np.abs(expected).max() if expected.size else 0.0
    diff = np.abs(got - expected).max() if expected.size else 0.0
    return float(diff / scale) if scale > 0 else float(diff)
