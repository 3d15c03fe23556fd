"""``fit`` callbacks that more than one chapter needs.

``EvaluateEachEpoch`` scores a held-out set after every epoch and writes the result into
the epoch's history record, the way Keras' ``fit(validation_data=(x_test, y_test))``
drew the test curves of papers such as Gil's (Figure 4) without choosing a checkpoint by them.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from .ops.loss import cross_entropy
from .train import evaluate


class EvaluateEachEpoch:
    """A ``fit`` callback: after every epoch, ``record[f"{prefix}_loss"]`` and ``record[f"{prefix}_acc"]``.

    .. math::

        \\text{test\\_loss}_e = \\frac{1}{B} \\sum_{b=1}^{B} L(f_{\\theta_e}(x_b), y_b), \\qquad
        \\text{test\\_acc}_e = \\frac{1}{B} \\sum_{b=1}^{B} \\text{acc}(f_{\\theta_e}(x_b), y_b)

    with theta_e the weights at the end of epoch e and the means over the loader's B batches
    (``train.evaluate``: eval mode, no graph). The numbers only go into the history (and so
    into checkpoints and results.json); they take no part in choosing the best checkpoint,
    which stays the validation set's job.

    Args:
        loader: an iterable of ``(inputs, targets)`` batches, e.g. the test loader.
        prefix: the split name in the record keys (default ``"test"``).
        loss_fn: ``loss_fn(outputs, targets) -> scalar Tensor`` (default cross-entropy).

    Example::

        train, _, test = data.loaders(100, seed=0)
        fit(model, opt, train, 10, callbacks=[EvaluateEachEpoch(test)])
        # history[e] == {"epoch": e, "train_loss": ..., "test_loss": ..., "test_acc": ..., ...}
    """

    def __init__(self, loader: Iterable, prefix: str = "test", loss_fn: Callable[..., Any] = cross_entropy) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"EvaluateEachEpoch: prefix must be a non-empty string, got {prefix!r}")
        if prefix in ("train", "val"):
            raise ValueError(f"EvaluateEachEpoch: prefix {prefix!r} would overwrite fit's own {prefix}_loss/{prefix}_acc")
        self.loader, self.prefix, self.loss_fn = loader, prefix, loss_fn

    def on_epoch_end(self, state: Any) -> None:
        metrics = evaluate(state.model, self.loader, self.loss_fn)
        state.record[f"{self.prefix}_loss"] = metrics["loss"]
        state.record[f"{self.prefix}_acc"] = metrics["accuracy"]
