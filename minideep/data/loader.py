"""``DataLoader``: shuffled, augmented batches as tensors, prepared in a background thread.

The data set's two arrays are moved to the device once; a batch is ``images[idx]`` for a
slice ``idx`` of the epoch's order, never a Python loop over samples. The order and the
augmentation of epoch ``e`` come from a generator seeded by ``(seed, e)`` alone, so an
interrupted run that calls ``set_epoch(e)`` sees exactly the batches it would have seen.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

import numpy as np

from ..backend import DEFAULT_DTYPE, as_numpy, check_device, get_array_module, to_device
from .dataset import Dataset
from .errors import NonFiniteDataError
from .transforms import to_float

_END = object()


class _Failure:
    """An exception raised in the worker thread, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class DataLoader:
    """Iterate over a Dataset in batches of ``(images, labels)`` tensors.

    Each epoch visits every sample exactly once (the last batch is smaller unless
    ``drop_last``). With ``shuffle``, epoch ``e`` uses the permutation drawn from
    ``numpy.random.SeedSequence([seed, e])``: the same seed and epoch give the same order,
    another epoch gives another. The ``transform`` receives the uint8 batch
    ``(B, C, H, W)`` and a ``numpy.random.Generator`` from the same seed sequence;
    whatever it returns is scaled to [0, 1] if still integer, then cast to ``dtype``.
    Without a transform, images are scaled to [0, 1]. Float images are checked once, here,
    for NaN and inf (``NonFiniteDataError`` names the split and the samples).

    Args:
        dataset: a ``Dataset`` (or any object with ``images`` and ``labels`` arrays).
        batch_size: samples per batch.
        shuffle: a new random order every epoch.
        seed: seed of the order and the augmentation (None: fresh entropy, drawn once).
        drop_last: drop the last, incomplete batch.
        transform: ``transform(x, rng) -> x``, e.g. ``transforms.cifar_train_transform()``.
        device: ``"cpu"`` or ``"gpu"``; the arrays are moved there once, at construction.
        prefetch: batches prepared ahead by the background thread (0: no thread).
        dtype: dtype of the image tensors (labels are int64).

    Yields:
        ``(images, labels)``: ``Tensor`` of shape ``(B, C, H', W')`` and ``Tensor`` ``(B,)``.

    Example:
        >>> loader = DataLoader(load_dataset("bundled"), batch_size=100, shuffle=True, seed=0)  # doctest: +SKIP
        >>> for images, labels in loader:  # doctest: +SKIP
        ...     loss = F.cross_entropy(model(images), labels)
    """

    def __init__(
        self,
        dataset: Dataset | Any,
        batch_size: int = 1,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        transform: Callable[[Any, np.random.Generator], Any] | None = None,
        device: str = "cpu",
        prefetch: int = 2,
        dtype: Any = DEFAULT_DTYPE,
    ) -> None:
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be >= 0, got {prefetch}")
        images, labels = dataset.images, dataset.labels
        if len(images) != len(labels):
            raise ValueError(f"DataLoader: {len(images)} images but {len(labels)} labels")
        check_finite(images, dataset)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(np.random.SeedSequence().entropy if seed is None else seed)  # type: ignore[arg-type]
        self.drop_last = drop_last
        self.transform = transform
        self.device = check_device(device)
        self.prefetch = prefetch
        self.dtype = dtype
        # One copy per split on the device, made here once; batches index into it.
        self.images = to_device(np.asarray(images) if device == "cpu" else images, device)
        self.labels = to_device(np.asarray(labels, dtype=np.int64), device)
        self.epoch = 0

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (to resume a run exactly)."""
        if epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def _generators(self, epoch: int) -> tuple[np.random.Generator, np.random.Generator]:
        order_seq, augment_seq = np.random.SeedSequence([self.seed, epoch]).spawn(2)
        return np.random.default_rng(order_seq), np.random.default_rng(augment_seq)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of epoch ``epoch``, in the order they are served."""
        n = len(self.labels)
        return self._generators(epoch)[0].permutation(n) if self.shuffle else np.arange(n)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        """Iterate over one epoch; each new iteration advances ``epoch`` by one."""
        epoch, self.epoch = self.epoch, self.epoch + 1
        batches = self._batches(epoch)
        if self.prefetch == 0:
            return (self._wrap(b) for b in batches)
        return _Prefetcher(batches, self.prefetch, self._wrap)

    def _batches(self, epoch: int) -> Iterator[tuple[Any, Any]]:
        """The raw ``(images, labels)`` arrays of each batch of ``epoch``."""
        _, augment_rng = self._generators(epoch)
        xp = get_array_module(self.images)
        order = xp.asarray(self.order(epoch))
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, len(order)), self.batch_size):
            idx = order[start : start + self.batch_size]
            x = self.images[idx]
            if self.transform is not None:
                x = self.transform(x, augment_rng)
            x = to_float(x, self.dtype)
            yield x, self.labels[idx]

    @staticmethod
    def _wrap(batch: tuple[Any, Any]) -> tuple[Any, Any]:
        from ..autograd import Tensor  # noqa: PLC0415 - the data layer is usable without the engine

        return Tensor(batch[0]), Tensor(batch[1])


def check_finite(images: Any, dataset: Any = None, chunk: int = 1024) -> None:
    """Raise ``NonFiniteDataError`` if float ``images`` hold NaN or inf, naming split and sample.

    Checked once, when a loader is built, so that a bad sample is reported as bad data and
    not, many steps later, as a divergence of the training. Integer images (every
    ``Dataset``: uint8) cannot hold either and cost nothing; float ones are scanned in
    chunks of ``chunk`` samples, so the check needs no second copy of the set.
    """
    if not hasattr(images, "dtype"):
        images = np.asarray(images)
    if not np.issubdtype(images.dtype, np.floating):
        return
    xp = get_array_module(images)
    bad: list[int] = []
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk]
        finite = xp.isfinite(block.reshape(len(block), -1)).all(axis=1)
        if not bool(finite.all()):
            bad.extend(int(i) + start for i in np.flatnonzero(~as_numpy(finite)))
    if bad:
        name = getattr(dataset, "name", None)
        split = getattr(dataset, "split", None)
        which = " ".join(str(v) for v in (name, split) if v) or "the data set"
        first = images[bad[0]]
        values = "NaN" if bool(xp.isnan(first).any()) else "inf"
        shown = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteDataError(
            f"DataLoader: the images of {which} hold NaN or inf: {len(bad)} of {len(images)} samples "
            f"(indices {shown}; sample {bad[0]} holds {values}). This is bad data, not a training problem: "
            "fix or drop those samples (e.g. dataset.take(mask)) before training."
        )


class _Prefetcher:
    """Runs a batch generator in a daemon thread, ``depth`` batches ahead of the consumer.

    NumPy (and CuPy's kernels) release the GIL while they copy and compute, so the next
    batch is gathered and augmented while the model trains on the current one. The worker
    holds only the queue and a stop flag, not this object, so a loop that breaks early
    drops the iterator, ``__del__`` raises the flag, and the worker ends.
    """

    def __init__(self, batches: Iterator[Any], depth: int, wrap: Callable[[Any], Any]) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._wrap = wrap
        self._done = False
        self._thread = threading.Thread(
            target=_work, args=(batches, self._queue, self._stop), daemon=True, name="minideep-loader"
        )
        self._thread.start()

    def __iter__(self) -> "_Prefetcher":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return self._wrap(item)

    def close(self) -> None:
        """Stop the worker (also when the consumer breaks out of the loop early)."""
        self._done = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __del__(self) -> None:
        self._stop.set()


def _put(q: queue.Queue, stop: threading.Event, item: Any) -> bool:
    """Put ``item`` unless ``stop`` is raised first; False if it was."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _work(batches: Iterator[Any], q: queue.Queue, stop: threading.Event) -> None:
    """The worker thread: fill the queue with batches, then the end marker (or the error)."""
    try:
        for batch in batches:
            if not _put(q, stop, batch):
                return
        _put(q, stop, _END)
    except BaseException as err:  # handed to the consumer, raised there
        _put(q, stop, _Failure(err))
