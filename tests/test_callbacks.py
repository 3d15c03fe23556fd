"""minideep.callbacks.EvaluateEachEpoch: a held-out set scored after every epoch, into the history only."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import minideep as md
from minideep import nn, optim
from minideep.callbacks import EvaluateEachEpoch
from minideep.data.loader import DataLoader
from minideep.train import evaluate, fit


def data(n: int, seed: int) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    return SimpleNamespace(images=x, labels=(x[:, 0] > 0).astype(np.int64))


def setup():
    md.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 2))
    opt = optim.SGD(net.named_parameters(), lr=0.1)
    train = DataLoader(data(40, 0), batch_size=10, shuffle=True, seed=1)
    test = DataLoader(data(20, 1), batch_size=10)
    return net, opt, train, test


def test_every_epoch_record_gets_the_test_metrics_of_that_epochs_weights():
    net, opt, train, test = setup()
    seen = []

    class Snapshot:  # runs after EvaluateEachEpoch: scores the same weights again
        def on_epoch_end(self, state):
            seen.append(evaluate(state.model, test))

    result = fit(net, opt, train, 3, callbacks=[EvaluateEachEpoch(test), Snapshot()], progress=False, log=None)
    assert len(result.history) == 3
    for record, expected in zip(result.history, seen):
        assert record["test_loss"] == pytest.approx(expected["loss"], rel=1e-12)
        assert record["test_acc"] == pytest.approx(expected["accuracy"], rel=1e-12)
    assert result.best_epoch is None  # no validation set: the test numbers choose no checkpoint


def test_the_records_survive_a_resume(tmp_path):
    net, opt, train, test = setup()
    fit(net, opt, train, 2, callbacks=[EvaluateEachEpoch(test)], checkpoint_dir=tmp_path, progress=False, log=None)
    net, opt, train, test = setup()
    result = fit(net, opt, train, 3, callbacks=[EvaluateEachEpoch(test)], checkpoint_dir=tmp_path, resume=True,
                 progress=False, log=None)
    assert result.resumed_from_epoch == 2
    assert all("test_acc" in record for record in result.history)


def test_custom_prefix_and_refused_prefixes():
    net, opt, train, test = setup()
    result = fit(net, opt, train, 1, callbacks=[EvaluateEachEpoch(test, prefix="holdout")], progress=False, log=None)
    assert {"holdout_loss", "holdout_acc"} <= set(result.history[0])
    for bad in ("train", "val", ""):
        with pytest.raises(ValueError, match="EvaluateEachEpoch: prefix"):
            EvaluateEachEpoch(test, prefix=bad)
