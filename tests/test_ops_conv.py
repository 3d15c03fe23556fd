"""F.conv2d against a direct loop over output pixels, and against finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F
from minideep.backend import as_numpy


@pytest.fixture(autouse=True, params=["fast", "plain"])
def kernels(request):
    """Every test here runs with the fast CPU kernels and with the plain (textbook) ops."""
    with md.ops.use_fast_kernels(request.param == "fast"):
        yield request.param


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def direct_conv2d(x, w, b, stride, padding):
    """The definition, one output pixel at a time: y[n,o,i,j] = b[o] + sum x_pad[n,:,s*i:s*i+kh, s*j:s*j+kw] * w[o]."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, _, hp, wp = xp.shape
    c_out, _, kh, kw = w.shape
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    y = np.zeros((n, c_out, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, sh * i : sh * i + kh, sw * j : sw * j + kw]
            y[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return y + (0 if b is None else b[None, :, None, None])


CASES = [
    # (input shape, kernel (kh, kw), stride, padding)
    ((2, 2, 5, 5), (3, 3), 1, 0),
    ((2, 2, 5, 5), (3, 3), 1, 1),
    ((1, 3, 6, 5), (3, 3), 2, 1),
    ((2, 2, 5, 6), (1, 1), 1, 0),
    ((2, 2, 5, 6), (1, 1), 2, 0),
    ((1, 2, 5, 6), (2, 3), (2, 1), (1, 0)),
    ((1, 2, 6, 5), (3, 1), 1, (0, 1)),
    ((2, 1, 7, 7), (5, 5), 3, 2),
    ((1, 2, 4, 4), (4, 4), 1, 0),  # the kernel covers the whole input
    ((1, 2, 4, 5), (2, 2), 2, (1, 2)),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("x_shape, kernel, stride, padding", CASES, ids=[f"{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}" for c in CASES])
def test_conv2d(randn, x_shape, kernel, stride, padding, bias):
    c_in = x_shape[1]
    x, w = randn(*x_shape, seed=1), randn(3, c_in, *kernel, seed=2)
    b = randn(3, seed=3) if bias else None
    y = F.conv2d(x, w, b, stride=stride, padding=padding)
    expected = direct_conv2d(x.numpy(), w.numpy(), b.numpy() if bias else None, stride, padding)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)
    inputs = [x, w, b] if bias else [x, w]
    assert md.gradcheck(lambda x, w, *b: F.conv2d(x, w, *b, stride=stride, padding=padding), inputs)


def test_conv2d_with_only_the_weight_trainable(randn):
    x, w = randn(1, 2, 5, 5, requires_grad=False), randn(3, 2, 3, 3, seed=1)
    assert md.gradcheck(lambda w: F.conv2d(x, w, padding=1), [w])
    assert x.grad is None


def test_conv2d_with_only_the_input_trainable(randn):
    x, w = randn(1, 2, 5, 5), randn(3, 2, 3, 3, seed=1, requires_grad=False)
    assert md.gradcheck(lambda x: F.conv2d(x, w, stride=2, padding=1), [x])


def test_conv2d_of_float32_stays_float32():
    x = md.tensor(np.ones((1, 2, 4, 4)), dtype=np.float32, requires_grad=True)
    w = md.tensor(np.ones((3, 2, 3, 3)), dtype=np.float32, requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_conv2d_output_size_formula(randn):
    # OH = (H + 2p - kh) // s + 1: the last rows that do not fill a window are dropped.
    y = F.conv2d(randn(1, 1, 7, 8), randn(2, 1, 3, 2, seed=1), stride=(2, 3), padding=(1, 0))
    assert y.shape == (1, 2, (7 + 2 - 3) // 2 + 1, (8 - 2) // 3 + 1)


# --- bad input gets a named error ------------------------------------------------------------

def test_conv2d_accepts_numpy_integers_as_stride_and_padding(randn):
    x, w = randn(1, 2, 5, 5), randn(3, 2, 3, 3, seed=1)
    y = F.conv2d(x, w, stride=np.int64(2), padding=np.int64(1))
    np.testing.assert_allclose(y.numpy(), F.conv2d(x, w, stride=2, padding=1).numpy())
    conv = md.nn.Conv2d(np.int64(2), np.int64(3), np.int64(3), stride=np.int32(1), padding=np.int64(1)).to(x.device)
    assert conv(x).shape == (1, 3, 5, 5) and conv.kernel_size == (3, 3) and type(conv.padding[0]) is int


@pytest.mark.parametrize("kwargs, fragment", [({"stride": 1.5}, "stride must be an int or a pair of ints, got 1.5"),
                                              ({"padding": 0.5}, "padding must be an int or a pair of ints, got 0.5"),
                                              ({"stride": (1, 2.0)}, "stride must be an int or a pair of ints"),
                                              ({"padding": "same"}, "padding must be an int or a pair of ints")])
def test_conv2d_refuses_non_integer_geometry_by_name(randn, kwargs, fragment):
    with pytest.raises(TypeError, match="conv2d: " + fragment.replace("(", r"\(").replace(")", r"\)")):
        F.conv2d(randn(1, 1, 5, 5), randn(1, 1, 3, 3, seed=1), **kwargs)


def test_conv2d_refuses_lists_by_name(randn):
    w = randn(1, 1, 3, 3)
    with pytest.raises(TypeError, match="conv2d: input must be a Tensor .* got list"):
        F.conv2d(np.ones((1, 1, 5, 5)).tolist(), w)
    with pytest.raises(TypeError, match="conv2d: weight must be a Tensor .* got list"):
        F.conv2d(randn(1, 1, 5, 5), w.numpy().tolist())
    with pytest.raises(TypeError, match="conv2d: bias must be a Tensor .* got list"):
        F.conv2d(randn(1, 1, 5, 5), w, [0.0])


def test_conv2d_refuses_an_empty_kernel(randn):
    with pytest.raises(ValueError, match=r"conv2d: the kernel must be at least 1x1, got 0x0 \(weight shape \(2, 1, 0, 0\)\)"):
        F.conv2d(randn(1, 1, 5, 5), md.tensor(np.ones((2, 1, 0, 0))))


@pytest.mark.parametrize("kernel_size", [0, (0, 0), (3, 0)])
def test_nn_conv2d_refuses_an_empty_kernel(kernel_size):
    with pytest.raises(ValueError, match="Conv2d: kernel_size and stride must be at least 1"):
        md.nn.Conv2d(1, 2, kernel_size)


@pytest.mark.parametrize("kwargs", [{"kernel_size": 1.5}, {"kernel_size": 3, "stride": 1.5}, {"kernel_size": [3]}])
def test_nn_conv2d_refuses_non_integer_geometry_by_name(kwargs):
    with pytest.raises(TypeError, match="Conv2d: (kernel_size|stride) must be an int or a pair of ints"):
        md.nn.Conv2d(1, 2, **kwargs)


def test_nn_conv2d_refuses_a_list_input():
    with pytest.raises(TypeError, match="conv2d: input must be a Tensor"):
        md.nn.Conv2d(1, 2, 3)(np.ones((1, 1, 5, 5)).tolist())


@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_backward_on_an_empty_batch(randn, stride):
    x, w, b = randn(0, 2, 5, 5), randn(3, 2, 3, 3, seed=1), randn(3, seed=2)
    y = F.conv2d(x, w, b, stride=stride, padding=1)
    assert y.shape == (0, 3, 5 if stride == 1 else 3, 5 if stride == 1 else 3)
    y.sum().backward()
    assert x.grad.shape == x.shape
    np.testing.assert_array_equal(as_numpy(w.grad), np.zeros(w.shape))
    np.testing.assert_array_equal(as_numpy(b.grad), np.zeros(3))
