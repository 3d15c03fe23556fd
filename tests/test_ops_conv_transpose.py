"""F.conv_transpose2d / nn.ConvTranspose2d against PyTorch and finite differences, and the public im2col/col2im."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F
from minideep.backend import as_numpy

CASES = [
    # (input shape, C_out, kernel, stride, padding, output_padding)
    ((2, 3, 4, 4), 2, (3, 3), 1, 0, 0),
    ((2, 3, 4, 5), 2, (3, 3), 2, 1, 1),
    ((1, 2, 3, 3), 4, (2, 2), 2, 0, 0),
    ((1, 2, 3, 4), 3, (2, 3), (2, 1), (1, 0), (1, 0)),
    ((2, 1, 2, 2), 2, (4, 4), 3, 1, 2),
    ((1, 2, 1, 1), 1, (1, 1), 1, 0, 0),
]
IDS = [f"{c[0]}-o{c[1]}-k{c[2]}-s{c[3]}-p{c[4]}-op{c[5]}" for c in CASES]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("x_shape, c_out, kernel, stride, padding, output_padding", CASES, ids=IDS)
def test_conv_transpose2d_matches_torch_and_finite_differences(torch, randn, x_shape, c_out, kernel, stride, padding,
                                                               output_padding, bias):
    x, w = randn(*x_shape, seed=1), randn(x_shape[1], c_out, *kernel, seed=2)
    b = randn(c_out, seed=3) if bias else None
    kwargs = {"stride": stride, "padding": padding, "output_padding": output_padding}
    y = F.conv_transpose2d(x, w, b, **kwargs)
    tx, tw = torch.tensor(x.numpy(), requires_grad=True), torch.tensor(w.numpy(), requires_grad=True)
    tb = torch.tensor(b.numpy(), requires_grad=True) if bias else None
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, **kwargs)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(4).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.tensor(g))
    for ours, theirs in [(x, tx), (w, tw)] + ([(b, tb)] if bias else []):
        np.testing.assert_allclose(as_numpy(ours.grad), theirs.grad.numpy(), rtol=1e-11, atol=1e-12)
    inputs = [x, w, b] if bias else [x, w]
    assert md.gradcheck(lambda x, w, *b: F.conv_transpose2d(x, w, *b, **kwargs), inputs)


def test_conv_transpose2d_is_the_adjoint_of_conv2d(randn):
    """<conv2d(z), x> = <z, conv_transpose2d(x)> for every z and x: the transpose, exactly."""
    z, w = randn(2, 3, 7, 6, requires_grad=False), randn(4, 3, 3, 3, seed=1, requires_grad=False)
    y = F.conv2d(z, w, stride=2, padding=1)
    x = randn(*y.shape, seed=2, requires_grad=False)
    back = F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=(0, 1))
    assert back.shape == z.shape
    np.testing.assert_allclose((y.numpy() * x.numpy()).sum(), (z.numpy() * back.numpy()).sum(), rtol=1e-12)


def test_nn_conv_transpose2d_matches_torch(torch):
    layer = md.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, dtype=np.float64)
    reference = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1).double()
    assert layer.weight.shape == tuple(reference.weight.shape)
    reference.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    y, ty = layer(md.tensor(x)), reference(torch.from_numpy(x))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(layer.weight.grad, reference.weight.grad.numpy(), rtol=1e-11)
    np.testing.assert_allclose(layer.bias.grad, reference.bias.grad.numpy(), rtol=1e-11)
    assert "output_padding=(1, 1)" in repr(layer)


def test_nn_conv_transpose2d_default_init_has_torchs_bounds():
    layer = md.nn.ConvTranspose2d(4, 8, 3)
    bound = 1 / np.sqrt(8 * 9)  # PyTorch reads fan_in from the weight's axis 1: C_out kh kw
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > bound / 2


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"output_padding": 2, "stride": 2}, ValueError, "output_padding (2, 2) must be smaller than the stride (2, 2)"),
    ({"stride": 1.5}, TypeError, "stride must be an int or a pair of ints"),
    ({"padding": 5}, ValueError, "the output would be -5x-5; padding (5, 5) is too large"),
])
def test_conv_transpose2d_bad_geometry_is_named(randn, kwargs, error, fragment):
    with pytest.raises(error, match="conv_transpose2d: " + fragment.replace("(", r"\(").replace(")", r"\)")):
        F.conv_transpose2d(randn(1, 2, 3, 3), randn(2, 1, 3, 3, seed=1), **kwargs)


def test_conv_transpose2d_channel_mismatch_is_named(randn):
    with pytest.raises(ValueError, match="conv_transpose2d: input has 2 channels but weight expects 3"):
        F.conv_transpose2d(randn(1, 2, 3, 3), randn(3, 1, 3, 3, seed=1))


# --- im2col / col2im, public (DeZero's step 57) ---------------------------------------------------

@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 1), ((2, 3), (2, 1), (1, 0)), (1, 2, 0)])
def test_a_convolution_built_from_im2col_equals_conv2d(randn, kernel, stride, padding):
    x, w = randn(2, 3, 5, 6), randn(4, 3, *((kernel,) * 2 if isinstance(kernel, int) else kernel), seed=1)
    cols = md.im2col(x, kernel, stride, padding)
    y = F.conv2d(x, w, stride=stride, padding=padding)
    n, c_out, oh, ow = y.shape
    assert cols.shape == (n * oh * ow, 3 * w.shape[2] * w.shape[3])
    ours = (cols @ w.reshape(c_out, -1).T).reshape(n, oh, ow, c_out).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(ours.numpy(), y.numpy(), rtol=1e-12, atol=1e-12)
    assert md.gradcheck(lambda t: md.im2col(t, kernel, stride, padding), [x])


def test_im2col_matches_torch_unfold(torch, randn):
    x = randn(2, 3, 5, 4, requires_grad=False)
    cols = F.im2col(x, (2, 3), stride=(1, 2), padding=1)
    unfolded = torch.nn.functional.unfold(torch.from_numpy(x.numpy()), (2, 3), stride=(1, 2), padding=1)  # (N, C*kh*kw, L)
    np.testing.assert_allclose(cols.numpy(), unfolded.transpose(1, 2).reshape(-1, 3 * 6).numpy())


def test_col2im_is_the_adjoint_of_im2col_and_matches_torch_fold(torch, randn):
    x = randn(2, 3, 5, 4, requires_grad=False)
    cols = md.im2col(x, 3, 2, 1)
    c = randn(*cols.shape, seed=1)
    back = md.col2im(c, x.shape, 3, 2, 1)
    assert back.shape == x.shape
    np.testing.assert_allclose((cols.numpy() * c.numpy()).sum(), (x.numpy() * back.numpy()).sum(), rtol=1e-12)
    n, l = x.shape[0], cols.shape[0] // x.shape[0]
    folded = torch.nn.functional.fold(torch.from_numpy(c.numpy()).reshape(n, l, -1).transpose(1, 2), (5, 4), 3,
                                      stride=2, padding=1)
    np.testing.assert_allclose(back.numpy(), folded.numpy(), rtol=1e-12)
    assert md.gradcheck(lambda t: md.col2im(t, x.shape, 3, 2, 1), [c])


def test_col2im_names_a_wrong_column_shape(randn):
    with pytest.raises(ValueError, match=r"col2im: cols has shape \(3, 4\)"):
        md.col2im(randn(3, 4), (1, 1, 4, 4), 2)
