"""The Flower run's settings: the run config -> the simulator's settings.

Flower passes the app's ``[tool.flwr.app.config]`` (overridable with ``flwr run . --run-config
"key=value ..."``) to the ServerApp and every ClientApp as a flat mapping of scalars.
Training is described by the same config schema as ``fedpsyau federate``:

- ``config``: a config file (e.g. ``configs/fl_megc2019_recipe.py``) whose ``train``,
  ``model`` and ``fl`` sections the run trains with — the learning-rate schedule, flip,
  class balance, ROI source, AU-branch options, exactly as the simulator reads them;
  empty: the federated defaults (``federated.config_defaults``);
- ``config-overrides``: space-separated ``key=value`` overrides of that config
  (``train.hflip=0.5 fl.local_epochs=2``), checked strictly;
- the flat training keys (``lr``, ``batch-size``, ``local-epochs`` ...) are shorthands
  for schema keys (``FLAT_KEYS``). Without ``config`` they all apply; with a ``config``
  only those given a value other than their default do (set the rest in
  ``config-overrides``).

The other keys describe the deployment: the algorithm, the repeat seed and split, a
site's data when it has no ``data-root``, the server's waits, DP and SecAgg+. From
these, ``run_spec`` builds the simulator's objects (``FLSettings``, the model, the
optimiser, the local trainer, the algorithm), so both drivers train the same way.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

from fedpsyau_jax.federated.settings import FLSettings

#: Defaults of every run-config key (the pyproject's [tool.flwr.app.config] repeats them).
DEFAULTS: dict[str, Any] = {
    "config": "",  # a config file of the schema (train / model / fl sections); "" = defaults
    "config-overrides": "",  # "key=value key=value" on that config
    "algorithm": "fedavg",  # local | fedavg | fedprox | pfedprox | fedrep
    "num-server-rounds": 2,
    "local-epochs": 1,
    "mu": 0.01,
    "theta": 0.9,
    "seed": 0,  # the repeat seed (one federation per run)
    "split": "random",  # random | subject
    "train-fraction": 0.7,
    "batch-size": 8,
    "eval-batch-size": 32,
    "oversample": True,
    "beta-schedule": "reference",
    "beta0": 0.3,
    "prior": "client_train",
    "fallback-prior": "reference_dfme",
    "lr": 5e-4,
    "weight-decay": 0.01,
    "alpha": "0.2,0.8,0.8",
    "mode": "step",
    "reset-optimizer": False,  # True: a fresh AdamW state every round (the reference's habit)
    "use-au-branch": True,
    "num-classes": 3,
    # data of a site that has no ``data-root`` in its node config (simulation, tests):
    # this dataset is loaded and partitioned, and the site keeps only its own partition
    "dataset": "synthetic",
    "dataset-kw": '{"num_subjects": 6, "samples_per_subject": 6, "num_classes": 3, "seed": 0}',
    "partition-scheme": "equal_subjects",
    "partition-seed": 0,
    # server
    "min-nodes": 2,  # fewest valid replies a round may aggregate
    "node-wait-timeout": 300.0,  # s to wait for min-nodes SuperNodes to connect
    "round-timeout": 1800.0,  # s to wait for the replies of one round
    "results-dir": "",  # where the ServerApp writes flower_results.json
    # client-level differential privacy (federated/privacy.py; docs/privacy.md, "Limits")
    "dp": False,  # clip every site's update, Gaussian noise on the mean
    "dp-clip-norm": 1.0,  # C: L2 bound of one site's update (whole upload)
    "dp-noise-multiplier": 1.0,  # z: noise std = z*C on the sum of clipped updates
    "dp-delta": 1e-5,  # δ of the reported (ε, δ)
    "dp-sampling": "all",  # all | fixed (dp-per-round of the sites each round)
    "dp-per-round": 0,  # sites per round for dp-sampling=fixed
    "dp-num-sites": 0,  # K, the federation's size (0: min-nodes)
    "dp-allow-no-noise": False,  # accept z = 0 (clipping only; ε = inf)
    # secure aggregation (Flower SecAgg+): the server learns only the weighted sum
    "secagg": False,
    "secagg-clipping-range": 8.0,  # |n_i/max_weight * w| is clipped to this before quantising
    "secagg-quantization-range": 4194304,  # 2**22 integer levels over [-range, range]
    "secagg-max-weight": 1000.0,  # upper bound of a site's num-examples (weight scale)
    "secagg-num-shares": 0,  # Shamir shares per site key (0: every site)
    "secagg-reconstruction-threshold": 0,  # shares to rebuild a key (0: Flower's 2/3 rule)
}


#: flat run-config key -> the schema key it sets (values converted as on the command line)
FLAT_KEYS = {
    "num-server-rounds": "fl.rounds",
    "local-epochs": "fl.local_epochs",
    "mu": "fl.mu",
    "theta": "fl.theta",
    "train-fraction": "protocol.train_fraction",
    "batch-size": "train.batch_size",
    "eval-batch-size": "train.eval_batch_size",
    "oversample": "train.class_balance",  # true: oversample, false: none
    "beta-schedule": "train.beta_schedule",
    "beta0": "train.beta0",
    "prior": "fl.prior",
    "fallback-prior": "fl.fallback_prior",
    "lr": "train.learning_rate",
    "weight-decay": "train.weight_decay",
    "alpha": "train.alpha",  # "0.2,0.8,0.8"
    "mode": "fl.mode",
    "reset-optimizer": "fl.reset_optimizer",
    "use-au-branch": "model.use_au_branch",
    "dataset": "data.name",
    "dataset-kw": "data.kwargs",  # JSON object
    "partition-scheme": "partition.scheme",
    "partition-seed": "partition.seed",
}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One Flower run: the schema config it trains with (``config``), its
    ``FLSettings`` and the deployment's own keys."""

    algorithm: str
    rounds: int
    seed: int
    split: str
    settings: FLSettings
    config: Any  # the resolved ml_collections config (train / model / fl / data sections)
    num_classes: int
    dataset: str
    dataset_kw: dict
    partition_scheme: str
    partition_seed: int
    min_nodes: int
    node_wait_timeout: float
    round_timeout: float
    results_dir: str
    dp: Any = None  # privacy.DPSettings, or None (DP off)
    secagg: dict | None = None  # SecAgg+ settings, or None (off)
    new_site: Any = None  # new_site.NewSiteSettings of fl.new_site, or None (no site held out)
    stage1: Any = None  # FLSettings of stage 1 (fl.pretrain_rounds > 0), or None (no AU pre-training)
    pretrain_mode: str = "federated"  # fl.pretrain_mode: federated | local


def _flat_override(key: str, value) -> str:
    """The ``schema.key=value`` override of one flat run-config key."""
    target = FLAT_KEYS[key]
    if key == "oversample":
        value = "oversample" if _bool(value) else "none"
    elif key == "alpha":
        parts = [float(a) for a in str(value).split(",")]
        if len(parts) != 3:
            raise ValueError(f"run-config alpha must be three comma-separated numbers, got {value!r}")
        value = "(" + ", ".join(repr(a) for a in parts) + ")"
    elif isinstance(value, bool):
        value = "true" if value else "false"
    return f"{target}={value}"


def schema_config(cfg: Mapping[str, Any]):
    """The schema config of a run config: ``config`` (or the federated defaults), the
    flat training keys (all without ``config``; with it, those not at their default),
    then ``config-overrides``."""
    import shlex

    from fedpsyau_jax.config_loading import apply_override, load_config
    from fedpsyau_jax.federated.config_defaults import base_config

    path = str(cfg["config"]).strip()
    conf = load_config(path) if path else base_config()
    for key in FLAT_KEYS:
        if not path or cfg[key] != DEFAULTS[key]:
            if key == "dataset-kw":  # a whole section: replaced, not merged
                with conf.data.unlocked():
                    kw = cfg[key]
                    conf.data.kwargs = json.loads(kw) if isinstance(kw, str) and kw.strip() else dict(kw or {})
                continue
            apply_override(conf, _flat_override(key, cfg[key]))
    for o in shlex.split(str(cfg["config-overrides"])):
        apply_override(conf, o)
    return conf


def run_spec(run_config: Mapping[str, Any] | None = None) -> RunSpec:
    """``RunSpec`` of a Flower run config (missing keys take ``DEFAULTS``; unknown
    keys are an error, so a typo does not silently run the default)."""
    from fedpsyau_jax.federated.settings import fl_settings_from_config

    cfg = dict(DEFAULTS)
    unknown = sorted(set(run_config or {}) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown run-config key(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    cfg.update(run_config or {})
    conf = schema_config(cfg)
    settings = dataclasses.replace(fl_settings_from_config(conf), checkpoint_every=0)
    stage1 = _stage1(conf, cfg, settings)
    new_site = _new_site(conf, cfg)
    kw = conf.data.kwargs
    return RunSpec(
        algorithm=str(cfg["algorithm"]),
        rounds=settings.rounds,
        seed=int(cfg["seed"]),
        split=str(cfg["split"]),
        settings=settings,
        config=conf,
        num_classes=int(cfg["num-classes"]),
        dataset=str(conf.data.name),
        dataset_kw=kw.to_dict() if hasattr(kw, "to_dict") else dict(kw),
        partition_scheme=str(conf.partition.scheme),
        partition_seed=int(conf.partition.seed),
        min_nodes=int(cfg["min-nodes"]),
        node_wait_timeout=float(cfg["node-wait-timeout"]),
        round_timeout=float(cfg["round-timeout"]),
        results_dir=str(cfg["results-dir"]),
        dp=_dp_settings(cfg),
        secagg=_secagg_settings(cfg),
        new_site=new_site,
        stage1=stage1,
        pretrain_mode=str(conf.fl.get("pretrain_mode", "federated")),
    )


def _stage1(conf, cfg: Mapping[str, Any], settings: FLSettings):
    """The stage-1 ``FLSettings`` of ``fl.pretrain_rounds`` (None without it): the
    simulator's ``stage1_settings``. Refused with DP (the simulator's stage 1 is not
    private either: its updates would leave the sites unclipped and unaccounted) and
    with SecAgg+ (its uploads would travel outside the secure sum)."""
    from fedpsyau_jax.config_loading import ConfigError
    from fedpsyau_jax.federated.stage1 import stage1_settings

    s1 = stage1_settings(conf, settings)
    if s1 is None:
        return None
    if str(conf.fl.get("pretrain_mode", "federated")) == "local":
        # its per-site code (flower.stage1.pretrain_locally) does not yet reproduce the
        # simulator's local stage 1; refused rather than run with unverified numbers
        raise ConfigError("fl.pretrain_mode=local: runs in the simulator only for now; use federated on Flower")
    _refuse_with_protection(
        cfg, "fl.pretrain_rounds", "stage 1's AU-branch updates would leave the sites without that protection"
    )
    return s1


def _new_site(conf, cfg: Mapping[str, Any]):
    """``new_site.NewSiteSettings`` of ``fl.new_site`` (None when no site is held out).
    Refused with DP or SecAgg+: the simulator keeps no final models under DP, and the
    start model averages every site's deployed model, which under SecAgg+ would leave
    the sites outside the secure sum."""
    from fedpsyau_jax.federated.new_site import new_site_settings

    site = new_site_settings(conf)
    if not site.name:
        return None
    _refuse_with_protection(
        cfg,
        f"fl.new_site={site.name!r}",
        "the new site's start model is the mean of the sites' deployed models, which would leave them unprotected",
    )
    return site


def _refuse_with_protection(cfg: Mapping[str, Any], what: str, why: str) -> None:
    """One ConfigError line when ``what`` is asked for together with DP or SecAgg+."""
    from fedpsyau_jax.config_loading import ConfigError

    for key in ("dp", "secagg"):
        if _bool(cfg[key]):
            raise ConfigError(f"{what} with run-config {key}=true: not supported ({why})")


def _dp_settings(cfg: Mapping[str, Any]):
    """``privacy.DPSettings`` of the run (None when ``dp`` is off); checked, so
    settings that cannot be accounted fail here, before round 1, with one line."""
    from fedpsyau_jax.federated.privacy import DPSettings, PrivacyError

    if not _bool(cfg["dp"]):
        return None
    if _bool(cfg["secagg"]):
        raise PrivacyError(
            "run-config dp=true with secagg=true: not supported together (the DP "
            "mechanism here clips against the broadcast and adds the noise at the "
            "server; use one of them)"
        )
    sampling = str(cfg["dp-sampling"])
    if sampling not in ("all", "fixed"):
        raise PrivacyError(
            f"run-config dp-sampling {sampling!r}: the Flower deployment supports "
            "all or fixed (poisson: only the simulator)"
        )
    k = int(cfg["dp-num-sites"]) or int(cfg["min-nodes"])
    s = DPSettings(
        clip_norm=float(cfg["dp-clip-norm"]),
        noise_multiplier=float(cfg["dp-noise-multiplier"]),
        delta=float(cfg["dp-delta"]),
        sampling=sampling,
        per_round=int(cfg["dp-per-round"]) if sampling == "fixed" else 0,
        num_clients=k,
        allow_no_noise=_bool(cfg["dp-allow-no-noise"]),
    )
    try:
        s.check()
    except PrivacyError as e:
        raise PrivacyError(friendly(e)) from None
    return s


def _secagg_settings(cfg: Mapping[str, Any]) -> dict | None:
    if not _bool(cfg["secagg"]):
        return None
    out = {
        "clipping_range": float(cfg["secagg-clipping-range"]),
        "quantization_range": int(cfg["secagg-quantization-range"]),
        "max_weight": float(cfg["secagg-max-weight"]),
        "num_shares": int(cfg["secagg-num-shares"]),
        "reconstruction_threshold": int(cfg["secagg-reconstruction-threshold"]),
    }
    for k in ("clipping_range", "quantization_range", "max_weight"):
        if not out[k] > 0:
            raise ValueError(f"run-config secagg-{k.replace('_', '-')} {out[k]}: must be > 0")
    return out


def friendly(e: Exception) -> str:
    """A ``PrivacyError`` message with the run-config key names (dp-clip-norm, …)."""
    msg = str(e)
    for a, b in (
        ("dp.clip_norm", "dp-clip-norm"),
        ("dp.noise_multiplier", "dp-noise-multiplier"),
        ("dp.delta", "dp-delta"),
        ("dp.sampling", "dp-sampling"),
        ("dp.per_round", "dp-per-round"),
        ("dp.allow_no_noise", "dp-allow-no-noise"),
        ("dp.rate", "dp-rate"),
    ):
        msg = msg.replace(a, "run-config " + b)
    return msg


def _bool(v) -> bool:
    if isinstance(v, str):
        if v.lower() in ("true", "1", "yes"):
            return True
        if v.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"not a boolean: {v!r}")
    return bool(v)


def build(spec: RunSpec):
    """(model, tx, algorithm) of a run: the simulator's constructors, from the run's
    schema config."""
    from fedpsyau_jax.federated.settings import build_algorithm, build_model, build_optimizer

    model = build_model(spec.config, spec.num_classes)
    return model, build_optimizer(spec.config, spec.settings), build_algorithm(spec.config, spec.algorithm)


def build_local_trainer(spec: RunSpec, model, tx, mesh=None):
    """The run's local trainer (loss weights, flip, AU-loss normalisation, mode)."""
    from fedpsyau_jax.federated.settings import build_trainer

    return build_trainer(spec.config, model, tx, spec.settings, mesh=mesh)


def upload_template(model, tx, algorithm) -> dict:
    """Shapes/dtypes of one client's upload {"params", "batch_stats"} (None where the
    algorithm sends nothing) — the names and shapes a valid reply must carry."""
    import jax

    from fedpsyau_jax.federated.upload import make_upload
    from fedpsyau_jax.training.train_state import create_train_state

    state = jax.eval_shape(lambda k: create_train_state(model, tx, k), jax.random.key(0))
    up = make_upload(state, 1.0, algorithm)
    return {"params": up.params, "batch_stats": up.batch_stats}


def broadcast_template(algorithm, upload_tmpl: dict):
    """Shapes of the server's broadcast for one client (no client axis), or None."""
    import jax
    import jax.numpy as jnp

    from fedpsyau_jax.federated.upload import ClientUpload

    if algorithm.reduce is None:
        return None
    rows = jax.tree.map(lambda s: jax.ShapeDtypeStruct((1, *s.shape), s.dtype), upload_tmpl)
    abstract_count: Any = jax.ShapeDtypeStruct((1,), jnp.float32)  # an abstract value, for eval_shape
    up = ClientUpload(params=rows["params"], batch_stats=rows["batch_stats"], num_samples=abstract_count)
    out = jax.eval_shape(lambda u: algorithm.reduce(u, jnp.zeros(1, jnp.int32), 1), up)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), out)
