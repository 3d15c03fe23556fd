"""The training loop: ``fit`` and ``evaluate``, with a progress bar, history, hooks and checkpoints.

One epoch of ``fit``::

    loader.set_epoch(epoch)                 # the loader's order for this epoch (exact resume)
    for step, (x, y) in enumerate(loader):
        loss = loss_fn(model(x), y)         # NaN/inf -> TrainingDiverged, nothing is updated
        zero the gradients; loss.backward()
        callback.on_step_end(state)         # gradients are visible, parameters not yet updated
        optimizer.step()
    evaluate on val_loader; scheduler.step(); history.append(...)
    callback.on_epoch_end(state)
    write checkpoint_dir/last.npz (and best.npz when validation accuracy improved)

Metrics are means over batches (the MLP coursework's convention): the epoch's loss is the
average of the per-batch mean losses, and likewise the accuracy. With equal batches this
is the mean over samples; a smaller last batch weighs as much as a full one.

Epochs and steps are counted from 0 in the history, in ``TrainState`` and in checkpoints
(as ``for epoch in range(epochs)``); printed messages count from 1 ("epoch 3/4").
"""
from __future__ import annotations

import json
import math
import random
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .autograd import Tensor, no_grad
from .backend import as_numpy, check_device, get_array_module, get_generator, manual_seed
from .checkpoint import load_checkpoint, load_model, read_metadata, save_checkpoint
from .data.errors import NonFiniteDataError
from .diagnostics.gradient_flow import GradientFlowRecorder
from .ops.loss import cross_entropy
from .optim.by_name import make_optimizer, make_schedule

LAST = "last.npz"
BEST = "best.npz"


class TrainingDiverged(RuntimeError):
    """The loss (or a parameter) became NaN or infinite; training stopped.

    Attributes:
        epoch: the epoch index (from 0) in which it happened.
        step: the step index (from 0) within that epoch, or None when found at the epoch's end.
        loss: the offending loss value (None when a parameter, not the loss, was non-finite).
        checkpoint: the last good checkpoint file, or None if none was written.
    """

    def __init__(self, message: str, epoch: int, step: int | None, loss: float | None, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.epoch, self.step, self.loss, self.checkpoint = epoch, step, loss, checkpoint


class Callback:
    """Hooks into ``fit``. Subclass and override what you need; every method gets the ``TrainState``.

    Any object with some of these methods works (missing ones are skipped). Set
    ``state.stop_training = True`` to end ``fit`` after the current epoch.
    """

    def on_train_begin(self, state: "TrainState") -> None:
        """Before the first epoch (after a resume has restored everything)."""

    def on_epoch_begin(self, state: "TrainState") -> None:
        """Before the first batch of ``state.epoch``."""

    def on_step_end(self, state: "TrainState") -> None:
        """After ``loss.backward()`` and before ``optimizer.step()``: parameters' ``.grad`` hold this batch's gradients."""

    def on_epoch_end(self, state: "TrainState") -> None:
        """After validation and the schedule step, before the checkpoint; ``state.record`` is this epoch's history entry (add to it and it is saved)."""

    def on_train_end(self, state: "TrainState") -> None:
        """After the last epoch, or an early stop (not called when training is interrupted or diverges)."""


@dataclass
class TrainState:
    """What callbacks see.

    Attributes:
        model, optimizer, scheduler: the objects being trained.
        epochs: the number of epochs ``fit`` was asked for.
        epoch: the current epoch index, from 0.
        step: the current step within the epoch, from 0.
        global_step: optimizer steps taken so far over the whole run (including before a resume).
        steps_per_epoch: ``len(train_loader)``, or None when the loader has no length.
        batch: the current ``(inputs, targets)`` tensors.
        outputs: the model's output for the batch (a Tensor in the graph).
        loss: the batch's loss, a Python float (read from the device when a callback asks for it).
        history: the finished epochs' records (dicts), oldest first.
        record: the current epoch's record, set just before ``on_epoch_end``.
        checkpoint_dir: where checkpoints go, or None.
        stop_training: set True to stop after the current epoch.
        run_id: this run's id (random; a resumed run keeps its checkpoint's), stored in its checkpoints.
    """

    model: Any
    optimizer: Any
    scheduler: Any
    epochs: int
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    steps_per_epoch: int | None = None
    batch: tuple[Any, Any] | None = None
    outputs: Any = None
    loss_data: Any = None  # the batch's loss as the loss function left it (a 0-d array on the device)
    history: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] | None = None
    checkpoint_dir: Path | None = None
    stop_training: bool = False
    run_id: str = ""  # written into this run's checkpoints: an earlier run's file is never taken for this run's

    @property
    def loss(self) -> float | None:
        """The batch's loss as a Python float; on a GPU reading it waits for the device (a synchronisation)."""
        return None if self.loss_data is None else float(as_numpy(self.loss_data))


@dataclass
class FitResult:
    """What ``fit`` returns.

    Attributes:
        history: one dict per finished epoch: ``epoch`` (from 0), ``train_loss``, ``train_acc``,
            ``val_loss``, ``val_acc`` (None without a validation loader), ``lr`` (the rate used
            during the epoch) and ``time`` (seconds).
        best_epoch: the epoch with the highest validation accuracy (lowest validation loss when
            there is no accuracy), or None without validation.
        best_val_acc, best_val_loss: that epoch's validation metrics.
        last_checkpoint, best_checkpoint: paths of ``last.npz`` and ``best.npz``, or None.
        resumed_from_epoch: the number of epochs already finished when a resume began, else None.
        stopped_early: a callback set ``state.stop_training``.
    """

    history: list[dict[str, Any]]
    best_epoch: int | None = None
    best_val_acc: float | None = None
    best_val_loss: float | None = None
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    resumed_from_epoch: int | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings)."""
        out = dict(self.__dict__)
        for key in ("last_checkpoint", "best_checkpoint"):
            out[key] = None if out[key] is None else str(out[key])
        return out


# ----------------------------------------------------------------------------------------
# Seeds and random states
# ----------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed minideep's generators (dropout, initialisation), NumPy's global one and Python's ``random``."""
    manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def rng_state() -> dict[str, str]:
    """The states of minideep's CPU generator, NumPy's global generator and ``random``, as JSON strings.

    CuPy's generator exposes no state to save, so dropout on the GPU does not resume
    bit for bit.
    """
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "minideep_cpu": json.dumps(get_generator(np).bit_generator.state),
        "numpy_global": json.dumps([keys.tolist(), int(pos), int(has_gauss), float(cached)]),
        "python_random": json.dumps(random.getstate()),
    }


def set_rng_state(state: dict[str, str]) -> None:
    """Restore what ``rng_state()`` returned."""
    get_generator(np).bit_generator.state = json.loads(state["minideep_cpu"])
    keys, pos, has_gauss, cached = json.loads(state["numpy_global"])
    np.random.set_state(("MT19937", np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = json.loads(state["python_random"])
    random.setstate((version, tuple(internal), gauss))


# ----------------------------------------------------------------------------------------
# Batches and metrics
# ----------------------------------------------------------------------------------------


def _on_device(value: Any, device: str) -> Tensor:
    tensor = value if isinstance(value, Tensor) else Tensor(value)
    return tensor if tensor.device == device else tensor.to(device)


def _unpack(batch: Any, caller: str) -> tuple[Any, Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"{caller}: the loader must yield (inputs, targets) pairs, got {type(batch).__name__}")
    return batch[0], batch[1]


def accuracy(outputs: Tensor, targets: Tensor) -> float | None:
    """Fraction of rows whose largest output is the target class; None unless outputs are (N, C) and targets integers."""
    hits = _hit_rate(outputs, targets)
    return None if hits is None else float(as_numpy(hits))


def _hit_rate(outputs: Tensor, targets: Tensor) -> Any:
    """``accuracy`` as a 0-d array where the outputs are (no transfer from the device), or None."""
    scores, labels = outputs.data, targets.data
    if scores.ndim != 2 or labels.dtype.kind not in "iu" or labels.shape != scores.shape[:1]:
        return None
    xp = get_array_module(scores)
    return xp.mean(xp.argmax(scores, axis=1) == labels)


#: On a GPU, fit and evaluate fetch the batches' losses and accuracies every this many batches
#: (and at an epoch's end), all in one transfer: each fetch makes the host wait for the device.
GPU_FETCH_EVERY = 50


def _fetch(values: list[Any]) -> list[float]:
    """0-d arrays as Python floats, in one device-to-host transfer (one synchronisation on a GPU)."""
    if not values:
        return []
    xp = get_array_module(*values)
    return as_numpy(xp.stack([xp.asarray(v, dtype=xp.float64) for v in values])).tolist()


class _Mean:
    """Running mean of per-batch values (None once any value is None)."""

    def __init__(self) -> None:
        self.total, self.count, self.valid = 0.0, 0, True

    def add(self, value: float | None) -> None:
        if value is None:
            self.valid = False
        else:
            self.total += value
        self.count += 1

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.valid and self.count else None


class _BatchMetrics:
    """The running loss and accuracy of an epoch, fetched from the device every ``every`` batches.

    Each batch's loss and hit rate stay where they were computed (0-d arrays); ``add`` keeps
    them and, every ``every`` batches, ``fetch`` brings all the kept ones back in one transfer.
    On the CPU ``every`` is 1 (a float costs nothing there); on a GPU it is ``GPU_FETCH_EVERY``.
    """

    def __init__(self, device: str) -> None:
        self.every = 1 if device == "cpu" else GPU_FETCH_EVERY
        self.pending: list[tuple[int, Any, Any, Any]] = []
        self.loss, self.accuracy = _Mean(), _Mean()

    def add(self, step: int, loss: Any, hits: Any, finite: Any = None) -> tuple[int, float, bool] | None:
        """Keep a batch's values (``finite``: whether its data were all finite, or None); ``fetch()``'s answer when it is time."""
        self.pending.append((step, loss, hits, finite))
        return self.fetch() if len(self.pending) >= self.every else None

    def fetch(self) -> tuple[int, float, bool] | None:
        """Fetch the kept values into the means; ``(step, loss, batch was finite)`` of the first non-finite loss, if any."""
        values = iter(_fetch([v for _, *kept in self.pending for v in kept if v is not None]))
        first_bad = None
        for step, _, hits, finite in self.pending:
            loss = next(values)
            hit_rate = None if hits is None else next(values)
            finite_data = True if finite is None else bool(next(values))
            if first_bad is None and not math.isfinite(loss):
                first_bad = (step, loss, finite_data)
            self.loss.add(loss)
            self.accuracy.add(hit_rate)
        self.pending.clear()
        return first_bad


def _progress(iterable: Iterable, total: int | None, desc: str, enabled: bool) -> Any:
    """A tqdm bar over ``iterable`` when tqdm is installed and ``enabled``, else the iterable."""
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm  # noqa: PLC0415 - optional dependency
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


def _model_device(model: Any) -> str:
    for _, param in model.named_parameters():
        return param.device
    return "cpu"


def _call(callbacks: Sequence[Any], hook: str, state: TrainState) -> None:
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(state)


def evaluate(model: Any, loader: Iterable, loss_fn: Callable[..., Tensor] = cross_entropy,
             device: str | None = None, progress: bool = False) -> dict[str, float | None]:
    """Loss and accuracy of ``model`` on ``loader``, in eval mode and without a graph.

    Both are means over batches (the coursework's convention):
    ``loss = (1/B) sum_b loss_fn(model(x_b), y_b)``, likewise accuracy. The model's
    train/eval mode is restored afterwards.

    Args:
        model: a module (called as ``model(x)``).
        loader: an iterable of ``(inputs, targets)`` pairs.
        loss_fn: ``loss_fn(outputs, targets) -> scalar Tensor`` (default cross-entropy).
        device: where batches are moved; default: the device of the model's parameters.
        progress: show a progress bar.

    Returns:
        ``{"loss": float, "accuracy": float or None}`` (None when outputs are not class scores).
    """
    device = device or _model_device(model)
    was_training = getattr(model, "training", False)
    model.eval()
    metrics = _BatchMetrics(device)
    try:
        with no_grad():
            for step, batch in enumerate(_progress(loader, _len(loader), "evaluate", progress)):
                x, y = _unpack(batch, "evaluate")
                x, y = _on_device(x, device), _on_device(y, device)
                outputs = model(x)
                metrics.add(step, loss_fn(outputs, y).data, _hit_rate(outputs, y))
            metrics.fetch()
    finally:
        if was_training:
            model.train()
    if metrics.loss.count == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    return {"loss": metrics.loss.value, "accuracy": metrics.accuracy.value}


def _len(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


# ----------------------------------------------------------------------------------------
# fit
# ----------------------------------------------------------------------------------------


def fit(
    model: Any,
    optimizer: Any,
    train_loader: Iterable,
    epochs: int,
    *,
    loss_fn: Callable[..., Tensor] = cross_entropy,
    val_loader: Iterable | None = None,
    scheduler: Any = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    seed: int | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    device: str = "cpu",
    log: Callable[[str], None] | None = print,
) -> FitResult:
    """Train ``model`` for ``epochs`` epochs; checkpoint, resume and stop on divergence.

    Every epoch: ``train_loader.set_epoch(epoch)`` (when the loader has it), one optimizer
    step per batch, evaluation on ``val_loader``, ``scheduler.step()``, a history entry, and
    (with ``checkpoint_dir``) ``last.npz`` written atomically with the model, optimizer and
    schedule states, the random states and the history. ``best.npz`` holds the model of the
    epoch with the best validation accuracy, for testing from the best-validation checkpoint.

    Args:
        model: the module to train; moved to ``device``.
        optimizer: a ``minideep.optim`` optimizer over the model's parameters.
        train_loader: an iterable of ``(inputs, targets)`` pairs; ``len()`` and
            ``set_epoch(epoch)`` are used when present (``set_epoch`` makes resume exact).
        epochs: the total number of epochs (a resumed run counts those already done).
        loss_fn: ``loss_fn(outputs, targets) -> scalar Tensor`` (default ``cross_entropy``).
        val_loader: evaluated after every epoch (means over batches), or None.
        scheduler: a learning-rate schedule stepped once per epoch, after its optimizer steps.
        checkpoint_dir: folder for ``last.npz`` and ``best.npz``; None writes none.
        resume: continue from ``checkpoint_dir/last.npz`` after its last finished epoch (start
            from scratch when there is none). The result is bit-identical to an uninterrupted run.
        seed: seed minideep's, NumPy's and Python's generators first (``seed_everything``).
        callbacks: objects with any of the ``Callback`` methods.
        progress: show a tqdm progress bar per epoch (loss, accuracy, speed) if tqdm is installed.
        device: ``"cpu"`` or ``"gpu"``. On a GPU the batches' losses and accuracies stay on the
            device and are read back together every ``GPU_FETCH_EVERY`` batches and at the end
            of each epoch (each read makes the host wait for the GPU), so the bar moves and a
            non-finite loss is caught then, still named by its own step.
        log: called with one line per epoch (and resume notices); None for silence.

    Returns:
        A ``FitResult`` (history, best epoch, checkpoint paths).

    Raises:
        TrainingDiverged: the loss became NaN or infinite (message names the epoch, the step
            and the value); nothing of that epoch is saved, so ``last.npz`` stays the last good one.

    Example:
        >>> opt = optim.Adam(model.named_parameters())
        >>> sched = optim.CosineAnnealingLR(opt, T_max=100, eta_min=2e-5)
        >>> result = fit(model, opt, train, 100, val_loader=val, scheduler=sched,
        ...              checkpoint_dir="runs/ckpt", resume=True, seed=0)
        >>> load_model(model, result.best_checkpoint); evaluate(model, test)
    """
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
    check_device(device)
    if resume and checkpoint_dir is None:
        raise ValueError("fit: resume=True needs a checkpoint_dir to resume from")
    say = log or (lambda line: None)
    if seed is not None:
        seed_everything(seed)
    model.to(device)
    _check_optimizer_params(model, optimizer)

    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    last_path = ckpt_dir / LAST if ckpt_dir else None
    best_path = ckpt_dir / BEST if ckpt_dir else None
    state = TrainState(model, optimizer, scheduler, int(epochs), steps_per_epoch=_len(train_loader), checkpoint_dir=ckpt_dir,
                       run_id=secrets.token_hex(8))
    best: dict[str, Any] = {"epoch": None, "val_acc": None, "val_loss": None}
    start, resumed_from = 0, None
    if resume and last_path.is_file():
        ckpt = load_checkpoint(last_path)
        _restore(ckpt, model, optimizer, scheduler, last_path)
        model.to(device)
        state.history = [dict(r) for r in ckpt["history"]]
        state.global_step = int(ckpt["global_step"])
        best = dict(ckpt["best"])
        state.run_id = str(ckpt.get("run_id") or state.run_id)  # the same run, continued
        start = resumed_from = int(ckpt["epoch"]) + 1
        say(f"fit: resumed from {last_path} after epoch {start}/{epochs}")
    elif resume:
        say(f"fit: no checkpoint in {ckpt_dir}; starting from scratch")
    elif last_path is not None and last_path.is_file():
        say(f"fit: {last_path} is from an earlier run and will be overwritten (resume=True continues it)")

    _call(callbacks, "on_train_begin", state)
    for epoch in range(start, epochs):
        state.epoch, state.record = epoch, None
        record = _run_epoch(state, train_loader, val_loader, loss_fn, device, progress, callbacks, last_path)
        _check_parameters(state, last_path)
        state.history.append(record)
        state.record = record
        _call(callbacks, "on_epoch_end", state)
        improved = _improved(record, best)
        if improved:
            best = {"epoch": epoch, "val_acc": record["val_acc"], "val_loss": record["val_loss"]}
        if ckpt_dir is not None:
            if improved:  # best first: a crash between the two writes leaves last.npz behind best.npz, never ahead
                save_checkpoint(best_path, {"kind": "best", **best, "run_id": state.run_id, "model": model.state_dict()})
            elif best["epoch"] is None:
                best_path.unlink(missing_ok=True)  # an older run's best.npz must not pass for this run's
            save_checkpoint(last_path, _checkpoint(state, best))
        say(_summary(record, epochs))
        if state.stop_training:
            break
    _call(callbacks, "on_train_end", state)

    return FitResult(
        history=state.history, best_epoch=best["epoch"], best_val_acc=best["val_acc"], best_val_loss=best["val_loss"],
        last_checkpoint=last_path if _ours(last_path, state.run_id) else None,
        best_checkpoint=best_path if best["epoch"] is not None and _ours(best_path, state.run_id) else None,
        resumed_from_epoch=resumed_from, stopped_early=state.stop_training,
    )


def _run_epoch(state: TrainState, train_loader: Iterable, val_loader: Iterable | None, loss_fn: Callable,
               device: str, progress: bool, callbacks: Sequence[Any], last_path: Path | None) -> dict[str, Any]:
    """Train one epoch, validate, step the schedule; return the epoch's history record."""
    model, optimizer, epoch = state.model, state.optimizer, state.epoch
    for loader in (train_loader, val_loader):
        if loader is not None and hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
    started = time.perf_counter()
    lr = optimizer.lr
    model.train()
    _call(callbacks, "on_epoch_begin", state)
    metrics = _BatchMetrics(device)
    batches = iter(train_loader)
    bar = _progress(batches, state.steps_per_epoch, f"epoch {epoch + 1}/{state.epochs}", progress)
    try:
        for step, batch in enumerate(bar):
            x, y = _unpack(batch, "fit")
            x, y = _on_device(x, device), _on_device(y, device)
            outputs = model(x)
            loss = loss_fn(outputs, y)
            non_finite = metrics.add(step, loss.data, _hit_rate(outputs, y), _all_finite(x, y))  # fetched every metrics.every steps
            if non_finite is not None:
                raise _non_finite_loss(state, non_finite, step, x, y, last_path)
            model.zero_grad()  # every parameter of the model, the optimizer's and any it does not update
            loss.backward()
            state.step, state.batch, state.outputs, state.loss_data = step, (x, y), outputs, loss.data
            _call(callbacks, "on_step_end", state)
            optimizer.step()
            state.global_step += 1
            if bar is not batches and not metrics.pending:
                acc = metrics.accuracy.value
                bar.set_postfix(loss=f"{metrics.loss.value:.4f}", acc="-" if acc is None else f"{acc:.4f}", refresh=False)
        non_finite = metrics.fetch()
        if non_finite is not None:
            raise _non_finite_loss(state, non_finite, step, x, y, last_path)
    finally:
        if bar is not batches:
            bar.close()
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # stop a prefetching loader's worker when the epoch ends early
        state.batch = state.outputs = None  # do not keep the last graph alive between epochs
    if metrics.loss.count == 0:
        raise ValueError(f"fit: the training loader yielded no batches in epoch {epoch + 1}")
    record: dict[str, Any] = {"epoch": epoch, "train_loss": metrics.loss.value, "train_acc": metrics.accuracy.value,
                              "val_loss": None, "val_acc": None, "lr": lr}
    if val_loader is not None:
        val = evaluate(model, val_loader, loss_fn, device)
        record["val_loss"], record["val_acc"] = val["loss"], val["accuracy"]
    if state.scheduler is not None:
        state.scheduler.step()
    record["time"] = time.perf_counter() - started
    return record


def _ours(path: Path | None, run_id: str) -> bool:
    """Whether checkpoint ``path`` exists and was written by the run ``run_id`` (not by an earlier run in that folder)."""
    if path is None or not path.is_file():
        return False
    metadata = read_metadata(path)
    return metadata is not None and metadata.get("run_id") == run_id


def _diverged(state: TrainState, step: int | None, value: float | None, last_path: Path | None) -> TrainingDiverged:
    finished = len(state.history)
    if _ours(last_path, state.run_id):
        where = f"the last good checkpoint is {last_path} (after epoch {finished}/{state.epochs})"
        checkpoint = last_path
    elif last_path is not None and last_path.is_file():
        where = f"this run wrote no checkpoint yet ({last_path} is an earlier run's, not a state of this one)"
        checkpoint = None
    else:
        where = "no checkpoint was written" + ("" if last_path else " (checkpoint_dir=None)")
        checkpoint = None
    steps = f"/{state.steps_per_epoch}" if state.steps_per_epoch else ""
    what = f"the training loss is {value} at epoch {state.epoch + 1}/{state.epochs}, step {step + 1}{steps}" if step is not None \
        else f"a parameter became NaN or infinite in epoch {state.epoch + 1}/{state.epochs}"
    lr = getattr(state.optimizer, "lr", None)
    return TrainingDiverged(
        f"fit: training diverged: {what} (lr={lr}); training stopped, {where}. "
        "Try a smaller learning rate, gradient-friendly initialisation or normalisation "
        "(on a GPU, a NaN loss can also be a target class out of range: cross_entropy does not read targets back).",
        epoch=state.epoch, step=step, loss=value, checkpoint=checkpoint,
    )


def _bad_batch(state: TrainState, step: int, value: float, x: Tensor | None, y: Tensor | None) -> NonFiniteDataError:
    """The error for a non-finite loss whose batch already held NaN or inf: a data error, not a divergence.

    ``x`` and ``y`` are the batch when it is still at hand (on a GPU the losses are read some
    batches later, and the batch is then gone: the message names its step only).
    """
    parts = []
    for name, tensor in (("inputs", x), ("targets", y)):
        if tensor is None:
            continue
        data = tensor.data
        if data.dtype.kind in "fc":
            xp = get_array_module(data)
            bad = int(as_numpy(xp.count_nonzero(~xp.isfinite(data))))
            if bad:
                rows = as_numpy(xp.nonzero(~xp.isfinite(data.reshape(len(data), -1)).all(axis=1))[0])[:10].tolist() \
                    if data.ndim else []
                parts.append(f"{bad} NaN/inf values in the {name}" + (f" (batch rows {rows})" if rows else ""))
    steps = f"/{state.steps_per_epoch}" if state.steps_per_epoch else ""
    return NonFiniteDataError(
        f"fit: the training batch at epoch {state.epoch + 1}/{state.epochs}, step {step + 1}{steps} holds "
        f"{' and '.join(parts) or 'NaN or inf values'}, so its loss is {value}: bad data, not a divergence (the learning rate is not "
        "to blame). Check or clean the data the loader yields; nothing of this epoch was saved."
    )


def _all_finite(x: Tensor, y: Tensor) -> Any:
    """A 0-d array where the batch is: whether its float inputs and targets are all finite (None: no float data).

    Computed for every batch but read only with the losses (no extra transfer from a GPU), so
    a NaN loss caused by the data is reported as a data error, not as a divergence.
    """
    finite = None
    for data in (x.data, y.data):
        if data.dtype.kind in "fc":
            here = get_array_module(data).isfinite(data).all()
            finite = here if finite is None else finite & here
    return finite


def _non_finite_loss(state: TrainState, found: tuple[int, float, bool], current: int, x: Tensor, y: Tensor,
                     last_path: Path | None) -> Exception:
    """A data error when the offending batch held NaN/inf (checked before blaming the learning rate), else a divergence."""
    step, value, finite_data = found
    if finite_data:
        return _diverged(state, step, value, last_path)
    return _bad_batch(state, step, value, x if step == current else None, y if step == current else None)


def _check_parameters(state: TrainState, last_path: Path | None) -> None:
    """Refuse to checkpoint NaN/inf weights (a finite loss can hide them for a step)."""
    for _, param in state.model.named_parameters():
        xp = get_array_module(param.data)
        if not bool(xp.isfinite(param.data).all()):
            raise _diverged(state, None, None, last_path)


def _improved(record: dict[str, Any], best: dict[str, Any]) -> bool:
    """Higher validation accuracy wins; without accuracy, lower validation loss.

    An epoch with a NaN or infinite validation metric never wins: its model gave garbage on
    some validation batch, whatever the accuracy of the others says.
    """
    if any(record[k] is not None and not math.isfinite(record[k]) for k in ("val_acc", "val_loss")):
        return False
    if record["val_acc"] is not None:
        return best["val_acc"] is None or record["val_acc"] > best["val_acc"]
    if record["val_loss"] is not None and math.isfinite(record["val_loss"]):
        return best["val_loss"] is None or record["val_loss"] < best["val_loss"]
    return False


def _checkpoint(state: TrainState, best: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "last",
        "run_id": state.run_id,
        "epoch": state.epoch,
        "epochs": state.epochs,
        "global_step": state.global_step,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": None if state.scheduler is None else state.scheduler.state_dict(),
        "rng": rng_state(),
        "history": state.history,
        "best": best,
    }


def _restore(ckpt: dict[str, Any], model: Any, optimizer: Any, scheduler: Any, path: Path) -> None:
    if ckpt.get("kind") != "last":
        raise ValueError(f"fit: {path} is a {ckpt.get('kind')!r} checkpoint, resume needs the one fit writes as {LAST}")
    if (ckpt["scheduler"] is None) != (scheduler is None):
        raise ValueError(
            f"fit: {path} was written {'without' if ckpt['scheduler'] is None else 'with'} a scheduler, "
            f"but this call has {'one' if scheduler is not None else 'none'}; resume with the same setup"
        )
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"])


def _check_optimizer_params(model: Any, optimizer: Any) -> None:
    """The optimizer must hold the model's own parameter objects (not copies made before ``to()``)."""
    owned = [param for _, param in model.named_parameters()]
    for name, param in getattr(optimizer, "params", {}).items():
        if not any(param is p for p in owned):
            raise ValueError(
                f"fit: the optimizer's parameter {name!r} is not a parameter of the model; "
                "build the optimizer from model.named_parameters() of this model"
            )


def _summary(record: dict[str, Any], epochs: int) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    line = f"epoch {record['epoch'] + 1}/{epochs}: train loss {fmt(record['train_loss'])} acc {fmt(record['train_acc'])}"
    if record["val_loss"] is not None:
        line += f" | val loss {fmt(record['val_loss'])} acc {fmt(record['val_acc'])}"
    return line + f" | lr {record['lr']:.3g} | {record['time']:.1f} s"


def train_classifier(
    model: Any,
    data: Any,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    schedule: str | None = "cosine",
    eta_min: float = 0.0,
    gamma: float | None = None,
    device: str = "cpu",
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Train one classifier the papers' way and test it from its best-validation epoch.

    ``data`` is a :class:`minideep.data.ChapterData` (anything with ``loaders(batch_size,
    seed, device)``). Adam or SGD and the schedule come by name
    (:func:`minideep.optim.make_optimizer`, :func:`minideep.optim.make_schedule`); the
    gradient flow is recorded once per epoch.

    Returns a JSON-ready dict: ``test_accuracy`` and ``test_loss`` (from the best-validation
    checkpoint when there is a validation set, else from the last epoch), ``best_epoch``,
    ``history`` (per-epoch records) and ``gradient_flow`` (per-epoch {layer: mean |grad|}
    from the last minibatch of the epoch). ``schedule`` is one of ``make_schedule``'s
    names; ``gamma`` is the per-epoch decay factor of ``"exponential"``.
    """
    recorder = GradientFlowRecorder()
    opt = make_optimizer(optimizer, model.named_parameters(), lr, weight_decay, momentum)
    sched = make_schedule(schedule, opt, epochs, eta_min, gamma)
    train, val, test = data.loaders(batch_size, seed, device)
    result = fit(
        model, opt, train, epochs, val_loader=val, scheduler=sched, checkpoint_dir=checkpoint_dir,
        resume=resume, seed=seed, callbacks=[recorder, *callbacks], progress=progress, device=device, log=log,
    )
    if result.best_checkpoint is not None:
        load_model(model, result.best_checkpoint)
        model.to(device)
    metrics = evaluate(model, test)
    history = [{k: v for k, v in record.items() if k != "gradient_flow"} for record in result.history]
    return {
        "test_accuracy": float(metrics["accuracy"]),
        "test_loss": float(metrics["loss"]),
        "best_epoch": result.best_epoch,
        "history": history,
        "gradient_flow": [r["mean_abs"] for r in recorder.records],
        "gradient_max": [r["max_abs"] for r in recorder.records],
        "parameters": int(sum(p.size for _, p in model.named_parameters())),
    }
