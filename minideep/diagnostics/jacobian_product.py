"""Backprop is the chain rule of matrices: the product of the layers' Jacobians, checked.

For a network of layers h_l = f_l(h_{l-1}) and one sample, write every layer's Jacobian
out as a matrix, J_l = dh_l/dh_{l-1} (an n_l x n_{l-1} array of numbers). The chain rule
says that the gradient at the input is

    dL/dx = J_1^T J_2^T ... J_L^T dL/dh_L = (J_L ... J_1)^T dL/dh_L.

``jacobian_product_check`` writes every J_l down from the layer's textbook formula
(Linear: W; tanh: diag(1 - h^2); sigmoid: diag(s (1 - s)); ReLU: diag(1[z > 0]); any
other layer: row by row from exact VJPs), multiplies them with NumPy, and compares the
product against the dL/dx that one ``backward()`` through the whole network computed: two
independent computations of the same numbers, agreeing to rounding. Each J_l is also
rebuilt column by column from central-difference JVPs (``jvp``), as a check of those. It also returns the
singular values of the partial products P_l = J_l ... J_1 (what the gradient of layer l's
output is multiplied by on its way to the input): in a deep plain network their spread
and their size shrink layer by layer, which is the vanishing gradient in matrix form.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..autograd import Tensor, enable_grad, tensor
from ..backend import as_numpy
from ..ops.loss import cross_entropy
from .jacobian import Linearization, _data, jvp, measuring
from .layers import resolve_layers


def jacobian_matrix(fn: Callable[[Tensor], Tensor], x: Any) -> np.ndarray:
    """The Jacobian of ``fn`` at ``x`` as an (output size) x (input size) float64 matrix, from exact VJPs.

    Row i is J^T e_i: one ``backward`` per output number, so use it for small functions.
    """
    lin = Linearization(fn, x, "jacobian_matrix")
    rows = []
    for i in range(lin.output_size):
        e = np.zeros(lin.output_size)
        e[i] = 1.0
        rows.append(as_numpy(lin.vjp(e.reshape(lin.output.shape))).ravel())
    return np.array(rows).reshape(lin.output_size, lin.input_size)


def layer_jacobian(layer: Any, x: np.ndarray) -> tuple[np.ndarray, str]:
    """J of one layer at one sample x (shape (1, n)), from its formula where known, and how it was made."""
    kind = type(layer).__name__
    x = np.asarray(x, dtype=np.float64)
    if kind == "Linear" and x.ndim == 2:
        return as_numpy(layer.weight.data).astype(np.float64), "formula: W"
    z = x.ravel()
    if kind == "Tanh":
        return np.diag(1 - np.tanh(z) ** 2), "formula: diag(1 - tanh(z)^2)"
    if kind == "Sigmoid":
        s = 1 / (1 + np.exp(-z))
        return np.diag(s * (1 - s)), "formula: diag(s (1 - s))"
    if kind == "ReLU":
        return np.diag((z > 0).astype(np.float64)), "formula: diag(1[z > 0])"
    return jacobian_matrix(layer, x), "exact VJPs (J^T e_i)"


def jvp_jacobian(layer: Any, x: np.ndarray) -> np.ndarray:
    """J of ``layer`` at x, column by column from central-difference JVPs (J e_j)."""
    x = np.asarray(x, dtype=np.float64)
    columns = []
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = 1.0
        columns.append(as_numpy(jvp(layer, x, e.reshape(x.shape))).ravel())
    return np.array(columns).T


def jacobian_product_check(model: Any, x: Any, y: Any, loss_fn: Callable[[Tensor, Any], Tensor] = cross_entropy,
                           layers: Any = None) -> dict[str, Any]:
    """(J_L ... J_1)^T dL/dh_L against backward()'s dL/dx, for one sample; and what shrinks.

    .. math::

        \\frac{\\partial L}{\\partial x} = (J_L J_{L-1} \\cdots J_1)^\\top \\frac{\\partial L}{\\partial h_L},
        \\qquad J_l = \\frac{\\partial h_l}{\\partial h_{l-1}}

    Args:
        model: a chain of layers (``nn.Sequential``; the layers as in ``block_report``).
        x: ONE sample, with its batch axis (shape (1, ...)); float64 is used throughout.
        y: its target.
        loss_fn: ``loss_fn(model(x), y) -> scalar Tensor``.
        layers: the layers (modules or names), default the model's children.

    Returns:
        ``{"names", "shapes" (of each J_l), "sources" (how each J_l was made),
        "jvp_max_relative_errors" (J_l from central differences against it), "backward_grad" (dL/dx from backward), "product_grad"
        ((J_L...J_1)^T dL/dh_L), "max_abs_difference", "relative_difference", "singular_values"
        (of P_l = J_l...J_1, l = 1..L, each largest first), "output_grad_norm", "input_grad_norm"}``,
        plain Python lists and floats.

    Example:
        >>> net = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(8, 8), nn.Tanh())]).double()
        >>> check = jacobian_product_check(net, x[:1], y[:1])
        >>> check["relative_difference"] < 1e-10
        True
    """
    fn = "jacobian_product_check"
    chosen = resolve_layers(model, layers, fn)
    xd = _data(x, "x", fn)
    if xd.shape[0] != 1:
        raise ValueError(f"{fn}: x must be one sample with its batch axis, shape (1, ...), got {xd.shape}")
    with measuring(model, 0):
        # the independent computation: one backward through the whole network
        h0 = tensor(xd, requires_grad=True)
        with enable_grad():
            out = model(h0)
            loss = loss_fn(out, y)
            out.retain_grad()
            loss.backward()
        backward_grad = as_numpy(h0.grad).ravel()
        output_grad = as_numpy(out.grad).ravel()
        # the chain rule of matrices: each layer's Jacobian at its own input, multiplied out
        h = xd
        jacobians, sources, jvp_errors = [], [], []
        for name, layer in chosen:
            j, source = layer_jacobian(layer, as_numpy(h))
            fd = jvp_jacobian(layer, as_numpy(h))
            jacobians.append(j)
            sources.append(source)
            jvp_errors.append(float(np.abs(fd - j).max() / max(np.abs(j).max(), 1e-300)))
            h = layer(tensor(h)).data
    if h.size != output_grad.size or not np.allclose(as_numpy(h).ravel(), as_numpy(out.data).ravel(), rtol=1e-12):
        raise ValueError(f"{fn}: the layers {[n for n, _ in chosen]} applied in order do not give model(x); "
                         "is the model a chain of them?")
    product = np.eye(xd.size)
    singular_values = []
    for j in jacobians:
        product = j @ product  # P_l = J_l P_{l-1}
        singular_values.append(np.linalg.svd(product, compute_uv=False).tolist())
    product_grad = product.T @ output_grad
    diff = np.abs(product_grad - backward_grad)
    scale = float(np.linalg.norm(backward_grad))
    return {"names": [n for n, _ in chosen], "shapes": [list(j.shape) for j in jacobians], "sources": sources,
            "jvp_max_relative_errors": jvp_errors,
            "backward_grad": backward_grad.tolist(), "product_grad": product_grad.tolist(),
            "max_abs_difference": float(diff.max()),
            "relative_difference": float(np.linalg.norm(product_grad - backward_grad) / scale) if scale else float("nan"),
            "singular_values": singular_values, "output_grad_norm": float(np.linalg.norm(output_grad)),
            "input_grad_norm": scale}
