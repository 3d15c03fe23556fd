"""backend.set_blas_threads: finds NumPy's bundled OpenBLAS and leaves results unchanged."""
import numpy as np

from minideep.backend import set_blas_threads


def test_set_blas_threads_finds_openblas_and_products_stay_exact():
    a = np.random.default_rng(0).standard_normal((300, 300))
    before = a @ a
    found = set_blas_threads(1)
    assert isinstance(found, bool)
    np.testing.assert_allclose(a @ a, before, rtol=1e-12)
