"""Every layer: gradient checks in float64, and PyTorch as the oracle where it is installed."""
from __future__ import annotations

import numpy as np
import pytest

import minideep as md
from minideep import nn

RNG_CONFIGS = [0, 1, 2]  # seeds of the randomly drawn layer configurations


def _input(shape, seed=0):
    return md.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def gradcheck_module(module, x):
    """Gradient check of ``module`` (converted to float64) w.r.t. its input and every parameter."""
    module.double()
    params = list(module.parameters())
    return md.gradcheck(lambda inp, *_: module(inp), [x, *params])


def conv_config(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 4))
    return dict(in_channels=int(rng.integers(1, 4)), out_channels=int(rng.integers(1, 4)), kernel_size=k,
                stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, k)), bias=bool(seed % 2 == 0))


# ---------------------------------------------------------------------------------------
# Gradient checks
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", RNG_CONFIGS)
def test_linear_gradcheck(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    assert gradcheck_module(nn.Linear(n_in, n_out, bias=seed != 1), _input((3, n_in), seed))


@pytest.mark.parametrize("seed", RNG_CONFIGS)
def test_conv2d_gradcheck(seed):
    cfg = conv_config(seed)
    x = _input((2, cfg["in_channels"], 5, 4), seed)
    assert gradcheck_module(nn.Conv2d(**cfg), x)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm1d_gradcheck(training):
    bn = nn.BatchNorm1d(3)
    bn.running_mean[...] = [0.1, -0.2, 0.3]
    bn.running_var[...] = [0.5, 1.5, 2.0]
    bn.train(training)
    assert gradcheck_module(bn, _input((5, 3)))


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm2d_gradcheck(training):
    bn = nn.BatchNorm2d(2).train(training)
    bn.weight.data[...] = [0.5, 2.0]
    bn.bias.data[...] = [0.1, -0.3]
    assert gradcheck_module(bn, _input((3, 2, 3, 2)))


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.LeakyReLU(), nn.LeakyReLU(0.2), nn.Sigmoid(), nn.Tanh(),
                                   nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, padding=1), nn.AvgPool2d(2),
                                   nn.AvgPool2d(3, stride=1, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                   nn.Identity()],
                         ids=lambda m: repr(m))
def test_parameter_free_layers_gradcheck(layer):
    assert gradcheck_module(layer, _input((2, 2, 4, 4), seed=5))


def test_dropout_gradcheck_with_a_fixed_mask():
    layer = nn.Dropout(0.3)
    x = _input((4, 5))

    def fn(inp):
        md.manual_seed(0)  # the same mask on every call, so finite differences see a fixed function
        return layer(inp)

    assert md.gradcheck(fn, [x])


# ---------------------------------------------------------------------------------------
# Behaviour without an oracle
# ---------------------------------------------------------------------------------------

def test_dropout_zeroes_and_rescales_in_training_and_passes_through_in_eval():
    md.manual_seed(0)
    layer = nn.Dropout(0.25)
    x = md.tensor(np.ones((200, 100), dtype=np.float32))
    y = layer(x).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    layer.eval()
    assert layer(x) is x
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\]"):
        nn.Dropout(1.5)


def test_batchnorm_without_running_stats_uses_batch_statistics_in_eval_mode():
    bn = nn.BatchNorm1d(3, track_running_stats=False, affine=False).eval()
    assert bn.running_mean is None and list(bn.parameters()) == [] and bn.state_dict() == {}
    y = bn(md.tensor(np.random.default_rng(0).standard_normal((50, 3)) * 3 + 2)).numpy()
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(y.std(axis=0), 1, atol=1e-3)


def test_batchnorm_checks_its_input_rank():
    with pytest.raises(ValueError, match=r"BatchNorm2d: input must have shape \(N, C, H, W\), got \(4, 3\)"):
        nn.BatchNorm2d(3)(md.tensor(np.ones((4, 3))))
    with pytest.raises(ValueError, match=r"BatchNorm1d: input must have shape \(N, C\)"):
        nn.BatchNorm1d(3)(md.tensor(np.ones((4, 3, 2, 2))))
    with pytest.raises(ValueError, match="batch_norm: input has 4 channels but running_mean has shape"):
        nn.BatchNorm1d(3)(md.tensor(np.ones((5, 4))))


def test_layer_errors_come_with_the_shapes():
    with pytest.raises(ValueError, match=r"linear: input has 5 features \(shape \(2, 5\)\) but weight expects 4"):
        nn.Linear(4, 3)(md.tensor(np.ones((2, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match="conv2d: input has 2 channels but weight expects 3"):
        nn.Conv2d(3, 4, 3)(md.tensor(np.ones((1, 2, 5, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match="Linear: in_features must be a positive int"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="Conv2d: out_channels must be a positive int"):
        nn.Conv2d(3, -1, 3)
    with pytest.raises(ValueError, match="AdaptiveAvgPool2d: only output_size=1"):
        nn.AdaptiveAvgPool2d(2)


def test_layers_default_to_float32_and_accept_a_dtype():
    assert nn.Conv2d(2, 3, 3).weight.dtype == np.float32
    assert nn.Linear(2, 3, dtype=np.float64).bias.dtype == np.float64
    assert nn.BatchNorm2d(3, dtype=np.float64).running_var.dtype == np.float64


def test_layer_reprs_name_their_arguments():
    assert repr(nn.Conv2d(3, 32, 3, padding=1, bias=False)).startswith(
        "Conv2d(3, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)  # 864 parameters")
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0)"
    assert repr(nn.Dropout()) == "Dropout(p=0.5)"


# ---------------------------------------------------------------------------------------
# PyTorch as the oracle (float64, weights copied)
# ---------------------------------------------------------------------------------------

def compare_with_torch(torch, module, reference, x_array, rel=1e-10, copy_weights=True):
    """Same output, input gradient and parameter gradients (by name) as the torch module.

    With ``copy_weights`` the module's state is first copied into the torch module; without,
    both go on from their own states (to check that running statistics evolve alike).
    """
    module.double()
    reference.double()
    if copy_weights:
        reference.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in module.state_dict().items()})
    reference.train(module.training)
    module.zero_grad()
    reference.zero_grad()
    x = md.tensor(x_array.copy(), requires_grad=True)
    tx = torch.from_numpy(x_array.copy()).requires_grad_(True)
    y, ty = module(x), reference(tx)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=rel, atol=rel)
    g = np.random.default_rng(7).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=rel, atol=rel)
    t_params = dict(reference.named_parameters())
    assert sorted(t_params) == sorted(name for name, _ in module.named_parameters())
    for name, param in module.named_parameters():
        np.testing.assert_allclose(param.grad, t_params[name].grad.numpy(), rtol=rel, atol=rel, err_msg=name)
    return reference


@pytest.mark.parametrize("seed", RNG_CONFIGS)
def test_linear_matches_torch(torch, seed):
    compare_with_torch(torch, nn.Linear(6, 4, bias=seed != 1), torch.nn.Linear(6, 4, bias=seed != 1),
                       np.random.default_rng(seed).standard_normal((5, 6)))


@pytest.mark.parametrize("seed", RNG_CONFIGS + [3, 4])
def test_conv2d_matches_torch(torch, seed):
    cfg = conv_config(seed)
    x = np.random.default_rng(seed).standard_normal((3, cfg["in_channels"], 7, 6))
    compare_with_torch(torch, nn.Conv2d(**cfg), torch.nn.Conv2d(**cfg), x)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batchnorm2d_matches_torch_in_training_then_evaluation(torch, affine, momentum):
    md.manual_seed(0)
    bn = nn.BatchNorm2d(3, momentum=momentum, affine=affine)
    reference = torch.nn.BatchNorm2d(3, momentum=momentum, affine=affine)
    if affine:
        bn.weight.data[...] = [0.5, 1.0, 2.0]
        bn.bias.data[...] = [0.0, 0.3, -1.0]
    rng = np.random.default_rng(0)
    for step in range(3):  # a few training-mode forwards move the running statistics
        x = rng.standard_normal((4, 3, 3, 5)) * 2 + 1
        reference = compare_with_torch(torch, bn, reference, x, copy_weights=step == 0)
    expected = {k: v.numpy() for k, v in reference.state_dict().items()}
    for name, value in bn.state_dict().items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-12, err_msg=name)
    bn.eval()
    compare_with_torch(torch, bn, reference, rng.standard_normal((2, 3, 2, 2)), copy_weights=False)


def test_batchnorm1d_matches_torch_in_training_then_evaluation(torch):
    bn, reference = nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4)
    rng = np.random.default_rng(1)
    for step in range(3):
        reference = compare_with_torch(torch, bn, reference, rng.standard_normal((6, 4)) - 2, copy_weights=step == 0)
    np.testing.assert_allclose(bn.running_var, reference.running_var.numpy(), rtol=1e-12)
    bn.eval()
    compare_with_torch(torch, bn, reference, rng.standard_normal((3, 4)), copy_weights=False)


@pytest.mark.parametrize("pair", [
    (nn.ReLU(), "ReLU()"), (nn.LeakyReLU(), "LeakyReLU()"), (nn.LeakyReLU(0.2), "LeakyReLU(0.2)"),
    (nn.Sigmoid(), "Sigmoid()"), (nn.Tanh(), "Tanh()"), (nn.MaxPool2d(2), "MaxPool2d(2)"),
    (nn.MaxPool2d(3, 2, 1), "MaxPool2d(3, 2, 1)"), (nn.AvgPool2d(2), "AvgPool2d(2)"),
    (nn.AvgPool2d(3, 1, 1), "AvgPool2d(3, 1, 1)"), (nn.AdaptiveAvgPool2d(1), "AdaptiveAvgPool2d(1)"),
    (nn.Flatten(), "Flatten()"), (nn.Identity(), "Identity()"), (nn.Dropout(0.0), "Dropout(0.0)"),
], ids=lambda p: p[1] if isinstance(p, tuple) else None)
def test_parameter_free_layers_match_torch(torch, pair):
    module, torch_expression = pair
    reference = eval("torch.nn." + torch_expression, {"torch": torch})  # noqa: S307 - a fixed list above
    compare_with_torch(torch, module, reference, np.random.default_rng(3).standard_normal((2, 3, 6, 6)))


def test_default_linear_init_has_the_same_distribution_as_torch(torch):
    md.manual_seed(0)
    ours = nn.Linear(500, 400).weight.numpy()
    theirs = torch.nn.Linear(500, 400).weight.detach().numpy()
    assert abs(ours.std() / theirs.std() - 1) < 0.02
    assert abs(np.abs(ours).max() - np.abs(theirs).max()) < 1e-3
