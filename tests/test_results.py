"""minideep.results: atomic writes with ordinary file modes, reading, the plain-text table."""
import json
import os
import stat

import numpy as np
import pytest

from minideep import results


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_json_write_gets_the_mode_open_would_give_not_mkstemps_0600(tmp_path, umask_022):
    path = results.write_json_atomic(tmp_path / "a" / "results.json", {"x": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    os.umask(0o077)
    path = results.write_json_atomic(tmp_path / "private.json", {"x": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_json_write_takes_numpy_values_and_nan(tmp_path):
    path = results.write_json_atomic(tmp_path / "r.json", {"a": np.float32(0.5), "b": np.arange(3), "c": float("nan")})
    back = results.read_results(path)
    assert back["a"] == 0.5 and back["b"] == [0, 1, 2] and np.isnan(back["c"])


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = results.write_json_atomic(tmp_path / "r.json", {"old": True})
    with pytest.raises(TypeError, match="cannot write a object to JSON"):
        results.write_json_atomic(path, {"new": object()})
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]

    def broken(handle):
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        results.write_atomic(path, broken)
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_npz_write_round_trips(tmp_path, umask_022):
    path = results.write_npz_atomic(tmp_path / "c.npz", {"w": np.eye(2), "n": np.array(3)})
    with np.load(path) as f:
        np.testing.assert_array_equal(f["w"], np.eye(2))
        assert int(f["n"]) == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_corrupt_results_file_gets_a_clear_error(tmp_path):
    (tmp_path / "r.json").write_text('{"half": ')
    with pytest.raises(ValueError, match="r.json: not valid JSON .*move it away"):
        results.read_results(tmp_path / "r.json")


def test_format_table_aligns_columns_and_shows_missing_cells_as_dashes():
    text = results.format_table([{"name": "vgg08", "acc": 0.49951}, {"name": "vgg38_bn_res", "acc": None}])
    assert text.splitlines() == ["name          acc   ", "------------  ------", "vgg08         0.4995",
                                 "vgg38_bn_res  -     "]
    assert results.format_table([]) == "(no rows)"
