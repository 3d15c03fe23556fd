"""The fast CPU kernels (minideep/ops/fast/) equal the plain ops they replace.

Convolution, pooling and batch norm have fast kernels (shifted matrix products in row blocks
over threads, folded thin channels, channels-last layouts, in-place batch norm); each test
draws shapes with hypothesis, runs the op with ``md.ops.use_fast_kernels(True)`` and with
``use_fast_kernels(False)`` (the textbook op) on the same float64 data, and compares the
output and every input gradient. float32 and inputs in other memory layouts are checked
too, since the fast kernels branch on them.
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
from minideep.ops import fast
from minideep.ops.conv import ConvolutionBackward
from minideep.ops.fast import blocked, fold, shifted_conv
from minideep.ops.normalization import BatchNormBackward
from minideep.ops.pool import AdaptiveAvgPool2dBackward, AvgPool2dBackward, MaxPool2dBackward

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _close(got: Any, want: Any, rtol: float = 1e-10, atol: float = 1e-10) -> None:
    np.testing.assert_allclose(as_numpy(got), as_numpy(want), rtol=rtol, atol=atol)


def _data(shape: tuple[int, ...], seed: int, device: str, dtype: Any = np.float64) -> Any:
    return to_device(np.random.default_rng(seed).standard_normal(shape).astype(dtype), device)


def _run(fn, arrays: list[Any], needs_grad: list[bool], grad: Any, use_fast: bool) -> tuple[Any, list[Any], str]:
    """Apply ``fn`` to tensors made from ``arrays``, backpropagate ``grad``; (output, input grads, grad_fn name)."""
    with md.ops.use_fast_kernels(use_fast):
        tensors = [md.Tensor(a, requires_grad=r) if a is not None else None for a, r in zip(arrays, needs_grad)]
        y = fn(*tensors)
        name = type(y.grad_fn).__name__
        y.backward(grad)
    return y.data, [t.grad if t is not None else None for t in tensors], name


def _fast_equals_plain(fn, arrays: list[Any], needs_grad: list[bool], grad: Any, tol: float = 1e-10) -> str:
    """The fast kernel's output and gradients equal the plain op's; returns the fast kernel's name."""
    want_y, want_grads, plain_name = _run(fn, arrays, needs_grad, grad, use_fast=False)
    got_y, got_grads, fast_name = _run(fn, arrays, needs_grad, grad, use_fast=True)
    assert plain_name in ("ConvolutionBackward", "MaxPool2dBackward", "AvgPool2dBackward",
                          "AdaptiveAvgPool2dBackward", "BatchNormBackward"), plain_name
    _close(got_y, want_y, tol, tol)
    for have, want, needed in zip(got_grads, want_grads, needs_grad):
        if needed and want is not None:
            _close(have, want, tol, tol)
    return fast_name


# --- the switch ------------------------------------------------------------------------------

def test_the_fast_kernels_are_chosen_on_numpy_and_the_switch_turns_them_off() -> None:
    x = np.zeros((1, 1, 4, 4))
    assert fast.kernel_for("conv2d", ConvolutionBackward, x, stride=(1, 1)) is shifted_conv.ShiftedConvolutionBackward
    assert fast.kernel_for("conv2d", ConvolutionBackward, x, stride=(2, 2)).__name__ == "ChannelsLastConvolutionBackward"
    assert fast.kernel_for("batch_norm", BatchNormBackward, x).__name__ == "InPlaceBatchNormBackward"
    with md.ops.use_fast_kernels(False):
        assert not md.ops.fast_kernels_enabled()
        for op, plain in (("conv2d", ConvolutionBackward), ("max_pool2d", MaxPool2dBackward),
                          ("avg_pool2d", AvgPool2dBackward), ("adaptive_avg_pool2d", AdaptiveAvgPool2dBackward),
                          ("batch_norm", BatchNormBackward)):
            assert fast.kernel_for(op, plain, x, stride=(1, 1)) is plain
    assert md.ops.fast_kernels_enabled()


def test_arrays_of_another_module_get_the_plain_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CuPy arrays the dispatch picks the plain im2col path (one large product per direction)."""
    monkeypatch.setattr(fast, "get_array_module", lambda x: object())  # stands in for cupy
    x = np.zeros((1, 1, 4, 4))
    assert fast.kernel_for("conv2d", ConvolutionBackward, x, stride=(1, 1)) is ConvolutionBackward
    assert fast.kernel_for("batch_norm", BatchNormBackward, x) is BatchNormBackward


def test_the_environment_variable_turns_the_fast_kernels_off() -> None:
    import os
    import subprocess
    import sys

    code = "import minideep as md; print(md.ops.fast_kernels_enabled())"
    env = {**os.environ, "MINIDEEP_PLAIN_OPS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- convolution ----------------------------------------------------------------------------

conv_cases = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c_in": st.integers(1, 4), "c_out": st.integers(1, 4),
    "h": st.integers(1, 9), "w": st.integers(1, 9), "kh": st.integers(1, 4), "kw": st.integers(1, 4),
    "stride": st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 2), (3, 2)]),
    "ph": st.integers(0, 2), "pw": st.integers(0, 2), "bias": st.booleans(), "x_grad": st.booleans(),
})


def _conv_fast_equals_plain(case: dict, device: str, dtype: Any = np.float64, tol: float = 1e-10) -> None:
    kh = min(case["kh"], case["h"] + 2 * case["ph"])
    kw = min(case["kw"], case["w"] + 2 * case["pw"])
    x = _data((case["n"], case["c_in"], case["h"], case["w"]), 0, device, dtype)
    w = _data((case["c_out"], case["c_in"], kh, kw), 1, device, dtype)
    b = _data((case["c_out"],), 2, device, dtype) if case["bias"] else None
    stride, padding = case["stride"], (case["ph"], case["pw"])
    oh, ow = (case["h"] + 2 * case["ph"] - kh) // stride[0] + 1, (case["w"] + 2 * case["pw"] - kw) // stride[1] + 1
    g = _data((case["n"], case["c_out"], oh, ow), 3, device, dtype)
    _fast_equals_plain(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding),
                       [x, w, b], [case["x_grad"], True, True], g, tol)


@SETTINGS
@given(case=conv_cases, fold_thin=st.booleans())
def test_conv2d_fast_kernels_equal_the_im2col_op(case: dict, fold_thin: bool, device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Narrow inputs fold the kernel rows into wider products; check both ways on every shape.
    monkeypatch.setattr(fold, "FOLD_BELOW_CHANNELS", 16 if fold_thin else 0)
    _conv_fast_equals_plain(case, device)


@SETTINGS
@given(case=conv_cases, work=st.integers(1, 400), group=st.integers(1, 4), threads=st.integers(1, 3),
       fold_thin=st.booleans())
def test_conv2d_row_blocks_and_threads_of_any_number_give_the_same_result(
        case: dict, work: int, group: int, threads: int, fold_thin: bool, device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fold, "FOLD_BELOW_CHANNELS", 16 if fold_thin else 0)
    monkeypatch.setattr(blocked, "BLOCK_WORK", work)  # many blocks, and a ragged last one
    monkeypatch.setattr(shifted_conv, "BLOCKS_PER_GROUP", group)
    monkeypatch.setattr(backend, "_num_threads", threads)
    _conv_fast_equals_plain(case, device)


def test_the_thread_count_is_read_at_every_call(device: str) -> None:
    before = backend.get_num_threads()
    try:
        for threads in (1, 3, 2):
            backend.set_num_threads(threads)
            _conv_fast_equals_plain({"n": 2, "c_in": 4, "c_out": 3, "h": 9, "w": 9, "kh": 3, "kw": 3, "stride": (1, 1),
                                     "ph": 1, "pw": 1, "bias": True, "x_grad": True}, device)
            assert backend.get_num_threads() == threads
    finally:
        backend.set_num_threads(before)


def test_conv2d_float32_at_a_vgg_shape_matches_the_plain_op(device: str) -> None:
    case = {"n": 4, "c_in": 32, "c_out": 32, "h": 16, "w": 16, "kh": 3, "kw": 3, "stride": (1, 1),
            "ph": 1, "pw": 1, "bias": True, "x_grad": True}
    _conv_fast_equals_plain(case, device, np.float32, 2e-4)


def test_conv2d_first_layer_float32_matches_the_plain_op(device: str) -> None:
    case = {"n": 4, "c_in": 3, "c_out": 8, "h": 12, "w": 12, "kh": 3, "kw": 3, "stride": (1, 1),
            "ph": 1, "pw": 1, "bias": False, "x_grad": False}
    _conv_fast_equals_plain(case, device, np.float32, 2e-4)


@pytest.mark.parametrize("use_fast", [True, False], ids=["fast", "plain"])
def test_conv2d_of_an_empty_batch_has_zero_weight_gradients(use_fast: bool, device: str) -> None:
    x = md.Tensor(_data((0, 3, 5, 5), 0, device), requires_grad=True)
    w = md.Tensor(_data((4, 3, 3, 3), 1, device), requires_grad=True)
    b = md.Tensor(_data((4,), 2, device), requires_grad=True)
    with md.ops.use_fast_kernels(use_fast):
        y = F.conv2d(x, w, b, padding=1)
        assert y.shape == (0, 4, 5, 5)
        y.sum().backward()
    assert x.grad.shape == (0, 3, 5, 5)
    _close(w.grad, np.zeros((4, 3, 3, 3)))
    _close(b.grad, np.zeros(4))


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
    else:
        x = base
    w = _data((4, 3, 3, 3), 1, device)
    g = _data((2, 4, 5, 7), 2, device)
    _fast_equals_plain(lambda x, w: F.conv2d(x, w, padding=1), [x, w], [True, True], g)


def test_conv2d_chain_of_layers_matches_the_plain_ops(device: str) -> None:
    """Conv -> conv: the second reads the first's channels-last output; gradients through both."""
    x = _data((2, 3, 6, 6), 0, device)
    w1, w2 = _data((4, 3, 3, 3), 1, device), _data((5, 4, 3, 3), 2, device)
    g = _data((2, 5, 6, 6), 3, device)
    _fast_equals_plain(lambda x, a, b: F.conv2d(F.conv2d(x, a, padding=1), b, padding=1),
                       [x, w1, w2], [True, True, True], g)


# --- pooling ---------------------------------------------------------------------------------

pool_cases = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c": st.integers(1, 4), "h": st.integers(2, 9), "w": st.integers(2, 9),
    "kh": st.integers(1, 3), "kw": st.integers(1, 3), "stride": st.sampled_from([None, 1, 2, (1, 2)]),
    "padding": st.sampled_from([0, 1]), "channels_last": st.booleans(),
})


def _pool_fast_equals_plain(op: str, case: dict, device: str) -> None:
    kernel = (min(case["kh"], case["h"]), min(case["kw"], case["w"]))
    padding = (min(case["padding"], kernel[0] // 2), min(case["padding"], kernel[1] // 2))
    stride = kernel if case["stride"] is None else (case["stride"],) * 2 if isinstance(case["stride"], int) else case["stride"]
    shape = (case["n"], case["c"], case["h"], case["w"])
    # Distinct values: with ties the maximum's position is a choice, not a fact.
    values = np.random.default_rng(0).permutation(np.prod(shape)).reshape(shape).astype(np.float64)
    x = to_device(values, device)
    if case["channels_last"]:
        x = x.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    pool = F.max_pool2d if op == "max" else F.avg_pool2d
    oh = (case["h"] + 2 * padding[0] - kernel[0]) // stride[0] + 1
    ow = (case["w"] + 2 * padding[1] - kernel[1]) // stride[1] + 1
    g = _data((case["n"], case["c"], oh, ow), 1, device)
    _fast_equals_plain(lambda t: pool(t, kernel, stride, padding), [x], [True], g)


@SETTINGS
@given(case=pool_cases)
def test_max_pool2d_fast_equals_plain(case: dict, device: str) -> None:
    _pool_fast_equals_plain("max", case, device)


@SETTINGS
@given(case=pool_cases)
def test_avg_pool2d_fast_equals_plain(case: dict, device: str) -> None:
    _pool_fast_equals_plain("avg", case, device)


@pytest.mark.parametrize("op", ["max", "avg"])
def test_pooling_keeps_a_channels_last_input_channels_last(op: str, device: str) -> None:
    if device != "cpu":
        pytest.skip("a fast CPU kernel: the gpu variant runs the plain op")
    x = _data((2, 3, 8, 8), 0, device).transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    t = md.Tensor(x, requires_grad=True)
    seen: list[Any] = []
    t.register_hook(seen.append)  # the gradient as the op returned it (a leaf's .grad is a copy)
    y = (F.max_pool2d if op == "max" else F.avg_pool2d)(t, 2)
    y.backward(_data(y.shape, 1, device))
    assert y.data.strides[1] == y.data.itemsize
    assert seen[0].strides[1] == seen[0].itemsize


@pytest.mark.parametrize("channels_last", [False, True])
def test_adaptive_avg_pool2d_fast_equals_plain_and_spreads_the_mean(channels_last: bool, device: str) -> None:
    x = _data((2, 3, 4, 5), 0, device)
    if channels_last:
        x = x.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    g = _data((2, 3, 1, 1), 1, device)
    _fast_equals_plain(lambda t: F.adaptive_avg_pool2d(t, 1), [x], [True], g)
    got, grads, _ = _run(lambda t: F.adaptive_avg_pool2d(t, 1), [x], [True], g, use_fast=False)
    _close(got, x.mean(axis=(2, 3), keepdims=True))
    _close(grads[0], np.broadcast_to(as_numpy(g) / 20, (2, 3, 4, 5)))


# --- activations -----------------------------------------------------------------------------

def _activation(op: str, slope: float):
    return F.relu if op == "relu" else (lambda t: F.leaky_relu(t, slope))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "cropped_view"])
@pytest.mark.parametrize(("op", "slope"), [("relu", 0.0), ("leaky_relu", 0.01), ("leaky_relu", 0.0),
                                           ("leaky_relu", 1.0), ("leaky_relu", 1.5), ("leaky_relu", -0.2)])
def test_threaded_activations_equal_the_plain_ops_bit_for_bit(op: str, slope: float, layout: str, threads: int) -> None:
    """float32, large enough to be shared among threads, in the layouts a convolution hands on."""
    shape = (5, 8, 40, 41)  # 65,600 elements: just above THREADED_ABOVE
    assert np.prod(shape) >= fast.THREADED_ABOVE
    rng = np.random.default_rng(0)
    if layout == "cropped_view":  # what the shifted convolution returns: channels-last, junk rows cut off
        x = rng.standard_normal((5, 42, 43, 8)).astype(np.float32)[:, :40, :41].transpose(0, 3, 1, 2)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
        if layout == "channels_last":
            x = x.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    x[0, 0, 0, :3] = [0.0, -0.0, np.nan]  # the edges of x > 0
    g = rng.standard_normal(shape).astype(np.float32)
    previous = backend.get_num_threads()
    backend.set_num_threads(threads)
    try:
        want_y, want_grads, plain = _run(_activation(op, slope), [x], [True], g, use_fast=False)
        got_y, got_grads, fast_name = _run(_activation(op, slope), [x], [True], g, use_fast=True)
    finally:
        backend.set_num_threads(previous)
    assert plain in ("ReluBackward", "LeakyReluBackward") and fast_name == "Threaded" + plain
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_array_equal(got_grads[0], want_grads[0])
    assert got_y.strides == np.empty_like(x).strides  # the output keeps the input's layout


@pytest.mark.parametrize("op", ["relu", "leaky_relu"])
def test_small_activations_take_the_plain_op(op: str) -> None:
    """Below THREADED_ABOVE elements a thread's start costs more than its share saves."""
    small = np.ones((2, 3), np.float32)
    plain = {"relu": "ReluBackward", "leaky_relu": "LeakyReluBackward"}[op]
    assert _run(_activation(op, 0.01), [small], [True], small, use_fast=True)[2] == plain
    assert _run(_activation(op, 0.01), [np.float32(2.0)], [True], np.float32(1.0), use_fast=True)[2] == plain


@pytest.mark.parametrize("op", ["relu", "leaky_relu"])
def test_activations_take_what_a_tensor_takes(op: str) -> None:
    """A Python number or a list is wrapped into a Tensor, as every op does, before a kernel is chosen."""
    fn = getattr(md.ops, op)
    assert float(fn(2.0).data) == 2.0
    np.testing.assert_allclose(fn([1.0, -2.0]).data, [1.0, 0.0 if op == "relu" else -0.02])


# --- batch norm ------------------------------------------------------------------------------

@SETTINGS
@given(n=st.integers(2, 4), c=st.integers(1, 4), hw=st.sampled_from([None, (1, 1), (3, 4)]), channels_last=st.booleans(),
       training=st.booleans())
def test_batch_norm_fast_equals_plain(n: int, c: int, hw: Any, channels_last: bool, training: bool, device: str) -> None:
    shape = (n, c) if hw is None else (n, c, *hw)
    x = _data(shape, 0, device)
    if channels_last and hw is not None:
        x = x.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    gamma, beta = _data((c,), 1, device), _data((c,), 2, device)
    g = _data(shape, 3, device)
    stats = [(_data((c,), 4, device), 1 + _data((c,), 5, device) ** 2) for _ in range(2)]
    calls = iter(stats)

    def bn(x, a, b):
        mean, var = next(calls)
        return F.batch_norm(x, mean, var, a, b, training=training)

    _fast_equals_plain(bn, [x, gamma, beta], [True, True, True], g, 1e-9)
    _close(stats[0][0], stats[1][0], 1e-12, 1e-12)  # both updated the running statistics alike
    _close(stats[0][1], stats[1][1], 1e-12, 1e-12)


@pytest.mark.parametrize("use_fast", [True, False], ids=["fast", "plain"])
def test_batch_norm_backward_does_not_depend_on_a_later_running_stat_update(use_fast: bool, device: str) -> None:
    """Evaluation-mode backward uses the statistics of its forward, even if they change in between."""
    x = _data((4, 3, 2, 2), 0, device)
    mean, var = _data((3,), 1, device), 1 + _data((3,), 2, device) ** 2
    g = _data(x.shape, 3, device)
    t = md.Tensor(x, requires_grad=True)
    gamma = md.Tensor(_data((3,), 4, device), requires_grad=True)
    with md.ops.use_fast_kernels(use_fast):
        y = F.batch_norm(t, mean, var, gamma, None, training=False)
    expected = (as_numpy(g) * ((as_numpy(x) - as_numpy(mean).reshape(1, 3, 1, 1))
                / np.sqrt(as_numpy(var).reshape(1, 3, 1, 1) + 1e-5))).sum(axis=(0, 2, 3))
    mean += 5  # as a training step elsewhere would
    y.backward(g)
    _close(gamma.grad, expected)


# --- a whole network ---------------------------------------------------------------------------

def test_a_vgg_with_batch_norm_gives_the_same_loss_and_gradients_with_and_without_fast_kernels(device: str) -> None:
    """Conv, batch norm, leaky ReLU, average pooling and the head, chained: every layout hand-over."""
    from minideep.models.vgg import VGG

    model = VGG(1, num_filters=8, num_classes=10, batch_norm=True, dtype=np.float64).to(device)
    x = _data((4, 3, 16, 16), 0, device)
    y = to_device(np.array([1, 2, 3, 4]), device)
    results = []
    for use_fast in (False, True):
        model.zero_grad()
        with md.ops.use_fast_kernels(use_fast):
            loss = F.cross_entropy(model(md.Tensor(x)), y)
            loss.backward()
        results.append((loss.item(), {name: as_numpy(p.grad).copy() for name, p in model.named_parameters()}))
    (plain_loss, plain_grads), (fast_loss, fast_grads) = results
    assert abs(plain_loss - fast_loss) < 1e-12
    for name, grad in plain_grads.items():
        _close(fast_grads[name], grad, 1e-9, 1e-11)


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
