"""md.set_num_threads / md.get_num_threads: threads are set by an explicit call, never by ``import minideep``."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import threadpoolctl

import minideep as md
import minideep.nn.functional as F
from minideep import backend

_REPORT = "import json, threadpoolctl; print(json.dumps([p['num_threads'] for p in threadpoolctl.threadpool_info()]))"


def _blas_threads_after(code: str, env: dict[str, str] | None = None) -> list[int]:
    """The BLAS libraries' thread counts in a fresh Python after running ``code``."""
    done = subprocess.run([sys.executable, "-c", f"{code}\n{_REPORT}"], capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})})
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def restore_threads():
    """Put the conv worker count and the BLAS limits back after a test that sets them."""
    saved_count = backend._num_threads
    with threadpoolctl.threadpool_limits(limits=None):
        saved = threadpoolctl.threadpool_info()
        yield
    backend._num_threads = saved_count
    for pool in saved:
        threadpoolctl.threadpool_limits(limits={pool["prefix"]: pool["num_threads"]})


def test_import_minideep_leaves_the_blas_thread_limits_unchanged():
    plain = _blas_threads_after("import numpy")
    assert plain, "threadpoolctl finds no BLAS library behind NumPy"
    assert _blas_threads_after("import numpy, minideep, minideep.nn, minideep.experiment, minideep.sweep") == plain


def test_import_minideep_leaves_openblas_num_threads_alone():
    assert _blas_threads_after("import minideep", {"OPENBLAS_NUM_THREADS": "1"}) == [1] * len(_blas_threads_after("import numpy"))


def test_set_num_threads_sets_one_blas_thread_and_the_conv_workers():
    assert _blas_threads_after("import minideep as md; md.set_num_threads(2)") == [1] * len(_blas_threads_after("import numpy"))
    done = subprocess.run([sys.executable, "-c", "import minideep as md; md.set_num_threads(3); print(md.get_num_threads())"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "3"


def test_default_conv_workers_is_one_per_core_at_most_eight():
    done = subprocess.run([sys.executable, "-c", "import minideep as md; print(md.get_num_threads())"],
                          capture_output=True, text=True, check=True)
    assert int(done.stdout) == min(os.cpu_count() or 1, 8) == backend.DEFAULT_NUM_THREADS


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_refuses_what_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match="set_num_threads: n must be an int >= 1"):
        md.set_num_threads(bad)


def test_conv_gives_the_same_numbers_with_any_worker_count(restore_threads):
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((4, 16, 12, 12)), requires_grad=True)
    w = md.tensor(rng.standard_normal((16, 16, 3, 3)), requires_grad=True)
    outputs = []
    for n in (1, 3, 2):  # the pool is made again whenever the count changes
        md.set_num_threads(n)
        assert md.get_num_threads() == n
        x.grad = w.grad = None
        y = F.conv2d(x, w, padding=1)
        y.sum().backward()
        outputs.append((y.data.copy(), x.grad.copy(), w.grad.copy()))
    for other in outputs[1:]:
        for a, b in zip(outputs[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
