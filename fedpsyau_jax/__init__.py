"""fedpsyau-jax: FED-PsyAU micro-expression recognition in pure JAX/Flax.

The folders follow the flow of the method:

- ``network/``    the model of SPEC §4 and its ops (keypoints, AU groups, ROI patches,
                  priors, DPK-GAT, dropout and max-pool kernels)
- ``training/``   losses, metrics, train state and steps, batch plans, augmentation,
                  protocols, fold-vmapped training, checkpoints, run logs, plots
- ``federated/``  the algorithms' math (one implementation), the stacked simulator and
                  the Flower deployment driver
- ``cli/``        the ``fedpsyau`` command, one module per verb
- ``video/``       long recordings: face track, spotting signal, intervals,
                  recognition of each interval, timeline outputs, MEGC spotting metric
- ``api``         train / evaluate / predict from Python (what the CLI calls)

Top-level names: the network (``FedPsyAU``, ``init_variables``, ``example_batch``),
data (``MESamples``), training (``create_train_state``, ``make_train_step``,
``make_optimizer``), configs (``load_config``), ``api``, ``analyse_video`` and the model card
of an exported model (``model_card_summary``). Nothing imported here
pulls in OpenCV or dlib (only the data pipeline and the predict/preprocess verbs do).
"""

from fedpsyau_jax import api
from fedpsyau_jax.config_loading import load_config
from fedpsyau_jax.network.model import FedPsyAU, count_params, example_batch, init_variables
from fedpsyau_jax.sample_arrays import MESamples
from fedpsyau_jax.training.train_state import create_train_state, make_optimizer, make_train_step

from fedpsyau_jax.model_card import model_card_summary
from fedpsyau_jax.version import package_version


def analyse_video(*args, **kwargs):
    """A long video → timeline of spotted, recognised expressions (see
    ``fedpsyau_jax.video.analyse.analyse_video``; imported on call, since it needs
    OpenCV and dlib)."""
    from fedpsyau_jax.video.analyse import analyse_video as _analyse

    return _analyse(*args, **kwargs)


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
