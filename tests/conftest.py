"""Shared fixtures: the device the engine tests run on, and float64 random tensors there.

The engine tests take a ``device`` fixture: ``"cpu"`` (NumPy), and ``"gpu"`` (CuPy arrays).

- ``python -m pytest`` (``MINIDEEP_DEVICE`` unset or ``fakegpu``): the ``"gpu"`` runs use the
  strict CPU stand-in for CuPy in ``tests/fake_cupy`` (put in front of any real CuPy before
  minideep is imported, here and in the chapter scripts the tests start), so a NumPy call on
  device data fails here as it would on a GPU;
- ``MINIDEEP_DEVICE=gpu python -m pytest``: the real CuPy on a real GPU (skipped without one);
- ``MINIDEEP_DEVICE=cpu python -m pytest``: NumPy only.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

import numpy as np
import pytest

#: "fakegpu" (the stand-in, the default), "gpu" (real CuPy) or "cpu" (no device runs).
TEST_DEVICE = os.environ.get("MINIDEEP_DEVICE") or "fakegpu"
if TEST_DEVICE == "fakegpu":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fake_cupy"))
    import fakegpu  # noqa: E402

    fakegpu.install()
    # minideep itself reads MINIDEEP_DEVICE as cpu|gpu: the stand-in is a "gpu" to it.
    os.environ.pop("MINIDEEP_DEVICE", None)

import minideep as md  # noqa: E402
from minideep.backend import gpu_available, to_device

# Under CI=true a skip that does not name the GPU fails the run (tests/skip_policy.py);
# pytester runs the policy's own tests in a scratch folder.
pytest_plugins = ["skip_policy", "pytester"]


def _device_params() -> list[Any]:
    params: list[Any] = ["cpu"]
    if TEST_DEVICE == "gpu":
        no_gpu = pytest.mark.skipif(not gpu_available(), reason="MINIDEEP_DEVICE=gpu but CuPy finds no GPU")
        params.append(pytest.param("gpu", marks=no_gpu))
    elif TEST_DEVICE == "fakegpu":
        params.append("gpu")
    return params


@pytest.fixture(params=_device_params())
def device(request: pytest.FixtureRequest) -> str:
    """``"cpu"``, and ``"gpu"``: the CuPy stand-in by default, the real CuPy with ``MINIDEEP_DEVICE=gpu``."""
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
