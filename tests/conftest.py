"""Shared fixtures: the device the engine tests run on, and float64 random tensors there.

The engine tests take a ``device`` fixture. It is ``"cpu"`` (NumPy) always, plus ``"gpu"``
(CuPy) when ``MINIDEEP_DEVICE=gpu`` is set; the GPU runs skip cleanly when CuPy finds no
GPU. So ``python -m pytest`` checks NumPy, and ``MINIDEEP_DEVICE=gpu python -m pytest``
checks both.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import pytest

import minideep as md
from minideep.backend import gpu_available, to_device

# Under CI=true a skip that does not name the GPU fails the run (tests/skip_policy.py);
# pytester runs the policy's own tests in a scratch folder.
pytest_plugins = ["skip_policy", "pytester"]


def _device_params() -> list[Any]:
    params: list[Any] = ["cpu"]
    if os.environ.get("MINIDEEP_DEVICE", "cpu") == "gpu":
        no_gpu = pytest.mark.skipif(not gpu_available(), reason="MINIDEEP_DEVICE=gpu but CuPy finds no GPU")
        params.append(pytest.param("gpu", marks=no_gpu))
    return params


@pytest.fixture(params=_device_params())
def device(request: pytest.FixtureRequest) -> str:
    """``"cpu"``, and ``"gpu"`` when ``MINIDEEP_DEVICE=gpu`` (skipped without a GPU)."""
    return request.param


@pytest.fixture
def randn(device: str) -> Callable[..., md.Tensor]:
    """``randn(*shape, seed=0, requires_grad=True, low=None)``: a float64 normal tensor on the device.

    With ``low`` the values are uniform in ``[low, low + 1)`` instead (for log, sqrt, division).
    """

    def make(*shape: int, seed: int = 0, requires_grad: bool = True, low: float | None = None) -> md.Tensor:
        rng = np.random.default_rng(seed)
        values = rng.standard_normal(shape) if low is None else low + rng.random(shape)
        return md.tensor(to_device(values.astype(np.float64), device), requires_grad=requires_grad)

    return make


@pytest.fixture
def on_device(device: str) -> Callable[[Any], Any]:
    """``on_device(array)``: a NumPy array (or index array) moved to the device under test."""
    return lambda array: to_device(np.asarray(array), device)


@pytest.fixture
def torch() -> Any:
    """PyTorch as an oracle: ``pytest.importorskip("torch")``, so the test skips cleanly without it.

    One thread: the oracle's tensors are tiny, and torch's thread pool only fights the
    other test processes for the machine's cores.
    """
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch
