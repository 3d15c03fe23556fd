"""fit/evaluate: history, hooks, seeding, checkpoints, exact resume, divergence, atomic writes."""
from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import minideep as md
import minideep.nn.functional as F
from minideep import nn, optim
from minideep.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from minideep.data.loader import DataLoader
from minideep.train import Callback, TrainingDiverged, evaluate, fit

N_TRAIN, N_VAL, BATCH = 60, 24, 16  # 4 training batches, the last one of 12


def data(n: int, seed: int) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return SimpleNamespace(images=x, labels=y)


def loaders(prefetch: int = 0) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(data(N_TRAIN, 0), batch_size=BATCH, shuffle=True, seed=7, prefetch=prefetch)
    val = DataLoader(data(N_VAL, 1), batch_size=8, shuffle=True, seed=8, prefetch=prefetch)
    return train, val


def model(seed: int = 0) -> nn.Module:
    md.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def adam_setup(seed: int = 0):
    net = model(seed)
    opt = optim.Adam(net.named_parameters(), lr=0.05, weight_decay=1e-3)
    return net, opt, optim.CosineAnnealingLR(opt, T_max=4, eta_min=1e-3)


def params(net) -> dict[str, np.ndarray]:
    return {name: p.data.copy() for name, p in net.named_parameters()}


def quiet(**kw):
    return dict(progress=False, log=None, **kw)


def without_time(history):
    return [{k: v for k, v in r.items() if k != "time"} for r in history]


class Interrupt(Callback):
    """Raise KeyboardInterrupt at (epoch, step), as a user's Ctrl-C would."""

    def __init__(self, epoch: int, step: int) -> None:
        self.at = (epoch, step)

    def on_step_end(self, state):
        if (state.epoch, state.step) == self.at:
            raise KeyboardInterrupt


class Recorder(Callback):
    def __init__(self) -> None:
        self.events, self.steps, self.epoch_params = [], [], {}

    def on_train_begin(self, state):
        self.events.append("train_begin")

    def on_epoch_begin(self, state):
        self.events.append(f"epoch_begin {state.epoch}")

    def on_step_end(self, state):
        self.events.append(f"step {state.epoch}.{state.step}")
        self.steps.append((state.epoch, params(state.model), {n: p.grad.copy() for n, p in state.model.named_parameters()}))

    def on_epoch_end(self, state):
        self.events.append(f"epoch_end {state.epoch}")
        self.epoch_params[state.epoch] = params(state.model)

    def on_train_end(self, state):
        self.events.append("train_end")


# --- history and evaluate ---------------------------------------------------------------------


def test_history_has_one_record_per_epoch_with_the_rate_used():
    net, opt, sched = adam_setup()
    train, val = loaders()
    result = fit(net, opt, train, 3, val_loader=val, scheduler=sched, **quiet())
    assert [r["epoch"] for r in result.history] == [0, 1, 2]
    assert set(result.history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time"}
    cosine = [1e-3 + (0.05 - 1e-3) * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(3)]
    np.testing.assert_allclose([r["lr"] for r in result.history], cosine, rtol=1e-12)
    for r in result.history:
        assert 0 <= r["train_acc"] <= 1 and 0 <= r["val_acc"] <= 1 and r["time"] > 0
    val_acc = [r["val_acc"] for r in result.history]
    assert result.best_epoch == int(np.argmax(val_acc)) and result.best_val_acc == max(val_acc)
    assert result.last_checkpoint is None and result.best_checkpoint is None
    assert json.loads(json.dumps(result.to_dict()))["best_epoch"] == result.best_epoch


def test_training_reduces_the_loss():
    net, opt, sched = adam_setup()
    train, val = loaders()
    history = fit(net, opt, train, 4, val_loader=val, **quiet()).history
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_evaluate_is_the_mean_over_batches_not_over_samples():
    md.manual_seed(0)
    net = nn.Linear(4, 3)
    x, y = data(5, 3).images.astype(np.float32), data(5, 3).labels
    batches = [(md.tensor(x[:4]), md.Tensor(y[:4])), (md.tensor(x[4:]), md.Tensor(y[4:]))]  # sizes 4 and 1
    losses = [F.cross_entropy(net(bx), by).item() for bx, by in batches]
    accs = [float((net(bx).numpy().argmax(1) == by.numpy()).mean()) for bx, by in batches]
    net.train()
    got = evaluate(net, batches)
    assert got["loss"] == pytest.approx(np.mean(losses), rel=1e-6)
    assert got["accuracy"] == pytest.approx(np.mean(accs))
    assert net.training, "evaluate must restore train mode"


def test_evaluate_runs_without_a_graph_and_in_eval_mode():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append((self.training, md.is_grad_enabled()))
            return x

    evaluate(Probe(), [(md.tensor(np.eye(3)), md.Tensor(np.arange(3)))])
    assert seen == [(False, False)]


def test_accuracy_is_none_for_regression():
    md.manual_seed(0)
    net = nn.Linear(2, 1)
    batches = [(md.tensor(np.ones((3, 2))), md.tensor(np.zeros((3, 1), dtype=np.float32)))]
    got = evaluate(net, batches, loss_fn=F.mse_loss)
    assert got["accuracy"] is None and got["loss"] > 0


# --- hooks --------------------------------------------------------------------------------------


def test_hooks_are_called_in_order():
    net, opt, sched = adam_setup()
    train, _ = loaders()
    rec = Recorder()
    fit(net, opt, train, 2, callbacks=[rec], **quiet())
    expected = ["train_begin"]
    for e in range(2):
        expected += [f"epoch_begin {e}"] + [f"step {e}.{s}" for s in range(4)] + [f"epoch_end {e}"]
    assert rec.events == expected + ["train_end"]


def test_on_step_end_sees_this_batchs_gradients_before_the_update():
    net = model()
    lr = 0.1
    opt = optim.SGD(net.named_parameters(), lr=lr)
    train, _ = loaders()
    rec = Recorder()
    fit(net, opt, train, 1, callbacks=[rec], **quiet())
    final = params(net)
    for k, (_, before, grads) in enumerate(rec.steps):
        after = rec.steps[k + 1][1] if k + 1 < len(rec.steps) else final
        for name in before:
            np.testing.assert_array_equal(after[name], before[name] - np.float32(lr) * grads[name])


def test_a_callback_can_stop_training_early():
    class StopAfterFirst(Callback):
        ended = False

        def on_epoch_end(self, state):
            state.stop_training = True

        def on_train_end(self, state):
            self.ended = True

    net, opt, _ = adam_setup()
    stop = StopAfterFirst()
    result = fit(net, opt, loaders()[0], 5, callbacks=[stop], **quiet())
    assert len(result.history) == 1 and result.stopped_early and stop.ended


def test_callbacks_can_add_to_the_saved_history(tmp_path):
    class Note(Callback):
        def on_epoch_end(self, state):
            state.record["note"] = state.epoch * 10

    net, opt, _ = adam_setup()
    fit(net, opt, loaders()[0], 2, callbacks=[Note()], checkpoint_dir=tmp_path, **quiet())
    assert [r["note"] for r in load_checkpoint(tmp_path / "last.npz")["history"]] == [0, 10]


# --- seeding and exact resume -------------------------------------------------------------------


def test_same_seed_same_run_other_seed_other_dropout():
    finals = []
    for seed in (3, 3, 4):
        net, opt, sched = adam_setup()
        fit(net, opt, loaders()[0], 2, scheduler=sched, seed=seed, **quiet())
        finals.append(params(net))
    for name in finals[0]:
        np.testing.assert_array_equal(finals[0][name], finals[1][name])
    assert any(not np.array_equal(finals[0][n], finals[2][n]) for n in finals[0])


@pytest.mark.parametrize("epoch,step", [(2, 1), (1, 0), (3, 3)])
def test_interrupted_and_resumed_run_ends_bit_identical(tmp_path, epoch, step):
    """4 epochs straight vs. interrupted at (epoch, step) and resumed: same parameters, state and history."""
    net, opt, sched = adam_setup()
    train, val = loaders(prefetch=2)
    straight = fit(net, opt, train, 4, val_loader=val, scheduler=sched, seed=11,
                   checkpoint_dir=tmp_path / "a", **quiet())
    expected, expected_lr = params(net), opt.lr

    net, opt, sched = adam_setup()
    train, val = loaders(prefetch=2)
    with pytest.raises(KeyboardInterrupt):
        fit(net, opt, train, 4, val_loader=val, scheduler=sched, seed=11, checkpoint_dir=tmp_path / "b",
            callbacks=[Interrupt(epoch, step)], **quiet())
    assert load_checkpoint(tmp_path / "b" / "last.npz")["epoch"] == epoch - 1

    # A new process: other initial weights and fresh objects; everything must come from the checkpoint.
    net, opt, sched = adam_setup(seed=123)
    train, val = loaders(prefetch=2)
    md.manual_seed(999)
    resumed = fit(net, opt, train, 4, val_loader=val, scheduler=sched, seed=11, checkpoint_dir=tmp_path / "b",
                  resume=True, **quiet())
    assert resumed.resumed_from_epoch == epoch
    for name, value in expected.items():
        np.testing.assert_array_equal(params(net)[name], value, err_msg=name)
    assert without_time(resumed.history) == without_time(straight.history)
    assert opt.lr == expected_lr and sched.last_epoch == 4
    assert resumed.best_epoch == straight.best_epoch
    a, b = load_checkpoint(tmp_path / "a" / "last.npz"), load_checkpoint(tmp_path / "b" / "last.npz")
    for name in a["optimizer"]["state"]:
        for key, value in a["optimizer"]["state"][name].items():
            np.testing.assert_array_equal(b["optimizer"]["state"][name][key], value)
    assert a["scheduler"] == b["scheduler"] and a["rng"] == b["rng"]


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path):
    lines = []
    net, opt, _ = adam_setup()
    result = fit(net, opt, loaders()[0], 1, checkpoint_dir=tmp_path, resume=True, progress=False, log=lines.append)
    assert result.resumed_from_epoch is None and len(result.history) == 1
    assert "starting from scratch" in lines[0]


def test_a_fresh_run_says_it_overwrites_an_earlier_checkpoint(tmp_path):
    net, opt, _ = adam_setup()
    fit(net, opt, loaders()[0], 1, checkpoint_dir=tmp_path, **quiet())
    lines = []
    fit(net, opt, loaders()[0], 1, checkpoint_dir=tmp_path, progress=False, log=lines.append)
    assert "will be overwritten" in lines[0]


def test_a_fresh_run_without_validation_removes_an_earlier_runs_best_checkpoint(tmp_path):
    net, opt, _ = adam_setup()
    train, val = loaders()
    fit(net, opt, train, 1, val_loader=val, checkpoint_dir=tmp_path, **quiet())
    assert (tmp_path / "best.npz").exists()
    result = fit(net, opt, train, 1, checkpoint_dir=tmp_path, **quiet())
    assert result.best_checkpoint is None and sorted(os.listdir(tmp_path)) == ["last.npz"]


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    net, opt, _ = adam_setup()
    fit(net, opt, loaders()[0], 2, checkpoint_dir=tmp_path, **quiet())
    before = params(net)
    net2, opt2, _ = adam_setup(seed=5)
    result = fit(net2, opt2, loaders()[0], 2, checkpoint_dir=tmp_path, resume=True, **quiet())
    assert len(result.history) == 2 and result.resumed_from_epoch == 2
    for name, value in before.items():
        np.testing.assert_array_equal(params(net2)[name], value)


def test_resume_needs_the_same_scheduler_setup(tmp_path):
    net, opt, sched = adam_setup()
    fit(net, opt, loaders()[0], 1, scheduler=sched, checkpoint_dir=tmp_path, **quiet())
    net, opt, _ = adam_setup()
    with pytest.raises(ValueError, match="with a scheduler"):
        fit(net, opt, loaders()[0], 2, checkpoint_dir=tmp_path, resume=True, **quiet())


# --- divergence -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_with_the_epoch_step_and_value_and_keeps_the_checkpoint(tmp_path, bad):
    saved = {}

    class Snapshot(Callback):
        def on_epoch_begin(self, state):
            if state.epoch == 1:  # epoch 0's checkpoint is on disk now
                saved["bytes"] = (tmp_path / "last.npz").read_bytes()
                saved["params"] = params(state.model)

    calls = {"n": 0}

    def poisoned(outputs, targets):
        calls["n"] += 1
        loss = F.cross_entropy(outputs, targets)
        return loss * bad if calls["n"] == 4 + 3 else loss  # epoch 1 (from 0), step 2 (from 0)

    net, opt, _ = adam_setup()
    with pytest.raises(TrainingDiverged, match=rf"loss is {bad} at epoch 2/3, step 3/4") as info:
        fit(net, opt, loaders()[0], 3, loss_fn=poisoned, checkpoint_dir=tmp_path, callbacks=[Snapshot()], **quiet())
    assert isinstance(info.value, RuntimeError)
    assert (info.value.epoch, info.value.step) == (1, 2) and np.isnan(info.value.loss) == np.isnan(bad)
    assert str(tmp_path / "last.npz") in str(info.value) and info.value.checkpoint == tmp_path / "last.npz"
    assert (tmp_path / "last.npz").read_bytes() == saved["bytes"]
    ckpt = load_checkpoint(tmp_path / "last.npz")
    assert ckpt["epoch"] == 0 and all(np.isfinite(v).all() for v in ckpt["model"].values())
    assert sorted(os.listdir(tmp_path)) == ["last.npz"]


def test_non_finite_parameters_at_the_end_of_an_epoch_are_not_checkpointed(tmp_path):
    class Poison(Callback):
        def on_step_end(self, state):
            if state.step == 3:  # the last step: the loss never sees the NaN weight
                next(iter(state.model.parameters())).grad[0, 0] = np.nan

    net, opt, _ = adam_setup()
    with pytest.raises(TrainingDiverged, match="parameter became NaN or infinite in epoch 1/2.*no checkpoint was written"):
        fit(net, opt, loaders()[0], 2, checkpoint_dir=tmp_path, callbacks=[Poison()], **quiet())
    assert not (tmp_path / "last.npz").exists()


def test_divergence_without_checkpoint_dir_says_so():
    net, opt, _ = adam_setup()
    with pytest.raises(TrainingDiverged, match=r"checkpoint_dir=None"):
        fit(net, opt, loaders()[0], 1, loss_fn=lambda o, t: F.cross_entropy(o, t) * float("nan"), **quiet())


# --- checkpoints ----------------------------------------------------------------------------------


def test_checkpoints_hold_everything_and_no_temporary_files_remain(tmp_path):
    net, opt, sched = adam_setup()
    train, val = loaders()
    fit(net, opt, train, 2, val_loader=val, scheduler=sched, checkpoint_dir=tmp_path, **quiet())
    assert sorted(os.listdir(tmp_path)) == ["best.npz", "last.npz"]
    with np.load(tmp_path / "last.npz", allow_pickle=False) as npz:  # nothing pickled
        assert "model/0.weight" in npz.files and "optimizer/state/0.weight/exp_avg" in npz.files
    ckpt = load_checkpoint(tmp_path / "last.npz")
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 8 and len(ckpt["history"]) == 2
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "rng", "history", "best"}
    for name, value in params(net).items():
        np.testing.assert_array_equal(ckpt["model"][name], value)


def test_best_checkpoint_holds_the_best_validation_epochs_model(tmp_path):
    net, opt, _ = adam_setup()
    train, val = loaders()
    rec = Recorder()
    result = fit(net, opt, train, 4, val_loader=val, checkpoint_dir=tmp_path, callbacks=[rec], **quiet())
    assert result.best_checkpoint == tmp_path / "best.npz"
    fresh = model(seed=77)
    ckpt = load_model(fresh, tmp_path / "best.npz")
    assert ckpt["epoch"] == result.best_epoch
    for name, value in rec.epoch_params[result.best_epoch].items():
        np.testing.assert_array_equal(params(fresh)[name], value)
    best = evaluate(fresh, val)
    assert best["accuracy"] == pytest.approx(result.best_val_acc)


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    net, opt, _ = adam_setup()
    fit(net, opt, loaders()[0], 1, checkpoint_dir=tmp_path, **quiet())
    before = (tmp_path / "last.npz").read_bytes()

    def crash(file, **arrays):
        file.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        fit(net, opt, loaders()[0], 2, checkpoint_dir=tmp_path, resume=True, **quiet())
    assert (tmp_path / "last.npz").read_bytes() == before
    assert os.listdir(tmp_path) == ["last.npz"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign", "empty"])
def test_a_damaged_checkpoint_gives_an_error_naming_the_file(tmp_path, damage):
    net, opt, _ = adam_setup()
    fit(net, opt, loaders()[0], 1, checkpoint_dir=tmp_path, **quiet())
    path = tmp_path / "last.npz"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a zip file at all" * 10)
    elif damage == "foreign":
        np.savez(path, weights=np.ones(3))
    else:
        path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=str(path).replace("\\", "\\\\")):
        fit(net, opt, loaders()[0], 2, checkpoint_dir=tmp_path, resume=True, **quiet())


def test_checkpoint_tree_round_trip(tmp_path):
    tree = {"a": np.arange(6.0).reshape(2, 3), "nested": {"i": 3, "f": 0.1, "nan": float("nan"), "none": None,
            "s": "text", "list": [1, np.ones(2, dtype=np.float32), {"deep": np.int64(5)}]}, "flag": True}
    got = load_checkpoint(save_checkpoint(tmp_path / "t.npz", tree))
    np.testing.assert_array_equal(got["a"], tree["a"])
    assert got["nested"]["i"] == 3 and got["nested"]["f"] == 0.1 and np.isnan(got["nested"]["nan"])
    assert got["nested"]["none"] is None and got["nested"]["s"] == "text" and got["flag"] is True
    assert got["nested"]["list"][1].dtype == np.float32 and got["nested"]["list"][2]["deep"] == 5
    with pytest.raises(TypeError, match="cannot store a object"):
        save_checkpoint(tmp_path / "bad.npz", {"x": object()})
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.npz")


# --- progress, logging, bad input --------------------------------------------------------------------


def test_progress_bar_and_log_lines(capsys):
    pytest.importorskip("tqdm")
    lines = []
    net, opt, _ = adam_setup()
    train, val = loaders()
    fit(net, opt, train, 2, val_loader=val, progress=True, log=lines.append)
    assert "epoch 1/2" in capsys.readouterr().err
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2: train loss") and "val loss" in lines[1]


def test_no_tqdm_means_no_bar(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails as if tqdm were absent
    net, opt, _ = adam_setup()
    fit(net, opt, loaders()[0], 1, progress=True, log=None)
    assert "epoch 1/1" not in capsys.readouterr().err


def test_bad_arguments_are_named(tmp_path):
    net, opt, _ = adam_setup()
    train = loaders()[0]
    with pytest.raises(ValueError, match="epochs must be"):
        fit(net, opt, train, -1, **quiet())
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
        fit(net, opt, train, 1, resume=True, **quiet())
    with pytest.raises(ValueError, match="device"):
        fit(net, opt, train, 1, device="tpu", **quiet())
    other = optim.SGD(model(1).named_parameters(), lr=0.1)
    with pytest.raises(ValueError, match="not a parameter of the model"):
        fit(net, other, train, 1, **quiet())
    with pytest.raises(TypeError, match=r"\(inputs, targets\) pairs"):
        fit(net, opt, [md.tensor(np.ones((2, 4)))], 1, **quiet())
    with pytest.raises(ValueError, match="no batches"):
        evaluate(net, [])
