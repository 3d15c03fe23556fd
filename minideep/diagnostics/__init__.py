"""Diagnostics: seeing the chain rule at work in a deep network.

* :func:`gradient_flow` and :class:`GradientFlowRecorder`: mean |dL/dW| per layer (the
  coursework's gradient-flow plot), per epoch during ``fit``.
* :func:`chain_rule_gains`: ||dL/dh_l|| at every layer output, the per-layer gains and
  the check that their running product is the gradient.
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
