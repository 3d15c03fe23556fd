"""The real data on this machine: Debian's Fashion-MNIST (when installed) and the bundled set."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from minideep.data import ChecksumError, bundled, load_dataset, sources
from minideep.data.bundled import BUNDLED_FILE, bundled_info

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """Only the system copy and the package may be used: an empty cache, no downloads."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MINIDEEP_DATA", raising=False)
    monkeypatch.setenv("MINIDEEP_OFFLINE", "1")


@needs_debian
@pytest.mark.parametrize("split, n", [("train", 60_000), ("test", 10_000)])
def test_debian_fashion_mnist_parses_with_balanced_classes(split, n):
    ds = load_dataset("fashion-mnist", split)
    assert ds.images.shape == (n, 1, 28, 28) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.class_counts(), np.full(10, n // 10))
    assert "system copy" in ds.source and "decompressed content ok" in ds.source
    assert ds.images.max() == 255 and ds.images.min() == 0


@pytest.mark.parametrize("split, n", [("train", 6_000), ("test", 1_000)])
def test_bundled_set_loads_offline_with_its_checksum(split, n):
    ds = load_dataset("bundled", split)
    assert ds.images.shape == (n, 1, 28, 28) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.class_counts(), np.full(10, n // 10))
    assert ds.classes == list(sources.FASHION_MNIST_CLASSES)
    assert "sha256 ok" in ds.source and "bundled offline set" in ds.source
    assert len(np.unique(ds.extra["source_indices"])) == n


def test_bundled_file_is_small_and_its_record_matches():
    info = bundled_info()
    assert BUNDLED_FILE.stat().st_size == info["bytes"] < 4_000_000
    assert (BUNDLED_FILE.parent / info["licence_file"]).read_text().count("MIT License") >= 1
    assert "Zalando SE" in (BUNDLED_FILE.parent / info["licence_file"]).read_text()


def test_tampered_bundled_file_is_refused(monkeypatch, tmp_path):
    copy = tmp_path / "fashion_mnist_subset.npz"
    data = bytearray(BUNDLED_FILE.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(bundled, "BUNDLED_FILE", copy)
    with pytest.raises(ChecksumError, match=json.loads(bundled.BUNDLED_INFO.read_text())["sha256"]):
        load_dataset("bundled")


@needs_debian
@pytest.mark.parametrize("split", ["train", "test"])
def test_bundled_images_are_the_official_images_they_claim_to_be(split):
    full = load_dataset("fashion-mnist", split)
    sub = load_dataset("bundled", split)
    idx = sub.extra["source_indices"]
    np.testing.assert_array_equal(sub.images, full.images[idx])
    np.testing.assert_array_equal(sub.labels, full.labels[idx])


def test_command_line_lists_where_each_data_set_is(capsys):
    from minideep.data.__main__ import main

    assert main(["where", "bundled", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert "bundled train:   6000 images 1x28x28" in out and "cifar10: not available" in out


def test_read_only_shared_folder_is_skipped_for_downloads(monkeypatch, tmp_path):
    from minideep.data import locate

    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("MINIDEEP_DATA", str(shared))
    monkeypatch.setattr(locate.os, "access", lambda path, mode: not str(path).startswith(str(shared)))
    assert locate.download_dir("cifar10") == tmp_path / "xdg" / "minideep" / "cifar10"
    assert locate.search_roots()[0] == (shared, "$MINIDEEP_DATA")
