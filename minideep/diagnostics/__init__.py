"""Diagnostics: seeing the chain rule at work in a deep network.

* :func:`gradient_flow` and :class:`GradientFlowRecorder`: mean |dL/dW| per layer (the
  coursework's gradient-flow plot), per epoch during ``fit``.
* :func:`jvp`, :func:`jacobian_gains`, :func:`hessian_vector_product`: a block's Jacobian
  applied both ways (exact VJPs, central-difference JVPs in float64), its gain on the
  delivered gradient, its rms gain and its largest singular value; curvature H v.
* :func:`block_report` and :func:`report_table`: those gains for every block of a network,
  as rows and as a Markdown table.
* :func:`jacobian_product_check`: the layers' Jacobian matrices multiplied out against
  ``backward()``'s dL/dx (backprop is the chain rule of matrices).
* :func:`chain_rule_gains`: ||dL/dh_l|| at every layer output and their ratios; its
  identity n_l = n_L prod g telescopes, so it is bookkeeping, not evidence.
* :func:`forward_statistics`: activation mean and spread, dead ReLUs, saturated sigmoids.
* :func:`gate_analysis`: a highway network's transform gates (Srivastava et al. 2015).
* :func:`lesion_study` and :func:`lesioned`: accuracy with one layer at a time turned
  into the identity.
"""
from .activations import activation_statistics, forward_statistics
from .chain_rule import ChainRuleReport, chain_rule_gains, check_chain_rule
from .gradient_flow import GradientFlowRecorder, first_last_ratio, gradient_flow, gradient_statistics, layer_name
from .highway import HighwayReport, gate_analysis, recorded_gates
from .lesion import LesionReport, lesion_kind, lesion_study, lesioned

__all__ = [
    "ChainRuleReport", "GradientFlowRecorder", "HighwayReport", "LesionReport", "activation_statistics",
    "chain_rule_gains", "check_chain_rule", "first_last_ratio", "forward_statistics", "gate_analysis", "gradient_flow",
    "gradient_statistics", "layer_name", "lesion_kind", "lesion_study", "lesioned", "recorded_gates",
]

# The chain rule measured: Jacobian gains, per-block reports, the matrix-product check, curvature.
from .block_gains import block_report, default_blocks, report_table, residual_branch, residual_theory  # noqa: E402
from .curvature import curvature_along_gradient, largest_hessian_eigenvalue  # noqa: E402
from .jacobian import Linearization, hessian_vector_product, jacobian_gains, jvp  # noqa: E402
from .jacobian_product import jacobian_matrix, jacobian_product_check  # noqa: E402

__all__ += [
    "Linearization", "block_report", "curvature_along_gradient", "default_blocks", "hessian_vector_product",
    "jacobian_gains", "jacobian_matrix", "jacobian_product_check", "jvp", "largest_hessian_eigenvalue",
    "report_table",
]
