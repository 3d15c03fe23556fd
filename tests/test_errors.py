"""Bad input gets a ValueError/TypeError (RuntimeError for graph misuse) that names the op and the
shapes or values, never a bare NumPy traceback from deep inside the engine."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F


def error_of(call: Callable[[], object], *fragments: str, types: tuple[type, ...] = (ValueError, TypeError)) -> BaseException:
    """Run ``call``, check that it raised exactly one of ``types`` whose message holds every fragment."""
    with pytest.raises(BaseException) as info:
        call()
    e = info.value
    # type(e) in ..., not isinstance: NumPy's AxisError is a ValueError subclass that names no op.
    assert type(e) in types, f"{type(e).__name__} instead of {[t.__name__ for t in types]}: {e}"
    for fragment in fragments:
        assert fragment in str(e), f"{fragment!r} not in {str(e)!r}"
    return e


@pytest.fixture
def t(device):
    """``t(*shape)``: a float64 tensor of ones on the device, requiring grad."""
    return lambda *shape: md.tensor(md.backend.to_device(np.ones(shape), device), requires_grad=True)


# --------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize("op, name", [(lambda a, b: a + b, "add"), (lambda a, b: a - b, "sub"), (lambda a, b: a * b, "mul"),
                                      (lambda a, b: a / b, "div")])
def test_broadcasting_failure(t, op, name):
    error_of(lambda: op(t(2, 3), t(4)), f"{name}: shapes (2, 3) and (4,) cannot be broadcast")


def test_broadcasting_failure_with_an_array(t):
    error_of(lambda: t(2, 3) + np.ones((3, 2)), "add: shapes (2, 3) and (3, 2)")


def test_maximum_broadcasting_failure(t):
    error_of(lambda: md.maximum(t(2, 3), t(2)), "maximum", "(2, 3)", "(2,)")


def test_where_broadcasting_failure(t):
    error_of(lambda: md.where(np.ones((2, 3), dtype=bool), t(2, 3), t(4)), "where", "(2, 3)", "(4,)")


def test_matmul_inner_dimensions(t):
    error_of(lambda: t(2, 3) @ t(4, 5), "matmul: inner dimensions differ", "(2, 3)", "(4, 5)", "3 != 4")


def test_matmul_batch_dimensions(t):
    error_of(lambda: t(2, 3, 4) @ t(3, 4, 5), "matmul", "(2, 3, 4)", "(3, 4, 5)")


def test_matmul_of_a_vector(t):
    error_of(lambda: t(3) @ t(3, 2), "matmul: both operands need at least 2 dimensions", "(3,)")


def test_pow_with_a_tensor_exponent(t):
    error_of(lambda: t(2) ** t(2), "pow: the exponent must be a Python number")


# --------------------------------------------------------------------------- the graph and tensors


def test_backward_of_a_non_scalar(t):
    error_of(lambda: (t(2, 3) * 2).backward(), "backward: output has shape (2, 3)", "grad=")


def test_backward_through_a_freed_graph(t):
    y = (t(3) * 2).sum()
    y.backward()
    error_of(y.backward, "backward", "freed", "retain_graph=True", types=(RuntimeError,))


def test_integer_tensor_requiring_grad():
    error_of(lambda: md.Tensor(np.arange(3), requires_grad=True), "tensor: only floating-point tensors", "int64")


def test_item_of_many_elements(t):
    error_of(lambda: t(2, 2).item(), "item: tensor has 4 elements (shape (2, 2))")


def test_unknown_device(t):
    error_of(lambda: t(2).to("cuda"), "device must be 'cpu' or 'gpu', got 'cuda'")


# --------------------------------------------------------------------------- reductions and shapes


@pytest.mark.parametrize("name", ["sum", "mean", "max", "var"])
def test_reduction_axis_out_of_range(t, name):
    error_of(lambda: getattr(t(2, 3), name)(axis=2), f"{name}: axis 2 is out of range for a tensor with 2 dimensions")


def test_var_without_degrees_of_freedom(t):
    error_of(lambda: t(1, 3).var(axis=0, ddof=1), "var: 1 elements along the axes with ddof=1")


def test_reshape_to_an_impossible_shape(t):
    error_of(lambda: t(2, 3).reshape(4, -1), "reshape: cannot reshape a tensor of shape (2, 3) (6 elements) into (4, -1)")


@pytest.mark.parametrize(
    "axes, fragment",
    [((0,), "axes (0,) are not a permutation"), ((0, 0), "axes (0, 0) are not a permutation"),
     ((0, 2), "axis 2 is out of range"), ((1, -3), "axis -3 is out of range"), ((0, 3), "axis 3 is out of range"),
     ((-3, 0), "axis -3 is out of range")],
    ids=str,
)
def test_transpose_with_bad_axes(t, axes, fragment):
    error_of(lambda: t(2, 3).transpose(*axes), "transpose: " + fragment)


def test_flatten_axis_out_of_range(t):
    error_of(lambda: t(2, 3).flatten(2), "flatten: axis 2 is out of range")


@pytest.mark.parametrize("key, fragment", [(5, "index 5"), ((0, 7), "index (0, 7)"), ((1, 2, 0), "index (1, 2, 0)"),
                                           (np.array([0, 3]), "does not fit"), (-4, "index -4")], ids=str)
def test_getitem_out_of_range(t, key, fragment):
    error_of(lambda: t(3, 4)[key], "getitem", fragment, "(3, 4)")


def test_cat_shape_mismatch(t):
    error_of(lambda: md.cat([t(3, 3), t(2, 4)], axis=0), "cat: tensor 1 has shape (2, 4) but tensor 0 has shape (3, 3)", "axis 0")


def test_cat_dimension_mismatch(t):
    error_of(lambda: md.cat([t(3, 3), t(3)], axis=0), "cat: tensor 1 has shape (3,)")


def test_cat_of_nothing():
    error_of(lambda: md.cat([], axis=0), "cat: expected a non-empty list")


def test_cat_axis_out_of_range(t):
    error_of(lambda: md.cat([t(2), t(2)], axis=1), "cat: axis 1 is out of range")


def test_stack_shape_mismatch(t):
    error_of(lambda: md.stack([t(2, 3), t(3, 2)]), "stack: tensor 1 has shape (3, 2) but tensor 0 has shape (2, 3)")


def test_pad_width_of_the_wrong_length(t):
    error_of(lambda: md.pad(t(2, 3), [(1, 1)] * 3), "pad: pad_width has 3 pairs but the tensor has 2 dimensions")


@pytest.mark.parametrize("pad_width", [-1, (1, -2), [(0, 0), (-1, 0)]], ids=str)
def test_negative_padding(t, pad_width):
    error_of(lambda: md.pad(t(2, 3), pad_width), "pad: pad_width must hold non-negative ints", "-")


@pytest.mark.parametrize("name", ["sum", "mean", "max", "var"])
def test_reduction_axis_of_the_wrong_type(t, name):
    error_of(lambda: getattr(t(2, 3), name)(axis=1.5), f"{name}: axis must be an int, a sequence of ints or None, got 1.5")


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_axis_out_of_range(t, name):
    error_of(lambda: getattr(F, name)(t(2, 3), axis=2), f"{name}: axis 2 is out of range")


# --------------------------------------------------------------------------- layers


def test_conv2d_channel_mismatch(t):
    error_of(lambda: F.conv2d(t(2, 3, 8, 8), t(4, 5, 3, 3)), "conv2d: input has 3 channels but weight expects 5")


def test_conv2d_input_not_4d(t):
    error_of(lambda: F.conv2d(t(3, 8, 8), t(4, 3, 3, 3)), "conv2d: input must have shape (N, C, H, W), got (3, 8, 8)")


def test_conv2d_weight_not_4d(t):
    error_of(lambda: F.conv2d(t(1, 3, 8, 8), t(4, 3, 3)), "conv2d: weight must have shape", "(4, 3, 3)")


def test_conv2d_bias_shape(t):
    error_of(lambda: F.conv2d(t(1, 3, 8, 8), t(4, 3, 3, 3), t(3)), "conv2d: bias has shape (3,)", "4 output channels")


def test_conv2d_kernel_larger_than_input(t):
    error_of(lambda: F.conv2d(t(1, 1, 2, 5), t(1, 1, 3, 3)), "conv2d: padded input height 2 is smaller than the kernel's 3")


@pytest.mark.parametrize("kwargs, fragment", [({"stride": 0}, "stride"), ({"padding": -1}, "padding"), ({"stride": (1, 2, 3)}, "stride")])
def test_conv2d_bad_stride_or_padding(t, kwargs, fragment):
    error_of(lambda: F.conv2d(t(1, 1, 5, 5), t(1, 1, 3, 3), **kwargs), "conv2d", fragment)


def test_linear_feature_mismatch(t):
    error_of(lambda: F.linear(t(4, 3), t(2, 5)), "linear: input has 3 features (shape (4, 3)) but weight expects 5")


def test_linear_bias_mismatch(t):
    error_of(lambda: F.linear(t(4, 3), t(2, 3), t(3)), "linear: bias has shape (3,)", "2 outputs")


def test_linear_weight_not_2d(t):
    error_of(lambda: F.linear(t(4, 3), t(3)), "linear: weight must have shape (out_features, in_features), got (3,)")


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pool_kernel_larger_than_input(t, name):
    error_of(lambda: getattr(F, name)(t(1, 2, 2, 2), 3), f"{name}: input of spatial size (2, 2) is smaller than the kernel (3, 3)")


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pool_padding_larger_than_half_the_kernel(t, name):
    error_of(lambda: getattr(F, name)(t(1, 2, 6, 6), 2, padding=2), f"{name}: padding (2, 2) must be at most half the kernel size")


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"])
def test_pool_input_not_4d(t, name):
    error_of(lambda: getattr(F, name)(t(2, 6, 6), 2 if name != "adaptive_avg_pool2d" else 1), name, "(2, 6, 6)")


def test_adaptive_pool_other_output_sizes(t):
    error_of(lambda: F.adaptive_avg_pool2d(t(1, 2, 4, 4), 2), "adaptive_avg_pool2d: only output_size=1")


def test_batch_norm_channel_mismatch(t):
    error_of(lambda: F.batch_norm(t(4, 3), np.zeros(5), np.ones(5), training=True),
             "batch_norm: input has 3 channels but running_mean has shape (5,)")
    error_of(lambda: F.batch_norm(t(2, 3, 4, 4), None, None, t(2), t(3), training=True),
             "batch_norm: input has 3 channels but weight has shape (2,)")


def test_batch_norm_input_rank(t):
    error_of(lambda: F.batch_norm(t(4, 3, 2), None, None, training=True), "batch_norm: input must have shape (N, C) or (N, C, H, W), got (4, 3, 2)")


def test_batch_norm_evaluation_needs_running_statistics(t):
    error_of(lambda: F.batch_norm(t(4, 3), None, None, training=False), "batch_norm: evaluation mode", "running_mean")


def test_batch_norm_training_needs_more_than_one_value(t):
    error_of(lambda: F.batch_norm(t(1, 3), None, None, training=True), "batch_norm: training needs more than one value per channel", "(1, 3)")


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_target_out_of_range(t, name):
    error_of(lambda: getattr(F, name)(t(4, 3), [0, 1, 5, 2]), f"{name}: target contains class 5 but input has 3 classes")
    error_of(lambda: getattr(F, name)(t(4, 3), [0, -1, 2, 2]), f"{name}: target contains class -1")


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_float_target(t, name):
    error_of(lambda: getattr(F, name)(t(4, 3), np.array([0.0, 1.0, 2.0, 1.0])), f"{name}: target must hold integer class indices", "float64")


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_target_of_the_wrong_shape(t, name):
    error_of(lambda: getattr(F, name)(t(4, 3), [0, 1, 2]), f"{name}: target has shape (3,) but input has shape (4, 3)")
    error_of(lambda: getattr(F, name)(t(4, 3), np.zeros((4, 3), dtype=int)), f"{name}: target has shape (4, 3)")


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_loss_input_not_2d(t, name):
    error_of(lambda: getattr(F, name)(t(4), [0, 1, 2, 1]), f"{name}: input must have shape (N, C), got (4,)")


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "mse_loss"])
def test_unknown_reduction(t, name):
    target = [0, 1] if name != "mse_loss" else t(2, 3)
    error_of(lambda: getattr(F, name)(t(2, 3), target, reduction="avg"), f"{name}: reduction must be one of", "'avg'")


def test_mse_loss_shape_mismatch(t):
    error_of(lambda: F.mse_loss(t(2, 3), t(3, 2)), "mse_loss: input has shape (2, 3) but target has shape (3, 2)")


def test_dropout_probability(t):
    error_of(lambda: F.dropout(t(3), p=2.0), "dropout: p must be in [0, 1], got 2.0")
