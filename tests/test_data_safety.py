"""Every way data can go wrong gives a clear error and leaves nothing behind that a later run would trust."""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest

from minideep.data import (
    ChecksumError,
    DataFormatError,
    DatasetNotFoundError,
    UnsafePickleError,
    download,
    download_file,
    load_dataset,
    load_dataset_or_bundled,
    safe_loads,
    sources,
)
from minideep.data.sources import RemoteFile
from test_data_formats import (  # noqa: F401 - _isolated is an autouse fixture
    _isolated,
    cifar_members,
    md5,
    py2_pickle,
    register,
    register_cifar,
    write_mnist,
    write_tar_gz,
)


def cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


@pytest.fixture
def cifar_server(tmp_path, monkeypatch):
    """A good CIFAR-10 archive served at a file:// URL, registered as the official one."""
    members, expected = cifar_members("cifar10", np.random.default_rng(0))
    server = tmp_path / "server"
    archive = write_tar_gz(server / "cifar-10-python.tar.gz", members)
    register_cifar(monkeypatch, "cifar10", members, archive, urls=["file://" + str(server / "cifar-10-python.tar.gz")])
    return server / "cifar-10-python.tar.gz", archive, members, expected


def test_download_goes_to_the_cache_and_is_found_there_next_time(cifar_server, _isolated):
    _, archive, _, expected = cifar_server
    ds = load_dataset("cifar10", "test", progress=False)
    assert "downloaded from file://" in ds.source
    cached = _isolated / "cifar10" / "cifar-10-python.tar.gz"
    assert cached.read_bytes() == archive and cache_files(_isolated) == ["cifar-10-python.tar.gz"]
    again = load_dataset("cifar10", "test", download=False)
    assert "user cache" in again.source
    np.testing.assert_array_equal(again.images, expected["test"][0])


def test_download_goes_to_data_dir_when_given(cifar_server, tmp_path, _isolated):
    load_dataset("cifar10", "test", data_dir=tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "cifar10" / "cifar-10-python.tar.gz").is_file()
    assert cache_files(_isolated) == []


def test_download_with_wrong_checksum_is_refused_and_deleted(cifar_server, monkeypatch, _isolated):
    path, archive, members, _ = cifar_server
    register(monkeypatch, "cifar10", {"archive": RemoteFile("cifar-10-python.tar.gz", "0" * 32, ("file://" + str(path),))})
    with pytest.raises(ChecksumError, match=r"expected md5 0{32}.*nothing was kept"):
        load_dataset("cifar10", progress=False)
    assert cache_files(_isolated) == []


def test_truncated_download_is_refused_and_deleted(cifar_server, monkeypatch, tmp_path, _isolated):
    path, archive, members, _ = cifar_server
    truncated = tmp_path / "server2" / "cifar-10-python.tar.gz"
    truncated.parent.mkdir()
    truncated.write_bytes(archive[: len(archive) // 2])
    register_cifar(monkeypatch, "cifar10", members, archive, urls=["file://" + str(truncated)])
    with pytest.raises(ChecksumError, match=md5(archive)):
        load_dataset("cifar10", progress=False)
    assert cache_files(_isolated) == []


def test_interrupted_download_leaves_no_part_file(cifar_server, monkeypatch, _isolated):
    class Dropped(io.BytesIO):
        headers = {"Content-Length": "1000000"}

        def read(self, n=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection dropped")
            return super().read(10)

    monkeypatch.setattr(download, "urlopen", lambda url, timeout=None: Dropped(b"x" * 100))
    with pytest.raises(DatasetNotFoundError, match="connection dropped"):
        load_dataset("cifar10", progress=False)
    assert cache_files(_isolated) == []


def test_keyboard_interrupt_during_download_leaves_no_part_file(tmp_path, monkeypatch):
    class Interrupted(io.BytesIO):
        headers: dict = {}

        def read(self, n=-1):
            raise KeyboardInterrupt

    monkeypatch.setattr(download, "urlopen", lambda url, timeout=None: Interrupted())
    with pytest.raises(KeyboardInterrupt):
        download_file("http://example.invalid/x.gz", tmp_path / "dl" / "x.gz", md5="0" * 32, progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


def test_download_file_refuses_to_download_without_a_checksum(tmp_path):
    with pytest.raises(ValueError, match="without a checksum"):
        download_file("file:///dev/null", tmp_path / "x")


def test_local_file_with_wrong_checksum_names_file_and_expected_checksum(cifar_server, tmp_path):
    path, archive, _, _ = cifar_server
    bad = tmp_path / "data" / "cifar-10-python.tar.gz"
    bad.parent.mkdir()
    bad.write_bytes(archive[:-10] + b"x" * 10)
    with pytest.raises(ChecksumError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "data")
    assert str(bad) in str(err.value) and md5(archive) in str(err.value)


def test_truncated_local_archive_is_caught_by_its_checksum(cifar_server, tmp_path):
    path, archive, _, _ = cifar_server
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-python.tar.gz").write_bytes(archive[:1000])
    with pytest.raises(ChecksumError, match="truncated"):
        load_dataset("cifar10", data_dir=tmp_path / "data")


def test_member_with_wrong_checksum_is_not_unpickled(monkeypatch, tmp_path):
    members, _ = cifar_members("cifar10", np.random.default_rng(1))
    archive = write_tar_gz(tmp_path / "cifar-10-python.tar.gz", members)
    register_cifar(monkeypatch, "cifar10", members, archive)
    sums = dict(sources.SOURCES["cifar10"]["archive"].members)
    sums["cifar-10-batches-py/test_batch"] = "f" * 32
    register(monkeypatch, "cifar10", {"archive": RemoteFile("cifar-10-python.tar.gz", md5(archive), (), members=sums)})
    with pytest.raises(ChecksumError, match=r"test_batch: expected md5 f{32}"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


class Evil:
    """Unpickling this calls os.system (what a tampered data file could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_imports_os_is_refused_before_running(monkeypatch, tmp_path):
    marker = tmp_path / "pwned"
    members, _ = cifar_members("cifar10", np.random.default_rng(2))
    members["cifar-10-batches-py/test_batch"] = pickle.dumps({"data": Evil(marker)}, protocol=2)
    archive = write_tar_gz(tmp_path / "data" / "cifar-10-python.tar.gz", members)
    register_cifar(monkeypatch, "cifar10", members, archive)  # even a "verified" file is not trusted
    with pytest.raises(UnsafePickleError, match=r"(posix|os)\.system"):
        load_dataset("cifar10", "test", data_dir=tmp_path / "data")
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    b"csubprocess\ncheck_call\n(S'true'\ntR.",
    b"cbuiltins\neval\n(S'1+1'\ntR.",
    b"c__builtin__\ngetattr\n(cnumpy\nndarray\nS'tofile'\ntR.",
])
def test_safe_loads_refuses_any_other_import(payload):
    with pytest.raises(UnsafePickleError, match="refusing to unpickle"):
        safe_loads(payload, "test payload")


def test_safe_loads_reads_python2_style_arrays_and_refuses_object_arrays():
    data = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = safe_loads(py2_pickle({"data": data, "labels": [1, 2, 3]}))
    np.testing.assert_array_equal(out["data"], data)
    assert out["labels"] == [1, 2, 3]
    with pytest.raises(UnsafePickleError, match="object array"):
        safe_loads(py2_pickle({"data": np.array([1, "a"], dtype=object)}))


def test_safe_loads_on_truncated_bytes_is_a_format_error():
    data = py2_pickle({"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(DataFormatError, match="not a readable pickle"):
        safe_loads(data[:100], "half a batch")


@contextlib.contextmanager
def finishes_within(seconds: int):
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``.

    Not a timing threshold: the bound is hundreds of times what the block needs; it only
    turns "never returns" into a failure.
    """
    if not hasattr(signal, "SIGALRM"):
        pytest.skip("needs SIGALRM")

    def _hang(signum, frame):
        raise AssertionError(f"did not finish within {seconds} s: it hangs")

    old = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_safe_loads_finishes_on_a_self_referencing_list():
    a: list = [np.zeros(3, np.uint8)]
    a.append(a)
    d: dict = {"labels": a}
    d["self"] = d
    with finishes_within(30):
        out = safe_loads(py2_pickle(d))
    assert out["self"] is out and out["labels"][1] is out["labels"]
    np.testing.assert_array_equal(out["labels"][0], np.zeros(3, np.uint8))


def test_safe_loads_finishes_on_a_shared_reference_dag():
    # Each level holds the one below twice: 2**40 paths to the bottom, in well under a kilobyte.
    bottom = [np.arange(4, dtype=np.uint8)]
    a = bottom
    for _ in range(40):
        a = [a, (a, a)]
    data = py2_pickle(a)
    assert len(data) < 1000
    with finishes_within(30):
        out = safe_loads(data)
    assert out[0] is out[1][0] is out[1][1]


def test_safe_loads_still_finds_an_object_array_behind_shared_references():
    bottom = [np.array([1, "a"], dtype=object)]
    a = bottom
    for _ in range(40):
        a = [a, a]
    with finishes_within(30), pytest.raises(UnsafePickleError, match="object array"):
        safe_loads(py2_pickle(a))


def test_missing_file_with_download_disabled_says_what_was_tried(tmp_path, _isolated):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "nowhere", download=False)
    message = str(err.value)
    for expected in ("cifar-10-python.tar.gz", str(tmp_path / "nowhere"), str(_isolated), "download=False",
                     "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                     "load_dataset('bundled')"):
        assert expected in message
    assert cache_files(_isolated) == []


def test_no_network_lists_each_mirror_and_its_error(tmp_path, _isolated):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", progress=False)
    message = str(err.value)
    assert "ossci-datasets.s3.amazonaws.com" in message and "yann.lecun.com" in message
    assert "URLError" in message and "network disabled" in message
    assert cache_files(_isolated) == []


def test_offline_environment_variable_turns_downloads_off(cifar_server, monkeypatch, _isolated):
    monkeypatch.setenv("MINIDEEP_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError, match="MINIDEEP_OFFLINE"):
        load_dataset("cifar10")
    assert cache_files(_isolated) == []


def test_search_order_data_dir_then_env_then_cache(monkeypatch, tmp_path, _isolated):
    rng = np.random.default_rng(3)
    files, arrays = write_mnist(tmp_path / "env" / "mnist", rng)
    register(monkeypatch, "mnist", files)
    monkeypatch.setenv("MINIDEEP_DATA", str(tmp_path / "env"))
    assert "$MINIDEEP_DATA" in load_dataset("mnist", "test", download=False).source
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "dd").mkdir(exist_ok=True)
        (tmp_path / "dd" / name).write_bytes((tmp_path / "env" / "mnist" / name).read_bytes())
    assert "data_dir" in load_dataset("mnist", "test", data_dir=tmp_path / "dd", download=False).source
    monkeypatch.delenv("MINIDEEP_DATA")
    with pytest.raises(DatasetNotFoundError):
        load_dataset("mnist", "test", download=False)


def test_fallback_to_bundled_says_so_but_corruption_still_raises(cifar_server, tmp_path):
    ds = load_dataset_or_bundled("cifar100", download=False)
    assert ds.name == "bundled" and ds.meta["fallback_from"] == "cifar100"
    assert "could not find data set 'cifar100'" in ds.meta["fallback_reason"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "cifar-10-python.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(ChecksumError):
        load_dataset_or_bundled("cifar10", data_dir=tmp_path / "bad")


@pytest.mark.parametrize("bad, error, match", [
    (dict(name="imagenet"), ValueError, "unknown data set 'imagenet'"),
    (dict(name="mnist", split="valid"), ValueError, "split must be 'train' or 'test'"),
    (dict(name="mnist", image_size=64), TypeError, "unexpected argument.*image_size"),
    (dict(name="food101", image_size=3), ValueError, "image_size must be an int"),
])
def test_bad_arguments_name_the_function_and_the_value(bad, error, match):
    with pytest.raises(error, match=match):
        load_dataset(**bad)
