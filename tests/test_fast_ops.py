"""The optimised ops equal their plain reference versions (minideep/ops/reference.py).

Convolution, pooling and batch norm have fast paths (shifted matrix products in row blocks,
channels-last layouts, written-not-accumulated gradients); each test draws shapes with
hypothesis, runs the fast op and the reference on the same float64 data, and compares the
output and every input gradient. float32 and inputs in other memory layouts are checked
too, since the fast paths branch on them.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minideep as md
import minideep.nn.functional as F
from minideep import backend
from minideep.backend import as_numpy, to_device
from minideep.ops import conv as conv_module
from minideep.ops import reference

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _close(got: Any, want: Any, rtol: float = 1e-10, atol: float = 1e-10) -> None:
    np.testing.assert_allclose(as_numpy(got), as_numpy(want), rtol=rtol, atol=atol)


def _data(shape: tuple[int, ...], seed: int, device: str, dtype: Any = np.float64) -> Any:
    return to_device(np.random.default_rng(seed).standard_normal(shape).astype(dtype), device)


def _run(fn, arrays: list[Any], needs_grad: list[bool], grad: Any) -> tuple[Any, list[Any]]:
    """Apply ``fn`` to tensors made from ``arrays``, backpropagate ``grad``; (output, input grads)."""
    tensors = [md.Tensor(a, requires_grad=r) if a is not None else None for a, r in zip(arrays, needs_grad)]
    y = fn(*tensors)
    y.backward(grad)
    return y.data, [t.grad if t is not None else None for t in tensors]


# --- convolution ----------------------------------------------------------------------------

conv_cases = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c_in": st.integers(1, 4), "c_out": st.integers(1, 4),
    "h": st.integers(1, 9), "w": st.integers(1, 9), "kh": st.integers(1, 4), "kw": st.integers(1, 4),
    "stride": st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 2), (3, 2)]),
    "ph": st.integers(0, 2), "pw": st.integers(0, 2), "bias": st.booleans(), "x_grad": st.booleans(),
})


def _conv_against_reference(case: dict, device: str, dtype: Any = np.float64, tol: float = 1e-10) -> None:
    kh = min(case["kh"], case["h"] + 2 * case["ph"])
    kw = min(case["kw"], case["w"] + 2 * case["pw"])
    x = _data((case["n"], case["c_in"], case["h"], case["w"]), 0, device, dtype)
    w = _data((case["c_out"], case["c_in"], kh, kw), 1, device, dtype)
    b = _data((case["c_out"],), 2, device, dtype) if case["bias"] else None
    stride, padding = case["stride"], (case["ph"], case["pw"])
    want_y, backward = reference.conv2d(x, w, b, stride, padding)
    g = _data(want_y.shape, 3, device, dtype)
    want_grads = backward(g)
    got_y, got_grads = _run(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding),
                            [x, w, b], [case["x_grad"], True, True], g)
    _close(got_y, want_y, tol, tol)
    if case["x_grad"]:
        _close(got_grads[0], want_grads[0], tol, tol)
    _close(got_grads[1], want_grads[1], tol, tol)
    if b is not None:
        _close(got_grads[2], want_grads[2], tol, tol)


@SETTINGS
@given(case=conv_cases, fold=st.booleans())
def test_conv2d_equals_im2col_reference(case: dict, fold: bool, device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Narrow inputs fold the kernel rows into wider products; check both ways on every shape.
    monkeypatch.setattr(conv_module, "FOLD_BELOW_CHANNELS", 16 if fold else 0)
    _conv_against_reference(case, device)


@SETTINGS
@given(case=conv_cases, work=st.integers(1, 400), group=st.integers(1, 4), threads=st.integers(1, 3),
       fold=st.booleans())
def test_conv2d_row_blocks_and_threads_of_any_number_give_the_same_result(
        case: dict, work: int, group: int, threads: int, fold: bool, device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conv_module, "FOLD_BELOW_CHANNELS", 16 if fold else 0)
    monkeypatch.setattr(conv_module, "BLOCK_WORK", work)  # many blocks, and a ragged last one
    monkeypatch.setattr(conv_module, "BLOCKS_PER_GROUP", group)
    monkeypatch.setattr(backend, "_num_threads", threads)  # what md.set_num_threads sets, without the BLAS limit
    _conv_against_reference(case, device)


def test_conv2d_float32_at_a_vgg_shape_matches_reference(device: str) -> None:
    case = {"n": 4, "c_in": 32, "c_out": 32, "h": 16, "w": 16, "kh": 3, "kw": 3, "stride": (1, 1),
            "ph": 1, "pw": 1, "bias": True, "x_grad": True}
    _conv_against_reference(case, device, np.float32, 2e-4)


def test_conv2d_first_layer_float32_matches_reference(device: str) -> None:
    case = {"n": 4, "c_in": 3, "c_out": 8, "h": 12, "w": 12, "kh": 3, "kw": 3, "stride": (1, 1),
            "ph": 1, "pw": 1, "bias": False, "x_grad": False}
    _conv_against_reference(case, device, np.float32, 2e-4)


def test_conv2d_output_is_stored_channels_last(device: str) -> None:
    x = md.Tensor(_data((2, 3, 6, 6), 0, device))
    y = F.conv2d(x, md.Tensor(_data((5, 3, 3, 3), 1, device)), padding=1).data
    assert y.shape == (2, 5, 6, 6)
    assert y.strides[1] == y.itemsize  # channels vary fastest in memory


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed_view"])
def test_conv2d_accepts_inputs_in_any_memory_layout(layout: str, device: str) -> None:
    base = _data((2, 3, 5, 7), 0, device)
    if layout == "channels_last":
        x = base.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    elif layout == "transposed_view":
        x = _data((2, 3, 7, 5), 0, device).transpose(0, 1, 3, 2)
        base = x.copy()
    else:
        x = base
    w = _data((4, 3, 3, 3), 1, device)
    want, backward = reference.conv2d(base, w, None, (1, 1), (1, 1))
    g = _data(want.shape, 2, device)
    got, grads = _run(lambda x, w: F.conv2d(x, w, padding=1), [x, w], [True, True], g)
    _close(got, want)
    _close(grads[0], backward(g)[0])


def test_conv2d_chain_of_layers_matches_reference(device: str) -> None:
    """Conv -> conv: the second reads the first's channels-last output; gradients through both."""
    x = _data((2, 3, 6, 6), 0, device)
    w1, w2 = _data((4, 3, 3, 3), 1, device), _data((5, 4, 3, 3), 2, device)
    h, back1 = reference.conv2d(x, w1, None, (1, 1), (1, 1))
    y, back2 = reference.conv2d(h, w2, None, (1, 1), (1, 1))
    g = _data(y.shape, 3, device)
    gh, gw2, _ = back2(g)
    gx, gw1, _ = back1(gh)
    got, grads = _run(lambda x, a, b: F.conv2d(F.conv2d(x, a, padding=1), b, padding=1),
                      [x, w1, w2], [True, True, True], g)
    _close(got, y)
    for have, want in zip(grads, (gx, gw1, gw2)):
        _close(have, want)


# --- pooling ---------------------------------------------------------------------------------

pool_cases = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c": st.integers(1, 4), "h": st.integers(2, 9), "w": st.integers(2, 9),
    "kh": st.integers(1, 3), "kw": st.integers(1, 3), "stride": st.sampled_from([None, 1, 2, (1, 2)]),
    "padding": st.sampled_from([0, 1]), "channels_last": st.booleans(),
})


def _pool_against_reference(op: str, case: dict, device: str) -> None:
    kernel = (min(case["kh"], case["h"]), min(case["kw"], case["w"]))
    padding = (min(case["padding"], kernel[0] // 2), min(case["padding"], kernel[1] // 2))
    stride = kernel if case["stride"] is None else (case["stride"],) * 2 if isinstance(case["stride"], int) else case["stride"]
    shape = (case["n"], case["c"], case["h"], case["w"])
    # Distinct values: with ties the maximum's position is a choice, not a fact.
    values = np.random.default_rng(0).permutation(np.prod(shape)).reshape(shape).astype(np.float64)
    x = to_device(values, device)
    if case["channels_last"]:
        x = x.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    fast = F.max_pool2d if op == "max" else F.avg_pool2d
    ref = reference.max_pool2d if op == "max" else reference.avg_pool2d
    want, backward = ref(x, kernel, stride, padding)
    g = _data(want.shape, 1, device)
    got, grads = _run(lambda t: fast(t, kernel, stride, padding), [x], [True], g)
    _close(got, want)
    _close(grads[0], backward(g)[0])


@SETTINGS
@given(case=pool_cases)
def test_max_pool2d_equals_reference(case: dict, device: str) -> None:
    _pool_against_reference("max", case, device)


@SETTINGS
@given(case=pool_cases)
def test_avg_pool2d_equals_reference(case: dict, device: str) -> None:
    _pool_against_reference("avg", case, device)


@pytest.mark.parametrize("op", ["max", "avg"])
def test_pooling_keeps_a_channels_last_input_channels_last(op: str, device: str) -> None:
    x = _data((2, 3, 8, 8), 0, device).transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    t = md.Tensor(x, requires_grad=True)
    seen: list[Any] = []
    t.register_hook(seen.append)  # the gradient as the op returned it (a leaf's .grad is a copy)
    y = (F.max_pool2d if op == "max" else F.avg_pool2d)(t, 2)
    y.backward(_data(y.shape, 1, device))
    assert y.data.strides[1] == y.data.itemsize
    assert seen[0].strides[1] == seen[0].itemsize


def test_adaptive_avg_pool2d_gradient_is_the_spread_mean(device: str) -> None:
    x = _data((2, 3, 4, 5), 0, device)
    g = _data((2, 3, 1, 1), 1, device)
    got, grads = _run(lambda t: F.adaptive_avg_pool2d(t, 1), [x], [True], g)
    _close(got, x.mean(axis=(2, 3), keepdims=True))
    _close(grads[0], np.broadcast_to(as_numpy(g) / 20, (2, 3, 4, 5)))


# --- batch norm ------------------------------------------------------------------------------

@SETTINGS
@given(n=st.integers(2, 4), c=st.integers(1, 4), hw=st.sampled_from([None, (1, 1), (3, 4)]), channels_last=st.booleans())
def test_batch_norm_training_equals_reference(n: int, c: int, hw: Any, channels_last: bool, device: str) -> None:
    shape = (n, c) if hw is None else (n, c, *hw)
    x = _data(shape, 0, device)
    if channels_last and hw is not None:
        x = x.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    gamma, beta = _data((c,), 1, device), _data((c,), 2, device)
    want, backward = reference.batch_norm(x, gamma, beta)
    g = _data(shape, 3, device)
    got, grads = _run(lambda x, a, b: F.batch_norm(x, None, None, a, b, training=True),
                      [x, gamma, beta], [True, True, True], g)
    _close(got, want, 1e-9, 1e-9)
    for have, expected in zip(grads, backward(g)):
        _close(have, expected, 1e-9, 1e-9)


def test_batch_norm_backward_does_not_depend_on_a_later_running_stat_update(device: str) -> None:
    """Evaluation-mode backward uses the statistics of its forward, even if they change in between."""
    x = _data((4, 3, 2, 2), 0, device)
    mean, var = _data((3,), 1, device), 1 + _data((3,), 2, device) ** 2
    g = _data(x.shape, 3, device)
    t = md.Tensor(x, requires_grad=True)
    gamma = md.Tensor(_data((3,), 4, device), requires_grad=True)
    y = F.batch_norm(t, mean, var, gamma, None, training=False)
    expected = (as_numpy(g) * ((as_numpy(x) - as_numpy(mean).reshape(1, 3, 1, 1))
                / np.sqrt(as_numpy(var).reshape(1, 3, 1, 1) + 1e-5))).sum(axis=(0, 2, 3))
    mean += 5  # as a training step elsewhere would
    y.backward(g)
    _close(gamma.grad, expected)


# --- the GPU path ----------------------------------------------------------------------------

def test_a_vgg_training_step_on_the_gpu_never_goes_back_to_the_host(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every array of a step stays a CuPy array: no op copies to the host and back.

    CuPy refuses implicit conversions (a NumPy call on device data raises TypeError), and
    ``as_numpy`` is the one explicit way back, so it is made to fail during the step.
    """
    if device != "gpu":
        pytest.skip("checks the CuPy path; runs with MINIDEEP_DEVICE=gpu on a GPU")
    import minideep.autograd as autograd
    import minideep.backend as backend
    from minideep.models.vgg import VGG
    from minideep.optim import Adam

    model = VGG(1, num_filters=8, num_classes=10, batch_norm=True).to("gpu")
    opt = Adam(list(model.named_parameters()))
    x = md.tensor(_data((4, 3, 16, 16), 0, device, np.float32))
    y = to_device(np.array([1, 2, 3, 4]), device)

    def no_host_copy(array: Any) -> Any:
        raise AssertionError("as_numpy called inside a GPU training step (a host round trip)")

    monkeypatch.setattr(backend, "as_numpy", no_host_copy)
    monkeypatch.setattr(autograd, "as_numpy", no_host_copy)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    monkeypatch.undo()
    assert loss.device == "gpu"
    for name, p in model.named_parameters():
        assert p.device == "gpu" and backend.device_of(p.grad) == "gpu", name
