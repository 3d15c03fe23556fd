"""Optimizers and schedules: PyTorch's numbers step by step, state round trips, bad input."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import minideep as md
from minideep import optim
from minideep.backend import as_numpy, to_device
from minideep.checkpoint import load_checkpoint, save_checkpoint

SHAPES = [(3, 4), (5,), (2, 3, 2), ()]


@pytest.fixture
def torch(torch):
    """conftest's torch, on one thread: these tiny float64 problems crawl when threads contend for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)
STEPS = 6


def make_params(device: str = "cpu", seed: int = 0) -> list[tuple[str, md.Tensor]]:
    rng = np.random.default_rng(seed)
    return [(f"layer{i}.weight", md.tensor(to_device(rng.standard_normal(s), device), requires_grad=True))
            for i, s in enumerate(SHAPES)]


def gradients(step: int, seed: int = 1) -> list[np.ndarray | None]:
    """The gradients fed at ``step``; parameter 3 gets none on step 2 (it must be skipped)."""
    rng = np.random.default_rng([seed, step])
    grads = [rng.standard_normal(s) for s in SHAPES]
    if step == 2:
        grads[3] = None
    return grads


def run_minideep(make_opt, device: str = "cpu", steps: int = STEPS, lr_changes: dict | None = None):
    params = make_params(device)
    opt = make_opt(params)
    for t in range(steps):
        if lr_changes and t in lr_changes:
            opt.lr = lr_changes[t]
        for (_, p), g in zip(params, gradients(t)):
            p.grad = None if g is None else to_device(g, device)
        opt.step()
    return [as_numpy(p.data) for _, p in params]


def run_torch(torch, make_opt, steps: int = STEPS, lr_changes: dict | None = None):
    params = [torch.tensor(as_numpy(p.data), dtype=torch.float64, requires_grad=True) for _, p in make_params()]
    opt = make_opt(params)
    for t in range(steps):
        if lr_changes and t in lr_changes:
            opt.param_groups[0]["lr"] = lr_changes[t]
        for p, g in zip(params, gradients(t)):
            p.grad = None if g is None else torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in params]


def assert_close(got, expected, rtol=1e-10):
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=1e-14)


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, weight_decay=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.8, dampening=0.1, weight_decay=5e-3),
    dict(lr=0.05, momentum=0.9, weight_decay=1e-2, nesterov=True),
]

ADAM_CONFIGS = [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.01, weight_decay=0.1, amsgrad=True),
    dict(lr=0.02, betas=(0.3, 0.5)),
]


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_sgd_matches_torch(torch, device, config):
    got = run_minideep(lambda p: optim.SGD(p, **config), device)
    expected = run_torch(torch, lambda p: torch.optim.SGD(p, **config))
    assert_close(got, expected)


@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "defaults")
def test_adam_matches_torch(torch, device, config):
    got = run_minideep(lambda p: optim.Adam(p, **config), device)
    expected = run_torch(torch, lambda p: torch.optim.Adam(p, **config))
    assert_close(got, expected)


@pytest.mark.parametrize("config", [dict(), dict(lr=0.01, weight_decay=0.3), dict(lr=0.01, amsgrad=True),
                                    dict(lr=0.01, weight_decay=0.0)],
                         ids=["defaults", "wd", "amsgrad", "no-wd"])
def test_adamw_matches_torch(torch, device, config):
    got = run_minideep(lambda p: optim.AdamW(p, **config), device)
    expected = run_torch(torch, lambda p: torch.optim.AdamW(p, **config))
    assert_close(got, expected)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_learning_rate_set_between_steps_matches_torch(torch, name):
    config = dict(lr=0.05, momentum=0.9) if name == "SGD" else dict(lr=0.01)
    changes = {2: 0.02, 4: 0.001}
    got = run_minideep(lambda p: getattr(optim, name)(p, **config), lr_changes=changes)
    expected = run_torch(torch, lambda p: getattr(torch.optim, name)(p, **config), lr_changes=changes)
    assert_close(got, expected)


# --- without PyTorch: the update rules by hand ---------------------------------------------


def test_sgd_momentum_buffer_starts_as_the_first_gradient():
    p = md.tensor(np.array([1.0, 2.0]), requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    g1, g2 = np.array([1.0, -1.0]), np.array([0.5, 0.5])
    p.grad = g1
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * 1.0, 2.0 + 0.1])  # no dampening on step 1
    p.grad = g2
    opt.step()
    buf = 0.9 * g1 + 0.5 * g2
    np.testing.assert_allclose(p.data, np.array([0.9, 2.1]) - 0.1 * buf)


def test_adam_first_step_moves_each_weight_by_lr():
    """On step 1 the bias-corrected update is lr * g / (|g| + eps) = lr * sign(g)."""
    p = md.tensor(np.array([0.0, 0.0, 0.0]), requires_grad=True)
    opt = optim.Adam([p], lr=0.01)
    p.grad = np.array([3.0, -1e-3, 100.0])
    opt.step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01, -0.01], rtol=1e-4)


def test_adamw_decay_is_decoupled_from_the_gradient():
    """With a zero gradient Adam's L2 term still moves the moments; AdamW just shrinks the weight."""
    p = md.tensor(np.array([2.0]), requires_grad=True)
    opt = optim.AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = np.array([0.0])
    opt.step()
    np.testing.assert_allclose(p.data, [2.0 * (1 - 0.1 * 0.5)])


def test_step_skips_parameters_without_gradient_and_does_not_count_their_steps():
    a = md.tensor(np.ones(2), requires_grad=True)
    b = md.tensor(np.ones(2), requires_grad=True)
    opt = optim.Adam([("a", a), ("b", b)], lr=0.1)
    a.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(b.data, np.ones(2))
    assert opt.state["a"]["step"] == 1 and "b" not in opt.state


def test_zero_grad_clears_every_gradient():
    params = make_params()
    opt = optim.SGD(params, lr=0.1)
    for _, p in params:
        p.grad = np.ones(p.shape)
    opt.zero_grad()
    assert all(p.grad is None for _, p in params)


def test_step_does_not_change_the_gradient():
    p = md.tensor(np.ones(3), requires_grad=True)
    g = np.array([1.0, 2.0, 3.0])
    p.grad = g.copy()
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
    opt.step()
    opt.step()
    np.testing.assert_array_equal(p.grad, g)


def test_float32_parameters_stay_float32():
    p = md.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    for opt in (optim.SGD([p], lr=0.1, momentum=0.9), optim.Adam([p], amsgrad=True, weight_decay=0.1)):
        p.grad = np.ones(3, dtype=np.float32)
        opt.step()
        assert p.data.dtype == np.float32
        assert all(v.dtype == np.float32 for v in opt.state["0"].values() if not isinstance(v, int))


def test_plain_parameter_lists_are_keyed_by_position():
    params = [p for _, p in make_params()]
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    assert list(opt.params) == ["0", "1", "2", "3"]
    for p in params:
        p.grad = np.ones(p.shape)
    opt.step()
    assert sorted(opt.state) == ["0", "1", "2", "3"]


def test_named_parameters_key_the_state():
    params = make_params()
    opt = optim.Adam(iter(params))  # a one-shot iterator, like model.named_parameters()
    assert list(opt.params) == [name for name, _ in params]


# --- state round trips ----------------------------------------------------------------------

ROUND_TRIP = [
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01, betas=(0.8, 0.9))),
]


@pytest.mark.parametrize("name,config", ROUND_TRIP, ids=[n for n, _ in ROUND_TRIP])
def test_state_dict_round_trip_through_npz_continues_identically(tmp_path, device, name, config):
    """Run 6 steps; or run 3, save to .npz, rebuild everything fresh, load, run 3 more: the same bits."""
    make = getattr(optim, name)
    straight = run_minideep(lambda p: make(p, **config), device)

    params = make_params(device)
    opt = make(params, **config)
    for t in range(3):
        for (_, p), g in zip(params, gradients(t)):
            p.grad = None if g is None else to_device(g, device)
        opt.step()
    save_checkpoint(tmp_path / "opt.npz", {"params": {n: p.data for n, p in params}, "opt": opt.state_dict()})

    ckpt = load_checkpoint(tmp_path / "opt.npz")
    params2 = make_params(device, seed=99)  # other values: everything must come from the file
    for name2, p in params2:
        p.data = to_device(ckpt["params"][name2], device)
    opt2 = make(params2, lr=123.0)
    opt2.load_state_dict(ckpt["opt"])
    assert opt2.lr == config["lr"]
    for t in range(3, STEPS):
        for (_, p), g in zip(params2, gradients(t)):
            p.grad = None if g is None else to_device(g, device)
        opt2.step()
    for got, expected in zip([as_numpy(p.data) for _, p in params2], straight):
        np.testing.assert_array_equal(got, expected)


def test_state_dict_is_a_copy():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    for _, p in params:
        p.grad = np.ones(p.shape)
    opt.step()
    saved = opt.state_dict()
    before = saved["state"]["layer0.weight"]["momentum_buffer"].copy()
    opt.step()
    np.testing.assert_array_equal(saved["state"]["layer0.weight"]["momentum_buffer"], before)


def test_load_state_dict_rejects_mismatches():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    for _, p in params:
        p.grad = np.ones(p.shape)
    opt.step()
    saved = opt.state_dict()
    with pytest.raises(ValueError, match="saved by 'SGD'"):
        optim.Adam(make_params()).load_state_dict(saved)
    with pytest.raises(ValueError, match="unknown parameter"):
        optim.SGD([("other", md.tensor(np.ones(1), requires_grad=True))], lr=0.1).load_state_dict(saved)
    wrong = [(n, md.tensor(np.ones(7), requires_grad=True)) for n, _ in params]
    with pytest.raises(ValueError, match="shape"):
        optim.SGD(wrong, lr=0.1).load_state_dict(saved)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("make,message", [
    (lambda p: optim.SGD(p, lr=-0.1), "lr must be >= 0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-1), "momentum must be >= 0"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.0)), "betas"),
    (lambda p: optim.Adam(p, eps=-1.0), "eps must be >= 0"),
    (lambda p: optim.AdamW(p, lr=float("nan")), "lr must be >= 0"),
])
def test_bad_hyperparameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make(make_params())


def test_bad_parameter_lists():
    p = md.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="set"):
        optim.SGD({p}, lr=0.1)
    with pytest.raises(TypeError, match="one Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="expected a Tensor"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="two parameters are named 'w'"):
        optim.SGD([("w", p), ("w", md.tensor(np.ones(2), requires_grad=True))], lr=0.1)


def test_gradient_of_the_wrong_shape_is_reported():
    p = md.tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([("w", p)], lr=0.1)
    p.grad = np.ones(4)
    with pytest.raises(ValueError, match="'w' has shape"):
        opt.step()


# --- schedules --------------------------------------------------------------------------------

SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("StepLR", dict(step_size=1)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=7)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=2e-5)),
    ("CosineAnnealingLR", dict(T_max=100, eta_min=2e-5)),  # the coursework's
]


def lr_sequence(make_schedule, epochs: int, lr: float = 1e-3) -> list[float]:
    opt = optim.Adam([md.tensor(np.zeros(1), requires_grad=True)], lr=lr)
    schedule = make_schedule(opt)
    seen = []
    for _ in range(epochs):
        seen.append(opt.lr)
        schedule.step()
        assert schedule.get_last_lr() == [opt.lr]
    return seen


def torch_lr_sequence(torch, make_schedule, epochs: int, lr: float = 1e-3, closed_form: bool = False) -> list[float]:
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr)
    schedule = make_schedule(opt)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step(epoch) is deprecated in PyTorch
        for epoch in range(epochs):
            if closed_form:
                schedule.step(epoch)
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            if not closed_form:
                schedule.step()
    return seen


@pytest.mark.parametrize("name,config", SCHEDULES, ids=[f"{n}-{c}" for n, c in SCHEDULES])
def test_schedule_step_gives_torchs_lr_sequence_exactly(torch, name, config):
    epochs = 250 if config.get("T_max") == 100 else 40  # past T_max: cosine climbs back up
    ours = lr_sequence(lambda o: getattr(optim, name)(o, **config), epochs)
    theirs = torch_lr_sequence(torch, lambda o: getattr(torch.optim.lr_scheduler, name)(o, **config), epochs)
    assert ours == theirs


@pytest.mark.parametrize("name,config", SCHEDULES, ids=[f"{n}-{c}" for n, c in SCHEDULES])
def test_schedule_step_with_epoch_gives_torchs_closed_form(torch, name, config):
    def ours(o):
        schedule = getattr(optim, name)(o, **config)
        seen = []
        for epoch in range(30):
            schedule.step(epoch)
            seen.append(o.lr)
        return seen

    opt = optim.SGD([md.tensor(np.zeros(1), requires_grad=True)], lr=1e-3)
    theirs = torch_lr_sequence(torch, lambda o: getattr(torch.optim.lr_scheduler, name)(o, **config), 30, closed_form=True)
    assert ours(opt) == theirs


def test_coursework_cosine_schedule_values():
    """lr_e = 2e-5 + (1e-3 - 2e-5)(1 + cos(pi e / 100)) / 2, recursive form within rounding."""
    seen = lr_sequence(lambda o: optim.CosineAnnealingLR(o, T_max=100, eta_min=2e-5), 101)
    closed = [2e-5 + (1e-3 - 2e-5) * (1 + math.cos(math.pi * e / 100)) / 2 for e in range(101)]
    np.testing.assert_allclose(seen, closed, rtol=1e-12)
    assert seen[0] == 1e-3 and abs(seen[100] - 2e-5) < 1e-15


def test_step_lr_closed_form_by_hand():
    seen = lr_sequence(lambda o: optim.StepLR(o, step_size=2, gamma=0.1), 6, lr=1.0)
    np.testing.assert_allclose(seen, [1, 1, 0.1, 0.1, 0.01, 0.01])


@pytest.mark.parametrize("name,config", SCHEDULES[:5], ids=[f"{n}-{c}" for n, c in SCHEDULES[:5]])
def test_schedule_state_round_trip_continues_identically(tmp_path, name, config):
    straight = lr_sequence(lambda o: getattr(optim, name)(o, **config), 25)
    opt = optim.SGD([md.tensor(np.zeros(1), requires_grad=True)], lr=1e-3)
    schedule = getattr(optim, name)(opt, **config)
    for _ in range(9):
        schedule.step()
    save_checkpoint(tmp_path / "s.npz", {"s": schedule.state_dict()})
    opt2 = optim.SGD([md.tensor(np.zeros(1), requires_grad=True)], lr=0.5)
    schedule2 = getattr(optim, name)(opt2, **config)
    schedule2.load_state_dict(load_checkpoint(tmp_path / "s.npz")["s"])
    resumed = []
    for _ in range(9, 25):
        resumed.append(opt2.lr)
        schedule2.step()
    assert resumed == straight[9:]


def test_schedule_bad_input():
    opt = optim.SGD([md.tensor(np.zeros(1), requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="step_size"):
        optim.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max"):
        optim.CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(TypeError, match="minideep optimizer"):
        optim.StepLR(object(), step_size=1)
    with pytest.raises(ValueError, match="saved by 'StepLR'"):
        optim.ExponentialLR(opt, gamma=0.5).load_state_dict(optim.StepLR(opt, step_size=2).state_dict())


# --- whole networks: the coursework VGG38 family against PyTorch -----------------------------

VGG_ARCHS = {"plain": dict(), "bn": dict(batch_norm=True), "residual": dict(residual=True)}
VGG_TOLERANCE = {"plain": 1e-12, "bn": 1e-8, "residual": 1e-12}  # measured: ~1e-15, ~2e-10, ~2e-14


@pytest.mark.parametrize("arch", list(VGG_ARCHS))
def test_vgg38_parameters_match_torch_after_sgd_and_adam_steps(torch, arch):
    """A 37-conv VGG (plain, BN, residual) in float64: every parameter and buffer agrees with PyTorch
    after 3 SGD steps (momentum, weight decay), and after 3 Adam steps (weight decay) taken from there.

    Before the Adam phase the PyTorch twin gets minideep's weights again, so each phase is
    checked on its own: rounding differences of 1e-13 in a BN network's gradients grow
    about tenfold per step, and Adam, which divides each gradient element by its own
    size, passes the relative error of tiny elements straight into the weights.
    """
    import minideep.nn.functional as F
    from minideep.models import VGG
    from torch_vgg import build_torch_vgg, load_into_torch, max_relative_error, torch_state

    md.manual_seed(5)
    model = VGG(5, num_classes=10, **VGG_ARCHS[arch]).double()
    initial = {name: value.copy() for name, value in model.state_dict().items()}
    reference = build_torch_vgg(model)
    phases = [("SGD", dict(lr=0.01, momentum=0.9, weight_decay=5e-4)), ("Adam", dict(lr=1e-3, weight_decay=1e-4))]
    step = 0
    for name, config in phases:
        load_into_torch(reference, model.state_dict())
        opt = getattr(optim, name)(model.named_parameters(), **config)
        reference_opt = getattr(torch.optim, name)(reference.parameters(), **config)
        for _ in range(3):
            rng = np.random.default_rng([7, step])
            x, y = rng.standard_normal((8, 3, 8, 8)), rng.integers(0, 10, 8)
            opt.zero_grad()
            F.cross_entropy(model(md.tensor(x)), md.Tensor(y)).backward()
            opt.step()
            reference_opt.zero_grad()
            torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y)).backward()
            reference_opt.step()
            step += 1
        expected, got = torch_state(reference), model.state_dict()
        assert list(got) == list(expected)
        for key, value in got.items():
            error = max_relative_error(value, expected[key])
            assert error < VGG_TOLERANCE[arch], f"{name}: {key} differs from PyTorch by {error:.2e}"
    moved = [n for n in got if n.endswith("conv_0.weight") and not np.array_equal(got[n], initial[n])]
    assert len(moved) == 18, "every stage's convolutions were updated (the comparison is not vacuous)"
