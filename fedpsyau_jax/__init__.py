"""fedpsyau-jax: FED-PsyAU micro-expression recognition in pure JAX/Flax.

The package is layered; a layer imports only the layers before it (a test holds this):

- ``core/``       errors, sample arrays, atomic files, the shared-data root, keypoints,
                  AU groups — NumPy and the standard library only
- ``data_pipelines`` (its own top-level package) readers, video → flow, synthetic
                  data, TFDS builders; imports ``core`` only
- ``network/``    the model and its ops (ROI patches, priors, DPK-GAT, dropout and
                  max-pool kernels)
- ``training/``   losses, metrics, train state and steps, batch plans, protocols,
                  fold-vmapped training, checkpoints, run logs, reports
- ``federated/``  the algorithms' math, the stacked simulator and the Flower deployment
- ``inference``   load an exported model, apply it (jit-cached), ``predict`` a clip
- ``video/``      long recordings: spotting, recognition of each interval, timelines
- ``api``         the façade: train / evaluate / predict from Python
- ``cli/``        the ``fedpsyau`` command, one module per verb

Top-level names load on first use, so importing the package (or raising a reader's
error) does not load JAX: the network (``FedPsyAU``, ``init_variables``,
``example_batch``), data (``MESamples``), training (``create_train_state``,
``make_train_step``, ``make_optimizer``), configs (``load_config``), ``api``,
``analyse_video`` and the model card of an exported model (``model_card_summary``).
"""

from __future__ import annotations

import importlib

from fedpsyau_jax.version import package_version

# name -> (module, attribute); attribute None means the module itself
_LAZY = {
    "api": ("fedpsyau_jax.api", None),
    "inference": ("fedpsyau_jax.inference", None),
    "load_config": ("fedpsyau_jax.config_loading", "load_config"),
    "FedPsyAU": ("fedpsyau_jax.network.model", "FedPsyAU"),
    "count_params": ("fedpsyau_jax.network.model", "count_params"),
    "example_batch": ("fedpsyau_jax.network.model", "example_batch"),
    "init_variables": ("fedpsyau_jax.network.model", "init_variables"),
    "MESamples": ("fedpsyau_jax.core.sample_arrays", "MESamples"),
    "create_train_state": ("fedpsyau_jax.training.train_state", "create_train_state"),
    "make_optimizer": ("fedpsyau_jax.training.train_state", "make_optimizer"),
    "make_train_step": ("fedpsyau_jax.training.train_state", "make_train_step"),
    "model_card_summary": ("fedpsyau_jax.model_card", "model_card_summary"),
    "analyse_video": ("fedpsyau_jax.video.analyse", "analyse_video"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'fedpsyau_jax' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "FedPsyAU",
    "MESamples",
    "analyse_video",
    "api",
    "count_params",
    "create_train_state",
    "example_batch",
    "init_variables",
    "load_config",
    "make_optimizer",
    "make_train_step",
    "model_card_summary",
]

__version__ = package_version()  # the one source: pyproject.toml's [project] version
