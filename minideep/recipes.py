"""Recipes the chapters share: picking a chapter's data, and one classifier trained the papers' way.

``chapter_data`` resolves ``--dataset``/``--data-dir`` into train/validation/test splits
with the right transforms and says which data set it used. ``train_classifier`` runs one
(model, seed): ``fit`` with an optimizer and schedule, the gradient flow recorded once per
epoch, and the test accuracy of the best-validation checkpoint, as the coursework did.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .checkpoint import load_model
from .data import DataLoader, Dataset, coursework_split, load_dataset, load_dataset_or_bundled
from .data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToFloat
from .diagnostics import GradientFlowRecorder
from .optim import SGD, Adam, AdamW, CosineAnnealingLR, ExponentialLR, StepLR
from .train import evaluate, fit

# Per-channel statistics of the training images, for normalisation.
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)


@dataclass
class ChapterData:
    """A chapter's splits and transforms, and a record of where they came from.

    Attributes:
        train, val, test: the splits (``val`` may be None).
        train_transform, eval_transform: batch transforms for the loaders.
        description: saved in results.json (name, source, sizes, fallback reason).
        notice: a line to print (for example that the bundled set stands in), or None.
    """

    train: Dataset
    val: Dataset | None
    test: Dataset
    train_transform: Any
    eval_transform: Any
    description: dict[str, Any] = field(default_factory=dict)
    notice: str | None = None

    def loaders(self, batch_size: int, seed: int, device: str = "cpu", eval_batch_size: int | None = None):
        """(train, val, test) DataLoaders; the training order and augmentation follow ``seed``."""
        eval_bs = eval_batch_size or batch_size
        train = DataLoader(self.train, batch_size, shuffle=True, seed=seed, transform=self.train_transform, device=device)
        val = DataLoader(self.val, eval_bs, transform=self.eval_transform, device=device) if self.val is not None else None
        test = DataLoader(self.test, eval_bs, transform=self.eval_transform, device=device)
        return train, val, test


def _channel_stats(dataset: Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a uint8 image set, in [0, 1] units."""
    x = dataset.images.astype(np.float64) / 255.0
    return tuple(x.mean(axis=(0, 2, 3)).round(4)), tuple(x.std(axis=(0, 2, 3)).round(4))


def chapter_data(
    requested: str,
    paper_dataset: str,
    preset: str,
    *,
    data_dir: str | Path | None = None,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    shape: tuple[int, int] | None = None,
    augment: bool = False,
    coursework: bool = False,
    seed: int = 0,
) -> ChapterData:
    """Pick and prepare a chapter's data.

    ``requested="auto"`` means: the paper preset uses ``paper_dataset`` (found locally or
    downloaded, else the bundled set with a notice); the smoke and quick presets use the
    bundled Fashion-MNIST subset, the set their numbers are calibrated on. Any other name
    is loaded as asked, and a missing data set is an error that names the options.

    Args:
        requested: ``--dataset`` (``"auto"`` or a name known to ``load_dataset``).
        paper_dataset: the paper's data set, e.g. ``"cifar100"``.
        preset: ``"smoke"``, ``"quick"`` or ``"paper"``.
        data_dir: ``--data-dir``.
        n_train, n_val, n_test: class-balanced subsets of that many images (None: all).
            The validation set is carved out of the training split first.
        shape: ``(channels, size)`` to pad and repeat grayscale images to (e.g. ``(3, 32)``).
        augment: random crop with 4-pixel zero padding and horizontal flip for training.
        coursework: split CIFAR-100 exactly as the coursework did (47,500 / 2,500, seed 0).
        seed: seed of the subsets.
    """
    notice = None
    if requested == "auto" and preset != "paper":
        name = "bundled"
        notice = (f"Data: the bundled Fashion-MNIST subset (the {preset} preset's data set; "
                  f"use --dataset {paper_dataset} for the paper's)")
        if data_dir is not None:
            notice += (f"; --data-dir {data_dir} is not read: the {preset} preset uses the bundled set unless "
                       "--dataset NAME asks for another")
        train_full, test = load_dataset(name, "train"), load_dataset(name, "test")
    elif requested == "auto":
        train_full = load_dataset_or_bundled(paper_dataset, "train", data_dir)
        test = load_dataset_or_bundled(paper_dataset, "test", data_dir)
        if "fallback_from" in train_full.meta:
            notice = (f"Data: {paper_dataset} could not be found or downloaded "
                      f"({train_full.meta['fallback_reason']}"
                      + (f"; nothing usable in --data-dir {data_dir}" if data_dir is not None else "")
                      + "); using the bundled Fashion-MNIST subset instead")
    else:
        train_full, test = load_dataset(requested, "train", data_dir), load_dataset(requested, "test", data_dir)

    if coursework and train_full.name == "cifar100" and len(train_full) == 50000:
        train, val = coursework_split(train_full, 47500, 0)
    elif n_val:
        train, val = train_full.split_validation(n_val, seed=seed, stratified=True)
    else:
        train, val = train_full, None
    if n_train and n_train < len(train):
        train = train.subset(n_train, seed)
    if n_test and n_test < len(test):
        test = test.subset(n_test, seed)
    if shape is not None:
        channels, size = shape
        train, test = train.as_shape(channels, size), test.as_shape(channels, size)
        val = val.as_shape(channels, size) if val is not None else None

    if train.name.startswith("cifar"):
        from .data.transforms import CIFAR10_MEAN, CIFAR10_STD  # noqa: PLC0415

        mean, std = CIFAR10_MEAN, CIFAR10_STD  # the coursework reused CIFAR-10's constants for CIFAR-100
    else:
        mean, std = _channel_stats(train)
    steps = [RandomCrop(train.images.shape[-1], padding=4), RandomHorizontalFlip()] if augment else []
    description = {
        "name": train.name,
        "source": train.source,
        "n_train": len(train),
        "n_val": 0 if val is None else len(val),
        "n_test": len(test),
        "image_shape": list(train.images.shape[1:]),
        "classes": len(train.classes),
        "normalisation": {"mean": list(mean), "std": list(std)},
        "augmentation": "random crop (padding 4) + horizontal flip" if augment else "none",
    }
    if "fallback_from" in train.meta:
        description["fallback_from"] = train.meta["fallback_from"]
    return ChapterData(
        train=train, val=val, test=test,
        train_transform=Compose(steps + [ToFloat(), Normalize(mean, std)]),
        eval_transform=Compose([ToFloat(), Normalize(mean, std)]),
        description=description, notice=notice,
    )


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float = 0.0, momentum: float = 0.9):
    """``"adam"``, ``"adamw"``, ``"sgd"`` (with momentum) or ``"nesterov"`` (SGD, Nesterov momentum), named parameters."""
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "nesterov":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    raise ValueError(f"make_optimizer: unknown optimizer {name!r}; choose adam, adamw, sgd or nesterov")


def make_schedule(name: str | None, optimizer: Any, epochs: int, eta_min: float = 0.0, gamma: float | None = None):
    """``"cosine"`` (T_max = epochs, as the coursework), ``"step"`` (x0.1 every third of the run),
    ``"exponential"`` (x ``gamma`` every epoch, as Srivastava et al.) or None."""
    if name is None or name == "none":
        return None
    if name == "exponential":
        if gamma is None or not 0 < gamma <= 1:
            raise ValueError(f"make_schedule: 'exponential' needs a decay factor gamma in (0, 1], got {gamma!r}")
        return ExponentialLR(optimizer, gamma)
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=epochs, eta_min=eta_min)
    if name == "step":
        return StepLR(optimizer, step_size=max(epochs // 3, 1), gamma=0.1)
    raise ValueError(f"make_schedule: unknown schedule {name!r}; choose cosine, step, exponential or none")


def train_classifier(
    model: Any,
    data: ChapterData,
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


def first_last_ratio(flow: dict[str, float]) -> float:
    """mean |grad| of the first layer over that of the last: how much the gradient shrank on the way back."""
    values = list(flow.values())
    return float(values[0] / values[-1]) if values and values[-1] else float("nan")

