"""The discrete flow-matching family (DeFoG, Qin, Madeira et al., ICML 2025).

* :mod:`graphdiff.flow.distributions`: initial distributions ``p_0`` and time distortions.
* :mod:`graphdiff.flow.rates`: the CTMC rate matrices ``R*``, ``η R^DB``, ``ω R^TG``, their stabilisation.
* :mod:`graphdiff.flow.process`: :class:`DiscreteFlow` (noise, prior, Euler step), :class:`FlowSamplerConfig`,
  :class:`FlowGraphSampler` (the generation contract).

The LightningModule is :class:`graphdiff.lit.DiscreteFlowModel`; the equations and the functions computing them
are in ``docs/flow.md``.
"""

from graphdiff.flow.distributions import (
    DISTORTIONS,
    INITIAL_DISTRIBUTIONS,
    InitialDistribution,
    distort,
    initial_distribution,
)
from graphdiff.flow.process import DiscreteFlow, FlowGraphSampler, FlowSamplerConfig
from graphdiff.flow.rates import conditional_probs, conditional_rates, expected_rates, step_probs

__all__ = [
    "DISTORTIONS",
    "INITIAL_DISTRIBUTIONS",
    "DiscreteFlow",
    "FlowGraphSampler",
    "FlowSamplerConfig",
    "InitialDistribution",
    "conditional_probs",
    "conditional_rates",
    "distort",
    "expected_rates",
    "initial_distribution",
    "step_probs",
]
