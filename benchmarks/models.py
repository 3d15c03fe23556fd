"""The benchmarked networks, built the same way in minideep and in PyTorch with equal weights.

VGG08/VGG38 follow the MLP coursework (see minideep/models/vgg.py): an entry conv 3->32 with
batch norm, ``blocks`` processing blocks per stage (conv-leaky-conv-leaky), and per stage a
reduction block (conv-leaky-avgpool2-conv-leaky, with biases); global average pool, linear
32->100. When ``minideep.models.vgg`` is not there (or has another interface), the minideep
side is built here from ``minideep.nn.functional`` with the same layer list.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import minideep as md
import minideep.nn.functional as F
from minideep.backend import to_device


def vgg_layers(blocks: int, width: int = 32, stages: int = 3) -> list[tuple]:
    """The coursework's layer list: ("conv", c_in, c_out, bias), ("bn", c), ("leaky",), ("avgpool",)."""
    layers: list[tuple] = [("conv", 3, width, False), ("bn", width), ("leaky",)]
    for _ in range(stages):
        for _ in range(blocks):
            layers += [("conv", width, width, False), ("leaky",)] * 2
        layers += [("conv", width, width, True), ("leaky",), ("avgpool",), ("conv", width, width, True), ("leaky",)]
    return layers


def init_weights(layers: list[tuple], classes: int = 100, seed: int = 0) -> list[np.ndarray]:
    """PyTorch's default init, U(+-1/sqrt(fan_in)), as a flat list of float32 arrays."""
    rng = np.random.default_rng(seed)
    uniform = lambda bound, *shape: rng.uniform(-bound, bound, shape).astype(np.float32)  # noqa: E731
    weights: list[np.ndarray] = []
    width = 3
    for layer in layers:
        if layer[0] == "conv":
            _, c_in, c_out, bias = layer
            bound = 1 / np.sqrt(c_in * 9)
            weights.append(uniform(bound, c_out, c_in, 3, 3))
            if bias:
                weights.append(uniform(bound, c_out))
            width = c_out
        elif layer[0] == "bn":
            weights += [np.ones(layer[1], np.float32), np.zeros(layer[1], np.float32)]
    bound = 1 / np.sqrt(width)
    weights += [uniform(bound, classes, width), uniform(bound, classes)]
    return weights


# ---------------------------------------------------------------------------------------
# minideep
# ---------------------------------------------------------------------------------------


class MdVGG:
    """A functional minideep VGG: ``loss(x, y)`` and ``parameters()`` (named, in order)."""

    def __init__(self, layers: list[tuple], weights: list[np.ndarray], device: str = "cpu") -> None:
        self.layers = layers
        self.params = [md.tensor(to_device(w, device), requires_grad=True) for w in weights]
        self.running = {}
        for k, layer in enumerate(layers):
            if layer[0] == "bn":
                self.running[k] = (to_device(np.zeros(layer[1], np.float32), device),
                                   to_device(np.ones(layer[1], np.float32), device))

    def named_parameters(self) -> list[tuple[str, md.Tensor]]:
        return [(str(k), p) for k, p in enumerate(self.params)]

    def loss(self, x: md.Tensor, y: Any) -> md.Tensor:
        params = iter(self.params)
        for k, layer in enumerate(self.layers):
            if layer[0] == "conv":
                w = next(params)
                b = next(params) if layer[3] else None
                x = F.conv2d(x, w, b, padding=1)
            elif layer[0] == "bn":
                mean, var = self.running[k]
                x = F.batch_norm(x, mean, var, next(params), next(params), training=True)
            elif layer[0] == "leaky":
                x = F.leaky_relu(x, 0.01)
            else:
                x = F.avg_pool2d(x, 2)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.cross_entropy(F.linear(x, next(params), next(params)), y)


class _PlainAdam:
    """PyTorch's Adam update, used only when ``minideep.optim`` is not there."""

    def __init__(self, params: list[md.Tensor], lr: float = 1e-3) -> None:
        self.params, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p.data) for p in params]
        self.v = [np.zeros_like(p.data) for p in params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.t += 1
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            m += 0.1 * (g - m)
            v *= 0.999
            v += 0.001 * g * g
            denom = np.sqrt(v) / np.sqrt(1 - 0.999**self.t) + 1e-8
            p.data -= self.lr / (1 - 0.9**self.t) * m / denom


def md_adam(named: list[tuple[str, md.Tensor]], lr: float = 1e-3) -> Any:
    """``minideep.optim.Adam`` when it exists, else the plain version above."""
    try:
        from minideep.optim import Adam  # noqa: PLC0415

        return Adam(named, lr=lr)
    except ImportError:
        return _PlainAdam([p for _, p in named], lr)


def md_vgg_model(blocks: int, device: str = "cpu") -> tuple[Any, Callable[[md.Tensor, Any], md.Tensor]]:
    """(model, loss function): ``minideep.models.vgg`` when it is there, else ``MdVGG`` above."""
    try:
        from minideep.models.vgg import VGG  # noqa: PLC0415

        model = VGG(blocks).to(device)
        return model, lambda x, y: F.cross_entropy(model(x), y)
    except ImportError:
        layers = vgg_layers(blocks)
        model = MdVGG(layers, init_weights(layers), device)
        return model, model.loss


def md_vgg_step(blocks: int, batch: int = 100, device: str = "cpu", seed: int = 0) -> Callable[[], float]:
    """One VGG training step in minideep (forward, backward, Adam) as a closure."""
    rng = np.random.default_rng(seed)
    x = md.tensor(to_device(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32), device))
    y = to_device(rng.integers(0, 100, batch), device)
    model, loss_fn = md_vgg_model(blocks, device)
    opt = md_adam(list(model.named_parameters()))

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(x, y)
        loss.backward()
        opt.step()
        return loss

    return step


def md_mlp_step(depth: int = 100, width: int = 64, batch: int = 100, seed: int = 0) -> Callable[[], Any]:
    """One step of a ``depth``-layer ReLU MLP of ``width`` units: linear+relu per layer, MSE, Adam."""
    rng = np.random.default_rng(seed)
    x = md.tensor(rng.standard_normal((batch, width)).astype(np.float32))
    target = md.tensor(rng.standard_normal((batch, width)).astype(np.float32))
    bound = 1 / np.sqrt(width)
    params = []
    for _ in range(depth):
        params.append(md.tensor(rng.uniform(-bound, bound, (width, width)).astype(np.float32), requires_grad=True))
        params.append(md.tensor(rng.uniform(-bound, bound, width).astype(np.float32), requires_grad=True))
    opt = md_adam([(str(k), p) for k, p in enumerate(params)])

    def step() -> Any:
        opt.zero_grad()
        h = x
        for k in range(depth):
            h = F.relu(F.linear(h, params[2 * k], params[2 * k + 1]))
        loss = F.mse_loss(h, target)
        loss.backward()
        opt.step()
        return loss

    return step


# ---------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------


def torch_vgg(layers: list[tuple], weights: list[np.ndarray]) -> Any:
    """The same network as a ``torch.nn.Module`` holding copies of ``weights``."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as TF  # noqa: PLC0415

    class TorchVGG(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.params = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights])
            self.stats = {k: (torch.zeros(layer[1]), torch.ones(layer[1])) for k, layer in enumerate(layers) if layer[0] == "bn"}

        def loss(self, x: Any, y: Any) -> Any:
            params = iter(self.params)
            for k, layer in enumerate(layers):
                if layer[0] == "conv":
                    w = next(params)
                    b = next(params) if layer[3] else None
                    x = TF.conv2d(x, w, b, padding=1)
                elif layer[0] == "bn":
                    mean, var = self.stats[k]
                    x = TF.batch_norm(x, mean, var, next(params), next(params), training=True)
                elif layer[0] == "leaky":
                    x = TF.leaky_relu(x, 0.01)
                else:
                    x = TF.avg_pool2d(x, 2)
            x = TF.adaptive_avg_pool2d(x, 1).flatten(1)
            return TF.cross_entropy(TF.linear(x, next(params), next(params)), y)

    return TorchVGG()


def torch_vgg_step(blocks: int, batch: int = 100, device: str = "cpu", seed: int = 0) -> Callable[[], Any]:
    """One VGG training step in PyTorch (forward, backward, Adam) as a closure."""
    import torch  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    dev = "cuda" if device == "gpu" else "cpu"
    x = torch.from_numpy(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)).to(dev)
    y = torch.from_numpy(rng.integers(0, 100, batch)).to(dev)
    layers = vgg_layers(blocks)
    model = torch_vgg(layers, init_weights(layers)).to(dev)
    for k in model.stats:
        model.stats[k] = tuple(s.to(dev) for s in model.stats[k])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> Any:
        opt.zero_grad()
        loss = model.loss(x, y)
        loss.backward()
        opt.step()
        return loss

    return step


def vgg_step(framework: str, blocks: int, threads: int) -> Callable[[], Any]:
    """``md_vgg_step`` or ``torch_vgg_step`` (``framework``: "minideep" or "torch"), its framework set to ``threads``."""
    if framework == "torch":
        import torch  # noqa: PLC0415

        torch.set_num_threads(threads)
        return torch_vgg_step(blocks)
    md.set_num_threads(threads)
    return md_vgg_step(blocks)


def torch_mlp_step(depth: int = 100, width: int = 64, batch: int = 100, seed: int = 0) -> Callable[[], Any]:
    """The MLP step of ``md_mlp_step`` in PyTorch."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as TF  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.standard_normal((batch, width)).astype(np.float32))
    target = torch.from_numpy(rng.standard_normal((batch, width)).astype(np.float32))
    bound = 1 / np.sqrt(width)
    params = []
    for _ in range(depth):
        params.append(torch.nn.Parameter(torch.from_numpy(rng.uniform(-bound, bound, (width, width)).astype(np.float32))))
        params.append(torch.nn.Parameter(torch.from_numpy(rng.uniform(-bound, bound, width).astype(np.float32))))
    opt = torch.optim.Adam(params, lr=1e-3)

    def step() -> Any:
        opt.zero_grad()
        h = x
        for k in range(depth):
            h = TF.relu(TF.linear(h, params[2 * k], params[2 * k + 1]))
        loss = TF.mse_loss(h, target)
        loss.backward()
        opt.step()
        return loss

    return step
