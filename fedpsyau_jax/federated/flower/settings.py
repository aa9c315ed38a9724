"""The Flower run's settings: flat ``run_config`` keys -> the simulator's settings.

Flower passes the app's ``[tool.flwr.app.config]`` (overridable with ``flwr run . --run-config
"key=value ..."``) to the ServerApp and every ClientApp as a flat mapping of scalars. This
module turns it into the simulator's objects (``TrainSettings``, the algorithm and its
hyper-parameters, the model), so both drivers read one set of numbers.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

from fedpsyau_jax.federated.runner import TrainSettings

#: Defaults of every run-config key (the pyproject's [tool.flwr.app.config] repeats them).
DEFAULTS: dict[str, Any] = {
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


@dataclasses.dataclass(frozen=True)
class RunSpec:
    algorithm: str
    rounds: int
    seed: int
    split: str
    hparams: dict
    settings: TrainSettings
    lr: float
    weight_decay: float
    alpha: tuple[float, float, float]
    mode: str
    use_au_branch: bool
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


def run_spec(run_config: Mapping[str, Any] | None = None) -> RunSpec:
    """``RunSpec`` of a Flower run config (missing keys take ``DEFAULTS``; unknown
    keys are an error, so a typo does not silently run the default)."""
    cfg = dict(DEFAULTS)
    unknown = sorted(set(run_config or {}) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown run-config key(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    cfg.update(run_config or {})
    rounds = int(cfg["num-server-rounds"])
    settings = TrainSettings(
        rounds=rounds,
        local_epochs=int(cfg["local-epochs"]),
        batch_size=int(cfg["batch-size"]),
        eval_batch_size=int(cfg["eval-batch-size"]),
        oversample=_bool(cfg["oversample"]),
        beta_schedule=str(cfg["beta-schedule"]),
        beta0=float(cfg["beta0"]),
        prior=str(cfg["prior"]),
        fallback_prior=str(cfg["fallback-prior"]),
        train_fraction=float(cfg["train-fraction"]),
        checkpoint_every=0,
        reset_optimizer=_bool(cfg["reset-optimizer"]),
    )
    kw = cfg["dataset-kw"]
    alpha = tuple(float(a) for a in str(cfg["alpha"]).split(","))
    if len(alpha) != 3:
        raise ValueError(f"run-config alpha must be three comma-separated numbers, got {cfg['alpha']!r}")
    return RunSpec(
        algorithm=str(cfg["algorithm"]),
        rounds=rounds,
        seed=int(cfg["seed"]),
        split=str(cfg["split"]),
        hparams={"mu": float(cfg["mu"]), "theta": float(cfg["theta"])},
        settings=settings,
        lr=float(cfg["lr"]),
        weight_decay=float(cfg["weight-decay"]),
        alpha=alpha,
        mode=str(cfg["mode"]),
        use_au_branch=_bool(cfg["use-au-branch"]),
        num_classes=int(cfg["num-classes"]),
        dataset=str(cfg["dataset"]),
        dataset_kw=json.loads(kw) if isinstance(kw, str) and kw.strip() else dict(kw or {}),
        partition_scheme=str(cfg["partition-scheme"]),
        partition_seed=int(cfg["partition-seed"]),
        min_nodes=int(cfg["min-nodes"]),
        node_wait_timeout=float(cfg["node-wait-timeout"]),
        round_timeout=float(cfg["round-timeout"]),
        results_dir=str(cfg["results-dir"]),
        dp=_dp_settings(cfg),
        secagg=_secagg_settings(cfg),
    )


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
    """(model, tx, algorithm) of a run: the simulator's constructors."""
    from fedpsyau_jax.federated.algorithms import make_algorithm
    from fedpsyau_jax.network.model import FedPsyAU
    from fedpsyau_jax.training.train_state import make_optimizer

    model = FedPsyAU(num_classes=spec.num_classes, use_au_branch=spec.use_au_branch)
    tx = make_optimizer(spec.lr, spec.weight_decay)
    return model, tx, make_algorithm(spec.algorithm, **spec.hparams)


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
