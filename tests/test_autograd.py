"""The engine: Tensor, Function, the backward pass, no_grad, dtype rules, sum_to."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest

import minideep as md
from minideep.backend import as_numpy, to_device


# --------------------------------------------------------------------------- the backward pass


def test_gradients_accumulate_across_backward_calls(randn):
    x = randn(3)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 5.0)


def test_clearing_grad_restarts_accumulation(randn):
    x = randn(3)
    (x * 2).sum().backward()
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 3.0)


def test_a_tensor_used_twice_gets_both_gradients(randn):
    x = randn(4)
    (x * x).sum().backward()
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 2 * x.numpy())


def test_diamond_graph_adds_the_two_paths(randn):
    x = randn(2, 3)
    a, b = x * 2.0, x * 3.0  # two paths from x that meet again in a * b
    (a * b).sum().backward()
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 12 * x.numpy())


def test_diamond_through_a_shared_non_leaf(randn):
    x = randn(3)
    y = md.exp(x)  # y feeds two branches, so its gradient must be complete before Exp runs
    z = (y * y + md.tanh(y)).sum()
    z.backward()
    yv = np.exp(x.numpy())
    expected = (2 * yv + (1 - np.tanh(yv) ** 2)) * yv
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), expected, rtol=1e-12)


def test_a_shortcut_and_a_longer_path_both_reach_the_input(randn):
    # x feeds the output directly and through tanh: x's gradient must wait for the longer path.
    x = randn(3)
    (x + 0.5 * md.tanh(x)).sum().backward()
    expected = 1 + 0.5 * (1 - np.tanh(x.numpy()) ** 2)
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), expected, rtol=1e-12)


def test_the_first_gradient_is_not_updated_in_place_when_it_aliases(randn):
    # sum's backward may hand back a broadcast (read-only) view; adding a second path must not write into it.
    x = randn(2, 3)
    y = x * 1.0
    (y.sum() + (y * 2.0).sum()).backward()
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 3.0)


def test_a_2000_deep_chain_needs_no_recursion(randn):
    x = randn(1, 4)
    y = x
    for _ in range(2000):
        y = y * 1.0005
    y.sum().backward()
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 1.0005**2000, rtol=1e-9)


def test_a_deep_graph_with_skips(randn):
    x = randn(3)
    h = x
    for _ in range(300):
        h = h + 0.5 * md.tanh(h)  # residual: every block adds a skip path
    h.sum().backward()
    assert np.all(np.isfinite(md.backend.as_numpy(x.grad)))
    assert md.gradcheck(lambda t: _residual_stack(t, 20), [randn(3)])


def _residual_stack(h, depth):
    for _ in range(depth):
        h = h + 0.5 * md.tanh(h)
    return h


def _random_graph(x, seed):
    """A random DAG: each node applies a random op to one or two random earlier nodes."""
    rng = np.random.default_rng(seed)
    nodes = [x]
    for _ in range(12):
        a, b = (nodes[int(i)] for i in rng.integers(0, len(nodes), size=2))
        kind = int(rng.integers(0, 4))
        nodes.append(a * b * 0.5 if kind == 0 else a + md.tanh(b) if kind == 1 else md.exp(a * 0.3) - b if kind == 2 else a * 1.5)
    return nodes[-1] + nodes[len(nodes) // 2]


@pytest.mark.parametrize("seed", range(6))
def test_random_graphs_match_finite_differences(randn, seed):
    assert md.gradcheck(lambda t: _random_graph(t, seed), [randn(4, seed=seed)])


def test_backward_twice_without_retain_graph_is_a_clear_runtime_error(randn):
    x = randn(3)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True") as info:
        y.backward()
    assert "freed" in str(info.value)


def test_retain_graph_allows_a_second_backward(randn):
    x = randn(3)
    y = (md.exp(x) * x).sum()
    y.backward(retain_graph=True)
    first = md.backend.as_numpy(x.grad).copy()
    y.backward()
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 2 * first)


def test_non_leaf_gradients_are_not_kept_by_default(randn):
    x = randn(3)
    y = x * 2
    (y * y).sum().backward()
    assert y.grad is None
    assert x.grad is not None


def test_retain_grad_keeps_a_non_leaf_gradient(randn):
    x = randn(3)
    y = x * 2
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(md.backend.as_numpy(y.grad), 2 * y.numpy())


def test_register_hook_sees_the_gradient_and_may_replace_it(randn):
    x = randn(3)
    y = x * 3
    seen = []
    y.register_hook(lambda g: seen.append(md.backend.as_numpy(g).copy()))
    y.register_hook(lambda g: g * 10)  # a returned array replaces the gradient
    y.sum().backward()
    np.testing.assert_allclose(seen[0], 1.0)
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 30.0)


def test_register_hook_on_a_leaf(randn):
    x = randn(2)
    x.register_hook(lambda g: g * 0)
    (x * 5).sum().backward()
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 0.0)


def test_backward_with_an_explicit_gradient(randn, on_device):
    x = randn(2, 3)
    v = np.arange(6.0).reshape(2, 3)
    (x * 2).backward(on_device(v))
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 2 * v)


def test_backward_of_a_one_element_tensor_needs_no_gradient(randn):
    x = randn(1, 1)
    (x * 4).backward()
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), [[4.0]])


def test_gradients_keep_the_dtype(device):
    x = md.tensor(to_device(np.ones(3, dtype=np.float32), device), requires_grad=True)
    (x * 2.5 + 1).sum().backward()
    assert x.grad.dtype == np.float32


def test_grad_fn_names_the_op_and_its_inputs(randn):
    a, b = randn(2), randn(2, seed=1)
    y = a * b
    assert type(y.grad_fn).__name__ == "MulBackward"
    assert y.grad_fn.parents == (a, b)
    assert a.is_leaf and not y.is_leaf


def test_a_function_does_not_keep_its_output_alive(randn):
    x = randn(3)
    y = md.exp(x)
    fn, ref = y.grad_fn, weakref.ref(y)
    del y
    assert ref() is None
    assert fn.parents == (x,)


def test_backward_frees_the_graph(randn):
    x = randn(3)
    y = md.exp(x)
    z = y.sum()
    z.backward()
    assert y.grad_fn.parents is None and z.grad_fn.parents is None


# --------------------------------------------------------------------------- no_grad


def test_no_grad_builds_no_graph(randn):
    x = randn(3)
    with md.no_grad():
        y = x * 2
        assert not md.is_grad_enabled()
    assert md.is_grad_enabled()
    assert y.grad_fn is None and not y.requires_grad


def test_no_grad_as_a_decorator(randn):
    @md.no_grad()
    def evaluate(t):
        return t * 2

    y = evaluate(randn(3))
    assert y.grad_fn is None and not y.requires_grad
    assert md.is_grad_enabled()


def test_no_grad_decorator_on_a_recursive_function():
    # The decorator's one instance is entered once per recursion level.
    @md.no_grad()
    def depth_first(n):
        inner = depth_first(n - 1) if n else []
        return inner + [md.is_grad_enabled()]

    assert depth_first(3) == [False] * 4
    assert md.is_grad_enabled()


def test_no_grad_is_restored_after_an_exception():
    with pytest.raises(KeyError):
        with md.no_grad():
            raise KeyError("boom")
    assert md.is_grad_enabled()


def test_enable_grad_inside_no_grad(randn):
    x = randn(2)
    with md.no_grad():
        with md.enable_grad():
            y = x * 2
        assert not md.is_grad_enabled()
    assert y.requires_grad and y.grad_fn is not None


def test_inputs_without_grad_make_outputs_without_grad(randn):
    a = randn(3, requires_grad=False)
    y = md.exp(a) * 2
    assert not y.requires_grad and y.grad_fn is None


# --------------------------------------------------------------------------- errors of the engine


def test_an_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point") as info:
        md.Tensor(np.arange(3), requires_grad=True)
    assert "int64" in str(info.value)
    with pytest.raises(TypeError, match="floating-point"):
        md.tensor([1, 2], dtype=np.int32, requires_grad=True)


def test_backward_of_a_non_scalar_needs_a_gradient_and_names_the_shape(randn):
    y = randn(2, 3) * 2
    with pytest.raises(ValueError, match=r"backward: output has shape \(2, 3\)"):
        y.backward()


def test_backward_gradient_of_the_wrong_shape(randn, on_device):
    y = randn(2, 3) * 2
    with pytest.raises(ValueError, match=r"grad has shape \(3,\) but the tensor has shape \(2, 3\)"):
        y.backward(on_device(np.ones(3)))


def test_backward_of_a_tensor_without_grad(randn):
    with pytest.raises(ValueError, match="does not require grad"):
        randn(3, requires_grad=False).sum().backward()


def test_a_backward_returning_the_wrong_shape_is_reported(randn):
    class BadShape(md.Function):
        def forward(self, x):
            return x * 2

        def backward(self, grad):
            return grad.sum(axis=0)

    with pytest.raises(RuntimeError, match=r"BadShape.backward returned a gradient of shape \(3,\)"):
        BadShape()(randn(2, 3)).sum().backward()


# --------------------------------------------------------------------------- making tensors, dtypes


@pytest.mark.parametrize("data", [[1.0, 2.0], 2.5, [[1, 2.5]]])
def test_float_lists_and_numbers_become_float32(data):
    assert md.tensor(data).dtype == np.float32


@pytest.mark.parametrize("data, dtype", [([1, 2], np.int64), (3, np.int64), (np.arange(3), np.int64),
                                         (np.arange(3, dtype=np.int8), np.int8), ([True, False], np.bool_)])
def test_tensor_keeps_integers_as_torch_tensor_does(torch, data, dtype):
    assert md.tensor(data).dtype == dtype
    assert str(md.tensor(data).dtype) == str(torch.tensor(data).dtype).removeprefix("torch.").replace("bool", "bool")


@pytest.mark.parametrize("data", [[1, 2], 3, [[1.5, 2]]])
def test_the_tensor_class_makes_float32_from_numbers_as_torch_tensor_does(torch, data):
    assert md.Tensor(data).dtype == np.float32
    assert torch.Tensor(data if isinstance(data, list) else [data]).dtype == torch.float32


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_floating_arrays_keep_their_dtype(dtype):
    assert md.tensor(np.ones(3, dtype=dtype)).dtype == dtype


def test_dtype_argument_wins():
    assert md.tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert md.tensor(np.ones(2, dtype=np.float64), dtype=np.float32).dtype == np.float32


def test_tensor_copies_its_data():
    a = np.ones(3)
    t = md.tensor(a)
    a[0] = 5.0
    assert t.numpy()[0] == 1.0


@pytest.mark.parametrize(
    "expression",
    [
        lambda x: x + 1, lambda x: 1 + x, lambda x: x - 1, lambda x: 1 - x, lambda x: x * 2.5,
        lambda x: 2.5 * x, lambda x: x / 3, lambda x: 3 / x, lambda x: x**2, lambda x: -x,
        lambda x: x + np.float64(1.5), lambda x: np.float64(1.5) * x,
    ],
)
def test_operators_with_python_scalars_keep_float32(expression):
    x = md.tensor([1.0, 2.0], requires_grad=True)
    y = expression(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_integer_tensors_with_float_scalars_are_promoted_not_truncated():
    labels = md.Tensor(np.arange(3))
    np.testing.assert_allclose((labels + 1.5).numpy(), [1.5, 2.5, 3.5])
    np.testing.assert_allclose((labels * 0.5).numpy(), [0.0, 0.5, 1.0])
    assert (labels + 1).dtype == labels.dtype  # an int scalar keeps the integer dtype


def test_reversed_operators_have_the_right_sign_and_gradient(randn):
    x = randn(3, low=1.0)
    y = (2 - x) + 6 / x
    y.sum().backward()
    xv = x.numpy()
    np.testing.assert_allclose(y.numpy(), 2 - xv + 6 / xv)
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), -1 - 6 / xv**2)


def test_ndarray_on_the_left_of_a_tensor(device):
    x = md.tensor(to_device(np.array([1.0, 2.0]), device), requires_grad=True)
    a = to_device(np.array([10.0, 20.0]), device)
    for result, expected in ((a + x, [11, 22]), (a - x, [9, 18]), (a * x, [10, 40]), (a / x, [10, 10])):
        assert isinstance(result, md.Tensor)
        np.testing.assert_allclose(result.numpy(), expected)
    m = to_device(np.eye(2), device)
    y = m @ md.tensor(to_device(np.ones((2, 1)), device), requires_grad=True)
    assert isinstance(y, md.Tensor) and y.shape == (2, 1)


def test_comparisons_give_bool_tensors_without_grad(randn):
    x = randn(4)
    for result in (x > 0, x >= 0, x < 0, x <= 0, x == x, x != 0, 0 < x):
        assert isinstance(result, md.Tensor)
        assert result.dtype == np.bool_
        assert not result.requires_grad and result.grad_fn is None
    np.testing.assert_array_equal((x > 0).numpy(), x.numpy() > 0)


def test_truth_value_follows_the_data():
    assert bool(md.tensor([0.0]) > 0) is False
    assert bool(md.tensor(2.0) > 1) is True
    with pytest.raises(ValueError):
        bool(md.tensor([1.0, 2.0]) > 0)  # ambiguous, as in NumPy and PyTorch


def test_membership_does_not_treat_different_tensors_as_equal():
    a, b = md.tensor([1.0, 2.0]), md.tensor([3.0, 4.0])
    assert a in [a]  # identity comes first
    with pytest.raises(ValueError):
        _ = a in [b]  # elementwise ==, whose truth value is ambiguous: never a silent True


def test_iterating_a_tensor_gives_its_rows(randn):
    x = randn(3, 2)
    rows = list(x)
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    sum(r.sum() for r in rows).backward()
    np.testing.assert_allclose(md.backend.as_numpy(x.grad), 1.0)


# --------------------------------------------------------------------------- conversions


def test_item_numpy_detach_to(randn):
    x = randn(1)
    assert isinstance(x.item(), float) and x.item() == float(x.numpy()[0])
    assert type(x.numpy()) is np.ndarray
    d = (x * 2).detach()
    assert d.grad_fn is None and not d.requires_grad
    assert x.to("cpu").device == "cpu" and x.to("cpu").shape == (1,)


def test_item_of_a_tensor_with_many_elements(randn):
    with pytest.raises(ValueError, match=r"item: tensor has 6 elements \(shape \(2, 3\)\)"):
        randn(2, 3).item()


def test_detach_shares_the_data(randn):
    x = randn(3)
    d = x.detach()
    assert d.data is x.data


def test_to_cpu_of_a_cpu_tensor_is_itself():
    x = md.tensor([1.0])
    assert x.to("cpu") is x
    assert x.device == "cpu"


def test_to_an_unknown_device():
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'"):
        md.tensor([1.0]).to("tpu")


@pytest.mark.skipif(not md.gpu_available(), reason="needs CuPy and a GPU")
def test_to_gpu_and_back():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    g = x.to("gpu")
    assert g.device == "gpu" and g.requires_grad
    np.testing.assert_array_equal(g.to("cpu").numpy(), [1.0, 2.0])


def test_data_is_assignable(randn):
    x = randn(2)
    x.data = x.data * 0 + 7
    np.testing.assert_allclose(x.numpy(), 7.0)


# --------------------------------------------------------------------------- sum_to


@pytest.mark.parametrize(
    "grad_shape, shape",
    [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 3), (1, 3)), ((2, 3), (2, 1)), ((4, 2, 3), (2, 1)),
     ((4, 2, 3), ()), ((4, 1, 3), (1, 1, 3)), ((5, 4, 2, 3), (4, 1, 1))],
)
def test_sum_to_undoes_broadcasting(grad_shape, shape, on_device):
    grad = np.random.default_rng(0).standard_normal(grad_shape)
    x = np.zeros(shape)
    out = md.sum_to(on_device(grad), shape)
    assert out.shape == shape
    # The adjoint property: <grad, broadcast(x)> = <sum_to(grad), x> for every x, so sum over copies.
    expected = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    expected = expected.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)
    np.testing.assert_allclose(md.backend.as_numpy(out), expected.reshape(shape) + x)


def test_sum_to_of_the_same_shape_is_the_identity(on_device):
    grad = on_device(np.ones((2, 3)))
    assert md.sum_to(grad, (2, 3)) is grad


# --------------------------------------------------------------------------- packaging


def test_import_minideep_needs_only_numpy():
    # Block the optional dependencies, then check that nothing else was imported either.
    script = textwrap.dedent(
        """
        import importlib.abc, sys
        OPTIONAL = ("torch", "matplotlib", "tqdm", "cupy", "PIL", "hypothesis", "scipy")
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in OPTIONAL:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import minideep, minideep.nn.functional
        x = minideep.tensor([1.0, 2.0], requires_grad=True)
        (x * x).sum().backward()
        print(sorted(m for m in sys.modules if m.split(".")[0] in OPTIONAL))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- PyTorch's conventions


def test_import_minideep_makes_nn_functional_and_optim_usable():
    import subprocess
    import sys

    code = ("import minideep as md; m = md.nn.Linear(2, 1); md.nn.functional.relu(md.tensor([1.0]));"
            "md.optim.SGD(m.parameters(), lr=0.1); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_register_hook_returns_a_handle_that_removes_it(randn):
    x = randn(3)
    handle = x.register_hook(lambda g: 10 * g)
    (x * 1).sum().backward()
    np.testing.assert_allclose(as_numpy(x.grad), np.full(3, 10.0))
    handle.remove()
    x.grad = None
    (x * 1).sum().backward()
    np.testing.assert_allclose(as_numpy(x.grad), np.ones(3))
    handle.remove()  # a second remove is harmless, as in PyTorch


def test_no_grad_and_enable_grad_are_the_same_kind_of_object(randn):
    assert type(md.no_grad()).__mro__[1] is type(md.enable_grad()).__mro__[1]  # one base class
    x = randn(2)

    @md.enable_grad()
    def tracked(t):
        return t * 2

    @md.no_grad()
    def untracked(t):
        return t * 2

    with md.no_grad():
        assert tracked(x).requires_grad
        with md.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert not untracked(x).requires_grad and md.is_grad_enabled()


def test_a_float32_leaf_gets_a_float32_grad_after_meeting_float64(torch):
    x = md.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    w = md.tensor(np.array([3.0, 4.0]), requires_grad=True)  # float64
    y = x * w
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float64
    tx = torch.tensor([1.0, 2.0], requires_grad=True)
    (tx * torch.tensor([3.0, 4.0], dtype=torch.float64)).sum().backward()
    assert tx.grad.dtype == torch.float32  # PyTorch casts a leaf's gradient to its dtype too
    np.testing.assert_allclose(x.grad, tx.grad.numpy())


def test_an_optimizer_step_between_forward_and_backward_raises_a_named_error(randn):
    x = randn(4, 3, requires_grad=False)
    model = md.nn.Linear(3, 2, dtype=np.float64).to(x.device)
    opt = md.optim.SGD(model.parameters(), lr=0.1)
    model(x).sum().backward()
    opt.step()
    loss = model(x).sum()
    opt.step()  # changes the weights the loss was computed from
    with pytest.raises(md.ModifiedInPlaceError, match=r"input 1 of LinearBackward \(shape \(2, 3\)\) was modified in place"):
        loss.backward()
    assert issubclass(md.ModifiedInPlaceError, RuntimeError)
    opt.zero_grad()
    model(x).sum().backward()  # a new forward after the step is fine
    assert model.weight.grad is not None


def test_the_public_topological_order_is_the_function_backward_walks():
    assert md.topological_order is md.autograd.topological_order  # the function itself, no wrapper
