"""A block's Jacobian, applied both ways, and the three gains that describe it.

For a block f: h_{l-1} -> h_l (over the whole batch: n numbers in, m numbers out) with
Jacobian J = dh_l/dh_{l-1} (m x n), backpropagation maps the gradient g = dL/dh_l at the
output to J^T g at the input. Three numbers say how big that map is, and they are
measured independently of each other:

    on_gradient = ||J^T g|| / ||g||        for the gradient g that backprop delivered
    rms         = ||J||_F / sqrt(m)        the gain of a random direction: sqrt(E ||J^T u||^2), u on the unit sphere
    top         = sigma_max(J)             the largest gain of any direction

Two products with J are needed:

* **J^T u (a VJP) is exact**: one ``backward(u)`` through the block's graph, the same
  computation as backprop itself.
* **J v (a JVP) is a central difference in float64**, (f(x + t v) - f(x - t v)) / (2 t).
  The engine has no forward-mode rules and no double backward, so an exact JVP is not
  available; in float64 the difference quotient is accurate to about 10 digits (below).

The error of a central difference: the truncation error is t^2/6 |f'''[v, v, v]| and the
rounding error about u |f(x)| / t (u = 2.2e-16, float64's unit roundoff); the step
t = u^(1/3) ||x|| / ||v|| makes both about u^(2/3) ~ 1e-11 relative to the sizes involved,
far below what a gain needs. Only a kink (a ReLU or max pool switching) within the step
of the point spoils it, and float64's relative step of 6e-6 makes that rare. Every
measurement is therefore done in float64: the input is promoted, and float32 parameters
are promoted with it by the ops (the same function, evaluated with more digits).

Hessian-vector products are central differences of the exact gradient, the same way:
H v = (grad L(w + t v) - grad L(w - t v)) / (2 t).
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import backend
from ..autograd import Tensor, enable_grad, no_grad, tensor
from ..backend import as_numpy, get_array_module
from .layers import frozen_parameters, preserved_buffers

#: float64's unit roundoff to the power 1/3: the relative step that balances truncation and rounding.
RELATIVE_STEP = float(np.finfo(np.float64).eps) ** (1.0 / 3.0)


def _data(value: Any, name: str, fn: str) -> Any:
    """The float64 array behind a Tensor or array-like (on its own device)."""
    data = value.data if isinstance(value, Tensor) else value
    xp = get_array_module(data)
    data = xp.asarray(data)
    if not (np.issubdtype(np.dtype(data.dtype), np.floating) or np.issubdtype(np.dtype(data.dtype), np.integer)):
        raise TypeError(f"{fn}: {name} must hold real numbers, got dtype {data.dtype}")
    return data.astype(xp.float64)


def _norm(a: Any) -> float:
    """||a||_2 as a Python float (summed in float64)."""
    xp = get_array_module(a)
    return float(as_numpy(xp.sqrt((a.astype(xp.float64) ** 2).sum())))


def finite_difference_step(x: Any, v: Any) -> float:
    """t = u^(1/3) ||x|| / ||v||: a step of relative size u^(1/3) ~ 6e-6 along v (t = u^(1/3)/||v|| when x = 0)."""
    nv = _norm(v)
    if nv == 0:
        return 0.0
    nx = _norm(x)
    return RELATIVE_STEP * (nx if nx > 0 else 1.0) / nv


def _as_tensor_output(out: Any, fn: str) -> Any:
    if not isinstance(out, Tensor):
        raise TypeError(f"{fn}: the function must return a Tensor, got {type(out).__name__}")
    return out.data


# --8<-- [start:jvp]
def jvp(fn: Callable[[Tensor], Tensor], x: Any, v: Any, *, step: float | None = None) -> Any:
    """J v, the Jacobian of ``fn`` at ``x`` times ``v``, by a central difference in float64.

    .. math::

        J v \\approx \\frac{f(x + t v) - f(x - t v)}{2 t}, \\qquad
        t = u^{1/3} \\frac{\\lVert x \\rVert}{\\lVert v \\rVert}

    The truncation error is about t^2/6 |f'''[v,v,v]| and the rounding error about
    u |f(x)| / t; with u = 2.2e-16 (float64) both are ~1e-11 relative, unless a kink
    (ReLU, max pool) lies within the step. Two forward passes, no graph.

    Args:
        fn: ``fn(Tensor) -> Tensor``; it must be a function of its input alone (fix dropout
            masks and use the same batch: BN in training mode couples the samples, and the
            difference then measures that coupling too, as it should).
        x: the point (Tensor or array); promoted to float64.
        v: the direction, an array of x's shape.
        step: the step t (default: the formula above).

    Returns:
        J v, a float64 array of the output's shape.

    Example:
        >>> jvp(lambda t: t * t, np.array([1.0, 2.0]), np.array([1.0, 0.0]))
        array([2., 0.])
    """
    name = "jvp"
    xd, vd = _data(x, "x", name), _data(v, "v", name)
    if vd.shape != xd.shape:
        raise ValueError(f"{name}: v has shape {vd.shape} but x has shape {xd.shape}")
    t = finite_difference_step(xd, vd) if step is None else float(step)
    with no_grad():
        plus = _as_tensor_output(fn(tensor(xd + t * vd)), name)
        if t == 0:  # v = 0: J v = 0, shaped like the output
            return get_array_module(plus).zeros(plus.shape, dtype=np.float64)
        minus = _as_tensor_output(fn(tensor(xd - t * vd)), name)
    return (plus.astype(np.float64) - minus.astype(np.float64)) / (2 * t)
# --8<-- [end:jvp]


class Linearization:
    """A function at one point, ready to apply its Jacobian J both ways.

    One forward pass with the graph kept; ``vjp(u)`` = J^T u is one exact ``backward(u)``
    through it (as many times as wanted), ``jvp(v)`` = J v is :func:`jvp`'s central
    difference in float64.

    Attributes:
        x: the point (float64 array).
        output: f(x) (float64 array).
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], x: Any, name: str = "Linearization") -> None:
        self.fn, self.name = fn, name
        self.x = _data(x, "x", name)
        self._leaf = tensor(self.x, requires_grad=True)
        with enable_grad():
            self._out = fn(self._leaf)
        self.output = _as_tensor_output(self._out, name)
        self.output_size, self.input_size = int(self.output.size), int(self.x.size)

    def vjp(self, u: Any) -> Any:
        """J^T u (exact, by backward); u has the output's shape."""
        xp = get_array_module(self.x)
        u = xp.asarray(u, dtype=self.output.dtype)
        if u.shape != self.output.shape:
            raise ValueError(f"{self.name}: the output gradient has shape {u.shape}, the output {self.output.shape}")
        if not self._out.requires_grad:  # the output does not depend on the input: J = 0
            return xp.zeros(self.x.shape, dtype=np.float64)
        self._leaf.grad = None
        self._out.backward(u, retain_graph=True)
        grad = self._leaf.grad
        return xp.zeros(self.x.shape, dtype=np.float64) if grad is None else grad.astype(np.float64)

    def jvp(self, v: Any) -> Any:
        """J v (central difference in float64); v has the input's shape."""
        return jvp(self.fn, self.x, v)


@contextlib.contextmanager
def fixed_dropout(module: Any, seed: int) -> Iterator[None]:
    """Every ``nn.Dropout`` in ``module`` draws the same mask on every call inside the block.

    A random mask is not a function of the input, so a Jacobian of a block with dropout
    in training mode is the Jacobian for one fixed mask: each Dropout module re-seeds
    minideep's generator with (seed, its position) before it runs, and the generators are
    put back afterwards.
    """
    wrapped = []
    saved = dict(backend._generators)
    for index, sub in enumerate(module.modules() if hasattr(module, "modules") else ()):
        if type(sub).__name__ != "Dropout" or "forward" in sub.__dict__:
            continue  # not a dropout, or already fixed by an enclosing measurement (keep its mask)
        original = sub.forward

        def forward(x: Tensor, _original: Callable = original, _index: int = index) -> Tensor:
            backend.manual_seed(seed * 100_003 + _index)
            return _original(x)

        object.__setattr__(sub, "forward", forward)  # an instance attribute shadows the class's forward
        wrapped.append(sub)
    try:
        yield
    finally:
        for sub in wrapped:
            sub.__dict__.pop("forward", None)
        backend._generators.clear()
        backend._generators.update(saved)


@contextlib.contextmanager
def measuring(module: Any, seed: int) -> Iterator[None]:
    """Looking at a module without changing it: parameters frozen, buffers put back, dropout masks fixed."""
    if hasattr(module, "parameters"):
        with frozen_parameters(module), preserved_buffers(module), fixed_dropout(module, seed):
            yield
    else:
        yield


def _unit(xp: Any, rng: Any, shape: tuple[int, ...]) -> Any:
    u = rng.standard_normal(shape).astype(np.float64)
    return u / xp.sqrt((u ** 2).sum())


def gains_of(lin: Linearization, grad_output: Any = None, *, probes: int = 32, iterations: int = 30,
             seed: int = 0) -> dict[str, Any]:
    """The three gains of a :class:`Linearization` (see :func:`jacobian_gains`)."""
    fn = "jacobian_gains"
    for name, value, low in (("probes", probes, 1), ("iterations", iterations, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{fn}: {name} must be an int >= {low}, got {value!r}")
    xp = get_array_module(lin.x)
    rng = xp.random.default_rng(seed)
    m = lin.output_size

    # rms = ||J||_F / sqrt(m). Exact (every basis vector) when m <= probes, else Hutchinson.
    if m <= probes:
        total = 0.0
        for i in range(m):
            e = xp.zeros(m, dtype=np.float64)
            e[i] = 1.0
            total += _norm(lin.vjp(e.reshape(lin.output.shape))) ** 2
        rms, rms_stderr, rms_exact, used = math.sqrt(total / m), 0.0, True, m
    else:
        # u uniform on the unit sphere: E[u u^T] = I/m, so E ||J^T u||^2 = ||J||_F^2 / m = rms^2.
        samples = np.array([_norm(lin.vjp(_unit(xp, rng, lin.output.shape))) ** 2 for _ in range(probes)])
        mean = float(samples.mean())
        rms = math.sqrt(mean)
        spread = float(samples.std(ddof=1)) if probes > 1 else math.nan
        rms_stderr = spread / math.sqrt(probes) / (2 * rms) if rms > 0 else math.nan  # the delta method
        rms_exact, used = False, probes

    # top = sigma_max(J): power iteration on J^T J, v <- J^T J v / ||J^T J v||; ||J v|| rises to sigma_max.
    v = _unit(xp, rng, lin.x.shape)
    top, previous = 0.0, math.nan
    for _ in range(iterations):
        w = lin.jvp(v)
        previous, top = top, _norm(w)
        z = lin.vjp(w)
        nz = _norm(z)
        if nz == 0 or not math.isfinite(nz):
            break
        v = z / nz
    top_change = abs(top - previous) / top if top > 0 and math.isfinite(previous) else math.nan

    on_gradient = None
    grad_norm = None
    if grad_output is not None:
        g = _data(grad_output, "grad_output", fn)
        grad_norm = _norm(g)
        on_gradient = _norm(lin.vjp(g)) / grad_norm if grad_norm > 0 else math.nan
    return {"rms": rms, "top": top, "on_gradient": on_gradient, "grad_norm": grad_norm,
            "rms_stderr": rms_stderr, "rms_exact": rms_exact, "probes": used, "iterations": iterations,
            "top_change": top_change, "output_size": m, "input_size": lin.input_size}


def jacobian_gains(module: Any, x: Any, grad_output: Any = None, *, probes: int = 32, iterations: int = 30,
                   seed: int = 0) -> dict[str, Any]:
    """How much a block's Jacobian J (m x n, over the whole batch) grows or shrinks a gradient.

    .. math::

        \\text{on\\_gradient} = \\frac{\\lVert J^\\top g \\rVert}{\\lVert g \\rVert}, \\qquad
        \\text{rms} = \\frac{\\lVert J \\rVert_F}{\\sqrt m}
                    = \\sqrt{\\mathbb E_u \\lVert J^\\top u \\rVert^2}, \\qquad
        \\text{top} = \\sigma_{\\max}(J)

    * ``on_gradient``: the gain on the gradient g = ``grad_output`` that backprop delivered
      (one exact VJP); None without ``grad_output``.
    * ``rms``: the gain of a random direction, from ``probes`` VJPs of vectors u uniform on
      the unit sphere (Hutchinson's estimator, E[u u^T] = I/m); exact (all m basis vectors)
      when m <= probes. ``rms_stderr`` is its standard error.
    * ``top``: the largest singular value, by ``iterations`` steps of power iteration on
      J^T J (each one JVP by central differences in float64 and one exact VJP). ||J v|| for
      a unit v never exceeds sigma_max, so ``top`` approaches it from below;
      ``top_change`` is the relative change over the last step (small: converged).

    The block is run in its current mode (BN in training mode uses the batch statistics,
    so J couples the samples), in float64; its parameters are frozen, its buffers put back
    and its dropout masks held fixed, so measuring it changes nothing.

    Cost: 1 forward with graph, probes + iterations + 1 backwards and 2 * iterations
    forwards without graph.

    Args:
        module: the block (any ``fn(Tensor) -> Tensor``; a Module is frozen and restored).
        x: its input batch (Tensor or array).
        grad_output: dL/d(output), an array of the output's shape, or None.
        probes: random directions for ``rms``.
        iterations: power-iteration steps for ``top``.
        seed: seeds the probes, the starting vector and the dropout masks.

    Returns:
        ``{"rms", "top", "on_gradient", "grad_norm" (||grad_output|| or None), "rms_stderr",
        "rms_exact", "probes", "iterations", "top_change", "output_size", "input_size"}``,
        all plain Python.

    Example:
        >>> lin = nn.Linear(8, 4, bias=False)
        >>> gains = jacobian_gains(lin, np.random.randn(2, 8))
        >>> gains["top"]  # the largest singular value of lin.weight
    """
    with measuring(module, seed):
        lin = Linearization(module, x, "jacobian_gains")
        return gains_of(lin, grad_output, probes=probes, iterations=iterations, seed=seed)


# --8<-- [start:hessian_vector_product]
def hessian_vector_product(loss_fn: Callable[[], Tensor], params: Sequence[Tensor], vectors: Sequence[Any], *,
                           module: Any = None, step: float | None = None) -> list[Any]:
    """H v, the Hessian of the loss in the parameters times v, by central differences of the gradient.

    .. math::

        H v \\approx \\frac{\\nabla L(w + t v) - \\nabla L(w - t v)}{2 t}, \\qquad
        t = u^{1/3} \\frac{\\lVert w \\rVert}{\\lVert v \\rVert}

    The gradients are exact (backward); the parameters are moved to float64 for the two
    evaluations (so the step is not lost to float32 rounding) and restored bit for bit,
    with their ``.grad``, afterwards. Errors as for :func:`jvp`: ~1e-10 relative away from
    kinks. Cost: two forward and backward passes.

    Args:
        loss_fn: ``loss_fn() -> scalar Tensor``, computed from ``params`` (and fixed data).
        params: the parameters w (Tensors; together they are one long vector).
        vectors: v, one array per parameter, of its shape.
        module: the model, if any: its buffers (BN running statistics) are put back, its
            other parameters frozen, and its dropout masks held fixed, so that
            ``loss_fn`` is a function of w alone.
        step: the step t (default: the formula above).

    Returns:
        H v, one float64 array per parameter.

    Example:
        >>> w = md.tensor(np.array([1.0, 2.0]), requires_grad=True)
        >>> hessian_vector_product(lambda: (w ** 3).sum(), [w], [np.array([1.0, 0.0])])
        [array([6., 0.])]
    """
    fn = "hessian_vector_product"
    params, vectors = list(params), list(vectors)
    if not params:
        raise ValueError(f"{fn}: params is empty")
    if len(vectors) != len(params):
        raise ValueError(f"{fn}: got {len(vectors)} vectors for {len(params)} parameters")
    vs = []
    for i, (p, v) in enumerate(zip(params, vectors)):
        if not isinstance(p, Tensor):
            raise TypeError(f"{fn}: params[{i}] must be a Tensor, got {type(p).__name__}")
        v = _data(v, f"vectors[{i}]", fn)
        if v.shape != p.shape:
            raise ValueError(f"{fn}: vectors[{i}] has shape {v.shape} but params[{i}] has shape {p.shape}")
        vs.append(v)
    w64 = [_data(p, "params", fn) for p in params]
    nw = math.sqrt(sum(_norm(w) ** 2 for w in w64))
    nv = math.sqrt(sum(_norm(v) ** 2 for v in vs))
    if nv == 0:
        return [get_array_module(v).zeros(v.shape, dtype=np.float64) for v in vs]
    t = RELATIVE_STEP * (nw if nw > 0 else 1.0) / nv if step is None else float(step)

    saved = [(p.data, p.grad, p.requires_grad) for p in params]

    def gradient(sign: float) -> list[Any]:
        for p, w, v in zip(params, w64, vs):
            p.data, p.grad, p.requires_grad = w + sign * t * v, None, True
        with enable_grad():
            loss = loss_fn()
            if not isinstance(loss, Tensor) or loss.size != 1:
                raise ValueError(f"{fn}: loss_fn must return a scalar Tensor, got {type(loss).__name__} "
                                 f"of shape {getattr(loss, 'shape', None)}")
            loss.backward()
        return [p.grad.astype(np.float64) if p.grad is not None else get_array_module(w).zeros_like(w)
                for p, w in zip(params, w64)]

    # measuring() freezes every parameter of the module; gradient() unfreezes the chosen ones
    context = measuring(module, 0) if module is not None else contextlib.nullcontext()
    try:
        with context:
            plus = gradient(+1.0)
            minus = gradient(-1.0)
    finally:
        for p, (data, grad, flag) in zip(params, saved):
            p.data, p.grad, p.requires_grad = data, grad, flag
    return [(a - b) / (2 * t) for a, b in zip(plus, minus)]
# --8<-- [end:hessian_vector_product]
