"""Initialisation schemes: variances, bounds, truncation, fans, biases, seeding."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minideep as md
from minideep import nn
from minideep.nn import init

FAN_IN, FAN_OUT = 256, 128
SHAPE = (FAN_OUT, FAN_IN // 16, 4, 4)  # a conv weight: fan_in = 16 * 16 = 256, fan_out = 128 * 16
CONV_FAN_IN, CONV_FAN_OUT = 16 * 16, 128 * 16

EXPECTED_VARIANCE = {
    "pytorch_default": 1 / (3 * CONV_FAN_IN),
    "he_normal": 2 / CONV_FAN_IN,
    "he_uniform": 2 / CONV_FAN_IN,
    "he_truncated_normal": 2 / CONV_FAN_IN,
    "glorot_normal": 2 / (CONV_FAN_IN + CONV_FAN_OUT),
    "glorot_uniform": 2 / (CONV_FAN_IN + CONV_FAN_OUT),
    "glorot_truncated_normal": 2 / (CONV_FAN_IN + CONV_FAN_OUT),
}


@pytest.mark.parametrize("name", list(EXPECTED_VARIANCE))
def test_sample_variance_within_five_percent_of_the_formula(name):
    md.manual_seed(0)
    values = init.initial_weight(SHAPE, name, np.float64)
    assert values.size > 30_000
    assert abs(values.var() / EXPECTED_VARIANCE[name] - 1) < 0.05
    assert abs(values.mean()) < 0.05 * math.sqrt(EXPECTED_VARIANCE[name])


@pytest.mark.parametrize("name", ["he_truncated_normal", "glorot_truncated_normal"])
def test_truncated_normal_never_outside_two_standard_deviations(name):
    md.manual_seed(1)
    values = init.initial_weight(SHAPE, name, np.float64)
    sigma = math.sqrt(EXPECTED_VARIANCE[name]) / init.TRUNCATED_NORMAL_STD  # the pre-truncation std
    assert np.abs(values).max() <= 2 * sigma
    assert np.abs(values).max() > 1.9 * sigma  # cut at 2 sigma, not narrower


def test_truncated_normal_std_constant_is_that_of_a_standard_normal_cut_at_two():
    z = np.linspace(-2, 2, 2_000_001)
    density = np.exp(-z**2 / 2)
    integrate = getattr(np, "trapezoid", None) or np.trapz  # NumPy 2 renamed trapz
    variance = integrate(z**2 * density, z) / integrate(density, z)
    assert abs(math.sqrt(variance) - init.TRUNCATED_NORMAL_STD) < 1e-9


@pytest.mark.parametrize("name, bound", [
    ("pytorch_default", 1 / math.sqrt(CONV_FAN_IN)),
    ("he_uniform", math.sqrt(6 / CONV_FAN_IN)),
    ("glorot_uniform", math.sqrt(6 / (CONV_FAN_IN + CONV_FAN_OUT))),
])
def test_uniform_schemes_fill_exactly_their_interval(name, bound):
    md.manual_seed(2)
    values = init.initial_weight(SHAPE, name, np.float64)
    assert np.abs(values).max() <= bound
    assert values.max() > 0.99 * bound and values.min() < -0.99 * bound


def test_fans_of_linear_and_conv_weights():
    assert init.calculate_fans((30, 20)) == (20, 30)
    assert init.calculate_fans((32, 3, 3, 3)) == (27, 288)
    assert init.calculate_fans((7,)) == (7, 7)
    with pytest.raises(ValueError, match="calculate_fans"):
        init.calculate_fans(())


def test_layers_default_to_pytorch_init_with_uniform_bias():
    md.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    assert np.abs(layer.weight.numpy()).max() <= bound
    assert np.abs(layer.bias.numpy()).max() <= bound
    assert np.abs(layer.bias.numpy()).max() > 0.9 * bound
    assert layer.weight.dtype == np.float32


@pytest.mark.parametrize("layer", [lambda i: nn.Linear(64, 32, init=i), lambda i: nn.Conv2d(8, 16, 3, init=i)])
def test_other_schemes_start_biases_at_zero(layer):
    md.manual_seed(0)
    module = layer("he_normal")
    assert np.all(module.bias.numpy() == 0)
    assert module.weight.numpy().std() > 0


def test_conv_uses_its_receptive_field_in_the_fans():
    md.manual_seed(0)
    conv = nn.Conv2d(64, 64, 3, init="he_normal")
    assert abs(conv.weight.numpy().std() / math.sqrt(2 / (64 * 9)) - 1) < 0.05


def test_callable_scheme_gets_shape_fans_and_generator():
    seen = {}

    def scheme(shape, fan_in, fan_out, rng):
        seen.update(shape=shape, fan_in=fan_in, fan_out=fan_out, rng=rng)
        return np.full(shape, 0.5)

    layer = nn.Conv2d(2, 4, 3, init=scheme)
    assert seen["shape"] == (4, 2, 3, 3) and seen["fan_in"] == 18 and seen["fan_out"] == 36
    assert isinstance(seen["rng"], np.random.Generator)
    assert np.all(layer.weight.numpy() == 0.5)


def test_constant_zeros_and_ones_schemes():
    assert np.all(init.initial_weight((3, 4), init.constant(0.25), np.float32) == 0.25)
    assert np.all(nn.Linear(3, 4, init="zeros").weight.numpy() == 0)
    assert np.all(nn.Linear(3, 4, init="ones").weight.numpy() == 1)


def test_pytorch_names_are_aliases():
    assert init.get_scheme("kaiming_normal") is init.he_normal
    assert init.get_scheme("xavier_uniform") is init.glorot_uniform
    assert init.get_scheme(None) is init.pytorch_default


def test_unknown_scheme_is_reported_with_the_options():
    with pytest.raises(ValueError, match="unknown scheme 'lecun'.*he_normal"):
        nn.Linear(3, 4, init="lecun")


def test_scheme_returning_the_wrong_shape_is_reported():
    with pytest.raises(ValueError, match=r"returned shape \(2,\), expected \(4, 3\)"):
        nn.Linear(3, 4, init=lambda shape, fan_in, fan_out, rng: np.zeros(2))


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="fan_sum"), "mode"), (dict(distribution="cauchy"), "distribution"), (dict(scale=0), "scale"),
])
def test_variance_scaling_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        init.variance_scaling(**kwargs)


def test_variance_scaling_fan_out_mode():
    md.manual_seed(3)
    values = init.initial_weight((512, 64), init.variance_scaling(1.0, "fan_out", "normal"), np.float64)
    assert abs(values.var() * 512 - 1) < 0.05


def test_manual_seed_makes_init_reproducible():
    md.manual_seed(11)
    a = nn.Conv2d(3, 8, 3, init="he_truncated_normal").weight.numpy()
    md.manual_seed(11)
    b = nn.Conv2d(3, 8, 3, init="he_truncated_normal").weight.numpy()
    np.testing.assert_array_equal(a, b)


def test_in_place_helpers_keep_the_parameter_object():
    layer = nn.Linear(100, 100)
    weight = layer.weight
    md.manual_seed(0)
    init.init_(layer.weight, "glorot_normal")
    assert layer.weight is weight
    assert abs(weight.numpy().std() / math.sqrt(2 / 200) - 1) < 0.05
    init.constant_(layer.bias, -3.0)
    assert np.all(layer.bias.numpy() == -3.0)
    init.zeros_(layer.weight)
    assert not layer.weight.numpy().any()
    init.ones_(layer.weight)
    assert np.all(layer.weight.numpy() == 1)
