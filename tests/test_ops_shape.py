"""reshape, transpose, .T, flatten, indexing, cat, stack, pad: values as NumPy's, gradients moved back."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md


@pytest.mark.parametrize("shape", [(6, 4), (4, -1), (2, 3, 4), (-1,), (24, 1), (1, 2, 1, 12)], ids=str)
def test_reshape(randn, shape):
    x = randn(2, 3, 4)
    y = x.reshape(*shape)
    assert y.shape == np.reshape(x.numpy(), shape).shape
    assert md.gradcheck(lambda t: t.reshape(*shape), [x])


def test_reshape_takes_a_tuple(randn):
    x = randn(2, 3)
    assert x.reshape((3, 2)).shape == (3, 2) and x.reshape([6]).shape == (6,)


@pytest.mark.parametrize("axes", [(), (1, 0, 2), (2, 0, 1), (0, 2, 1), (-1, 0, 1)], ids=str)
def test_transpose(randn, axes):
    x = randn(2, 3, 4)
    expected = np.transpose(x.numpy(), axes or None)
    np.testing.assert_array_equal(x.transpose(*axes).numpy(), expected)
    assert md.gradcheck(lambda t: t.transpose(*axes), [x])


def test_transpose_takes_a_tuple_and_T_reverses_the_axes(randn):
    x = randn(2, 3, 4)
    assert x.transpose((2, 0, 1)).shape == (4, 2, 3)
    np.testing.assert_array_equal(x.T.numpy(), x.numpy().T)
    assert md.gradcheck(lambda t: t.T * 2, [x])


@pytest.mark.parametrize("start_axis, shape", [(1, (2, 12)), (0, (24,)), (2, (2, 3, 4)), (-2, (2, 12))])
def test_flatten(randn, start_axis, shape):
    x = randn(2, 3, 4)
    assert x.flatten(start_axis).shape == shape
    assert md.gradcheck(lambda t: t.flatten(start_axis), [x])


def test_flatten_default_keeps_the_batch_axis(randn):
    assert randn(2, 3, 2, 2).flatten().shape == (24,)  # everything, as torch.flatten
    assert randn(2, 3, 2, 2).flatten(1).shape == (2, 12)


KEYS = {
    "int": 1,
    "negative int": -1,
    "two ints": (1, 2),
    "slice": slice(1, 3),
    "step": slice(None, None, 2),
    "negative step": slice(None, None, -1),
    "negative step 2": (slice(None), slice(3, 0, -2)),
    "ellipsis": (Ellipsis, 1),
    "new axis": (None, slice(None), 0),
    "int array with repeats": np.array([0, 2, 0, 0]),
    "list with repeats": [1, 1, 2],
    "negative int array": np.array([-1, 0, -1]),
    "2-d int array": np.array([[0, 1], [1, 1]]),
    "arrays on two axes": (np.array([0, 1, 1]), np.array([3, 0, 3])),
    "slice and array": (slice(None), np.array([2, 2, 0])),
    "bool mask, all axes": np.random.default_rng(0).random((3, 4)) > 0.5,
    "bool mask, first axis": np.array([True, False, True]),
    "bool mask, second axis": (slice(None), np.array([False, True, True, False])),
}


@pytest.mark.parametrize("name", list(KEYS))
def test_getitem(randn, on_device, name):
    key = KEYS[name]
    x = randn(3, 4)
    on = lambda k: on_device(k) if isinstance(k, np.ndarray) else k  # noqa: E731 - index arrays live on the device
    device_key = tuple(on(k) for k in key) if isinstance(key, tuple) else on(key)
    np.testing.assert_array_equal(x[device_key].numpy(), x.numpy()[key])
    assert md.gradcheck(lambda t: t[device_key], [x])


def test_getitem_with_repeats_adds_up(on_device):
    x = md.tensor(on_device(np.zeros(3)), requires_grad=True)
    x[on_device(np.array([0, 0, 2, 0]))].sum().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(x.grad), [3.0, 0.0, 1.0])


def test_getitem_with_a_boolean_tensor(randn):
    x = randn(3, 4)
    y = x[x > 0]
    np.testing.assert_array_equal(y.numpy(), x.numpy()[x.numpy() > 0])
    y.sum().backward()
    np.testing.assert_array_equal(md.backend.as_numpy(x.grad), (x.numpy() > 0).astype(float))


def test_getitem_with_an_integer_tensor(randn, on_device):
    x = randn(4, 2)
    index = md.Tensor(on_device(np.array([3, 0])))
    np.testing.assert_array_equal(x[index].numpy(), x.numpy()[[3, 0]])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cat(randn, axis):
    shapes = {0: [(1, 3, 2), (2, 3, 2), (3, 3, 2)], 1: [(2, 1, 2), (2, 4, 2)], -1: [(2, 3, 1), (2, 3, 3), (2, 3, 1)]}[axis]
    xs = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    y = md.cat(xs, axis=axis)
    np.testing.assert_array_equal(y.numpy(), np.concatenate([x.numpy() for x in xs], axis=axis))
    assert md.gradcheck(lambda *ts: md.cat(list(ts), axis=axis), xs)


def test_cat_of_one_tensor_and_of_constants(randn):
    x, c = randn(2, 3), randn(2, 3, seed=1, requires_grad=False)
    assert md.gradcheck(lambda t: md.cat([t], axis=1), [x])
    assert md.gradcheck(lambda t: md.cat([c, t, c], axis=0), [x])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(randn, axis):
    xs = [randn(2, 3, seed=i) for i in range(3)]
    y = md.stack(xs, axis=axis)
    np.testing.assert_array_equal(y.numpy(), np.stack([x.numpy() for x in xs], axis=axis))
    assert md.gradcheck(lambda *ts: md.stack(list(ts), axis=axis), xs)


@pytest.mark.parametrize(
    "pad_width, value",
    [(1, 0.0), ((1, 2), 0.0), ([(0, 0), (2, 1), (1, 0)], 0.0), ([(1, 1), (0, 0), (0, 3)], -1.5)],
    ids=["int", "pair", "per axis", "value"],
)
def test_pad(randn, pad_width, value):
    x = randn(2, 3, 2)
    expected = np.pad(x.numpy(), pad_width, constant_values=value)
    np.testing.assert_array_equal(md.pad(x, pad_width, value=value).numpy(), expected)
    assert md.gradcheck(lambda t: md.pad(t, pad_width, value=value), [x])


def test_shape_ops_compose(randn):
    # A typical NCHW <-> token shuffle: every op's backward must undo exactly its own move.
    x = randn(2, 3, 2, 2)
    assert md.gradcheck(lambda t: t.flatten(2).transpose(0, 2, 1)[:, ::-1].reshape(2, -1)[:, 1:], [x])
