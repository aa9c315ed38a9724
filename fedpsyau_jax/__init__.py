"""fedpsyau-jax: FED-PsyAU micro-expression recognition in pure JAX/Flax.

Top-level API: ``FedPsyAU`` (the network of SPEC §4), ``MESamples`` (dataset arrays),
priors, losses and metrics. Training, protocols and federated algorithms live in
their own modules (``fedpsyau_jax.train_state``, ``...protocols``, ``...federated``).
"""
from fedpsyau_jax.model import FedPsyAU, count_params, example_batch, init_variables
from fedpsyau_jax.sample_arrays import MESamples

__all__ = ["FedPsyAU", "MESamples", "count_params", "example_batch", "init_variables"]
__version__ = "0.1.0"
