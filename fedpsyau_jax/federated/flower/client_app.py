"""The Flower ClientApp: one site's train and evaluate handlers.

``train``: restore the site's own state from ``context.state`` (or start it as the
simulator does), apply the server's broadcast with the algorithm's client half, run
the simulator's jitted local training on the site's own data, store the state again
and reply with the algorithm's upload only (``Site.upload``), ``num-examples`` and the
training loss; in the final round also the personal model's scores on the site's test
split. ``evaluate``: the model the algorithm deploys (broadcast applied) scored on the
site's test split. Sites are persistent silos: params, BN statistics, optimiser state,
dropout key and personal heads live in ``context.state``, which never leaves the
SuperNode (in a deployment every message runs in a new ``flwr-clientapp`` process, so
nothing else survives between rounds; the JAX compilation cache is kept in the
site's ``site-dir``, and so is a copy of the state, from which a SuperNode that
restarted mid-run resumes).

``query``: who the site is (its name and role), and, at a site held out of the
federation (``fl.new_site``), its scores from the federation's start model
(``flower.new_site``); such a site refuses train and evaluate messages.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedpsyau_jax.federated.flower import dp, secagg, stage1, wire
from fedpsyau_jax.federated.flower import new_site as held_out
from fedpsyau_jax.federated.flower.settings import broadcast_template, run_spec, upload_template
from fedpsyau_jax.federated.flower.strategies import ARRAYS, CONFIG, METRICS, SITE

STATE_KEY = "fedpsyau-site-state"
STAGE1_KEY = "fedpsyau-stage1-state"  # the site's state during stage 1 (fl.pretrain_rounds)
DP_KEY = "fedpsyau-dp-contribution"
LOG = logging.getLogger("fedpsyau.flower.client")

app = ClientApp()


_SITES: dict = {}
#: Sites of at most this many runs stay built in one process. A site holds compiled
#: programs, and every loaded XLA executable keeps memory mapped: a process that served
#: run after run without forgetting them would reach the kernel's limit on memory maps.
KEEP_RUNS = 2


def _site(context: Context):
    """The site of this SuperNode and run. Kept per process: a simulation (or a
    SuperNode that reuses its ClientApp process) then builds and compiles it once; the
    site holds no training state (that is in ``context.state``). The sites of the
    least recently used runs beyond ``KEEP_RUNS`` are dropped."""
    from fedpsyau_jax.federated.flower.site import configure_compilation_cache, make_site

    run = tuple(sorted((k, str(v)) for k, v in context.run_config.items()))
    key = (tuple(sorted((k, str(v)) for k, v in context.node_config.items())), run)
    if key not in _SITES:
        configure_compilation_cache(context.node_config)
        _SITES[key] = make_site(context.node_config, run_spec(context.run_config))
    _SITES[key] = _SITES.pop(key)  # most recently used last
    runs = list(dict.fromkeys(r for _, r in reversed(list(_SITES))))  # newest first
    for old in [k for k in _SITES if k[1] not in runs[:KEEP_RUNS]]:
        del _SITES[old]
    return _SITES[key]


def state_file(context: Context, key: str = STATE_KEY):
    """The site's own copy of its state on its disk (``site-dir``), per run: a SuperNode
    that restarts mid-run (new process, empty ``context.state``) resumes from it."""
    d = context.node_config.get("site-dir")
    if not d:
        return None
    suffix = "" if key == STATE_KEY else "_stage1"
    return Path(str(d)) / "state" / f"run_{context.run_id}{suffix}.npz"


def _state(site, context: Context, key: str = STATE_KEY):
    """The site's stored state (``key``: the emotion rounds', or stage 1's); a site that
    has none starts one: stage 1 from the simulator's round 0, the emotion rounds also
    (after its own stage 1 with ``fl.pretrain_mode=local``); None for stage 1's."""
    from fedpsyau_jax.federated.flower.site import from_raw

    tmpl = site.state_template() if key == STATE_KEY else site.stage1().state_template()
    if key in context.state:
        return from_raw(wire.from_array_record(context.state[key], tmpl))
    f = state_file(context, key)
    if f is not None and f.is_file():
        with np.load(f) as z:
            arrays = {k: z[k] for k in z.files}
        LOG.warning("site %s: state restored from %s (SuperNode restarted)", site.name, f)
        return from_raw(wire.unflatten(arrays, tmpl))
    if key != STATE_KEY:
        return None
    if site.spec.stage1 is None:
        return site.fresh_state()
    if site.spec.pretrain_mode == "local":
        return stage1.pretrain_locally(site)
    raise ValueError(
        f"site {site.name}: the run pre-trains the AU branch in federation (fl.pretrain_rounds) "
        "but this site never received stage 1's model; it does not start from an untrained one"
    )


def _save_state(context: Context, raw_state, key: str = STATE_KEY) -> None:
    context.state[key] = wire.to_array_record(raw_state)
    f = state_file(context, key)
    if f is not None:
        from fedpsyau_jax.core.atomic_files import save_npz_atomic

        save_npz_atomic(f, wire.flatten(raw_state))


def _broadcast(site, content):
    arrays = content[ARRAYS] if ARRAYS in content else ArrayRecord()
    tmpl = broadcast_template(site.algorithm, upload_template(site.model, site.tx, site.algorithm))
    if tmpl is None or len(arrays) == 0:
        return None
    return wire.from_array_record(arrays, tmpl, finite=True)


def _site_record(site) -> ConfigRecord:
    return ConfigRecord({"name": site.name})


def train_reply_content(site, state, loss: float, personal: dict | None, timing: dict | None = None) -> RecordDict:
    """Everything a site sends after training (the 'what leaves a site' boundary):
    the upload's arrays, n, the loss, the site's index and name, timings (s), and in
    the final round its personal scores."""
    metrics = {
        "num-examples": site.num_train,
        "train-loss": float(loss),
        "partition-id": site.partition_id,
        **(timing or {}),
    }
    if personal is not None:
        metrics.update({f"personal-{k}": v for k, v in personal.items()})
        metrics["num-test"] = site.num_test
    return RecordDict(
        {ARRAYS: wire.to_array_record(site.upload(state)), METRICS: MetricRecord(metrics), SITE: _site_record(site)}
    )


def evaluate_reply_content(site, scores: dict) -> RecordDict:
    metrics = {"num-examples": site.num_test, "partition-id": site.partition_id, **scores}
    return RecordDict({METRICS: MetricRecord(metrics), SITE: _site_record(site)})


def _dp_file(context: Context):
    f = state_file(context)
    return f.with_name(f.stem + "_dp.npz") if f is not None else None


def _contribution(site, context: Context):
    """The site's clipped contribution to the last release it took part in (DP runs)."""
    tmpl = upload_template(site.model, site.tx, site.algorithm)
    if DP_KEY in context.state:
        return wire.from_array_record(context.state[DP_KEY], tmpl)
    f = _dp_file(context)
    if f is not None and f.is_file():
        with np.load(f) as z:
            return wire.unflatten({k: z[k] for k in z.files}, tmpl)
    return None


def _save_contribution(context: Context, tree) -> None:
    context.state[DP_KEY] = wire.to_array_record(tree)
    f = _dp_file(context)
    if f is not None:
        from fedpsyau_jax.core.atomic_files import save_npz_atomic

        save_npz_atomic(f, wire.flatten(tree))


def _receive(site, context: Context, content):
    """(state, anchors, the received release or None): the broadcast applied with the
    algorithm's client half (under DP: ``Site.receive_release``)."""
    state = _state(site, context)
    if site.spec.dp is None:
        return (*site.receive(state, _broadcast(site, content)), None)
    cfg = content[CONFIG] if CONFIG in content else {}
    if dp.RELEASE_ROUND not in cfg or ARRAYS not in content:
        raise ValueError(
            f"site {site.name}: a DP run's message needs the release arrays and "
            f"{dp.RELEASE_ROUND} (is the ServerApp running with dp=true?)"
        )
    release = wire.from_array_record(content[ARRAYS], upload_template(site.model, site.tx, site.algorithm), finite=True)
    participated = bool(cfg.get(dp.IN_RELEASE, False))
    state, anchors = site.receive_release(
        state, release, int(cfg[dp.RELEASE_ROUND]), participated, _contribution(site, context) if participated else None
    )
    return state, anchors, release


def _train_legacy(msg: Message, context: Context) -> Message:
    """Train under SecAgg+ (legacy FitIns in, FitRes out; ``secagg.secagg_mod`` masks
    the upload and sends only the masked vector): the same site code as ``train``."""
    from fedpsyau_jax.federated.flower.site import to_raw

    t0 = time.perf_counter()
    site = _site(context)
    if held_out.is_new_site(site):
        return held_out.refusal(msg, f"site {site.name} is the run's new site: it never trains in the federation")
    broadcast, cfg = secagg.legacy_broadcast(site, msg.content, "train")
    rnd = int(cfg.get("server-round", 1)) - 1
    state, anchors = site.receive(_state(site, context), broadcast)
    t1 = time.perf_counter()
    state, loss = site.train(state, anchors, rnd)
    metrics = {"train-loss": float(loss), "partition-id": site.partition_id}
    if bool(cfg.get("final-round", False)):
        metrics.update({f"personal-{k}": v for k, v in site.evaluate(state).items()})
    _save_state(context, to_raw(state))
    metrics.update({"setup-seconds": t1 - t0, "train-seconds": time.perf_counter() - t1})
    LOG.info("site %s round %d (SecAgg+): loss %.4f", site.name, rnd + 1, loss)
    return Message(content=secagg.legacy_train_reply(site, site.upload(state), metrics), reply_to=msg)


@app.train(mods=[secagg.secagg_mod, dp.clip_mod])
def train(msg: Message, context: Context) -> Message:
    from fedpsyau_jax.federated.flower.site import to_raw

    if secagg.is_legacy(msg.content):
        return _train_legacy(msg, context)
    t0 = time.perf_counter()
    site = _site(context)
    if held_out.is_new_site(site):  # never an update from it, whoever asks
        return held_out.refusal(msg, f"site {site.name} is the run's new site: it never trains in the federation")
    cfg: Any = msg.content[CONFIG] if CONFIG in msg.content else {}
    rnd = int(cfg.get("server-round", 1)) - 1
    if stage1.is_stage1(msg.content):
        return _train_stage1(site, msg, context, rnd, t0)
    state, anchors, release = _receive(site, context, msg.content)
    t1 = time.perf_counter()
    state, loss = site.train(state, anchors, rnd)
    personal = site.evaluate(state) if bool(cfg.get("final-round", False)) else None
    _save_state(context, to_raw(state))
    if release is not None:
        # what the clipping mod will send, kept for the next release (P-FedProx takes
        # it out of S); same clip as the mod and the simulator
        _save_contribution(context, dp.contribution(release, site.upload(state), site.spec.dp.clip_norm))
    t2 = time.perf_counter()
    LOG.info("site %s round %d: loss %.4f", site.name, rnd + 1, loss)
    timing = {"setup-seconds": t1 - t0, "train-seconds": t2 - t1}
    return Message(content=train_reply_content(site, state, loss, personal, timing), reply_to=msg)


def _train_stage1(site, msg: Message, context: Context, rnd: int, t0: float) -> Message:
    """A stage-1 round (``flower.stage1``): the AU-only local training of the
    simulator's stage 1 from the site's stage-1 state, its FedAvg upload back."""
    from fedpsyau_jax.federated.flower.site import to_raw

    if site.spec.stage1 is None or site.spec.pretrain_mode != "federated":
        return held_out.refusal(msg, f"site {site.name}: this run has no federated stage 1")
    s1 = site.stage1()
    state = _state(site, context, STAGE1_KEY)
    t1 = time.perf_counter()
    state, loss = stage1.train_round(site, state, _broadcast(s1, msg.content), rnd)
    _save_state(context, to_raw(state), STAGE1_KEY)
    LOG.info("site %s stage 1 round %d: AU loss %.4f", site.name, rnd + 1, loss)
    timing = {"setup-seconds": t1 - t0, "train-seconds": time.perf_counter() - t1}
    return Message(content=stage1.reply_content(site, state, loss, timing), reply_to=msg)


def _adopt_stage1(site, msg: Message, context: Context) -> Message:
    """Stage 1's last mean -> the site's emotion-round start state (``stage1.adopt``)."""
    from fedpsyau_jax.federated.flower.site import to_raw

    if site.spec.stage1 is None or site.spec.pretrain_mode != "federated":
        return held_out.refusal(msg, f"site {site.name}: this run has no federated stage 1")
    state = _state(site, context, STAGE1_KEY)
    if state is None:
        return held_out.refusal(msg, f"site {site.name} took part in no stage-1 round")
    _save_state(context, to_raw(stage1.adopt(site, state, _broadcast(site.stage1(), msg.content))))
    LOG.info("site %s: stage 1 done, emotion rounds start from its AU branch", site.name)
    return Message(content=stage1.adopt_reply_content(site), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    site = _site(context)
    if held_out.is_new_site(site):
        return held_out.refusal(msg, f"site {site.name} is the run's new site: it is scored only after training")
    if secagg.is_legacy(msg.content):
        broadcast, _ = secagg.legacy_broadcast(site, msg.content, "evaluate")
        state, _ = site.receive(_state(site, context), broadcast)
        return Message(content=secagg.legacy_evaluate_reply(site, site.evaluate(state)), reply_to=msg)
    state, _, _ = _receive(site, context, msg.content)
    content = evaluate_reply_content(site, site.evaluate(state))
    cfg: Any = msg.content[CONFIG] if CONFIG in msg.content else {}
    if bool(cfg.get(held_out.SEND_DEPLOYED, False)):
        # a run with a new site: the server hands it the mean of the deployed models
        content[ARRAYS] = wire.to_array_record(held_out.deployed_model(state))
    return Message(content=content, reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    site = _site(context)
    cfg: Any = msg.content[CONFIG] if CONFIG in msg.content else {}
    action = str(cfg.get(held_out.ACTION, ""))
    if action == held_out.IDENTIFY:
        return Message(content=held_out.identify_content(site), reply_to=msg)
    if action == stage1.ADOPT and not held_out.is_new_site(site):
        return _adopt_stage1(site, msg, context)
    if action != held_out.ADAPT:
        return held_out.refusal(msg, f"unknown query {action!r}")
    if not held_out.is_new_site(site):
        return held_out.refusal(msg, f"site {site.name} is not the run's new site")
    if ARRAYS not in msg.content:
        return held_out.refusal(msg, "the new site's query carries no start model")
    start = wire.from_array_record(msg.content[ARRAYS], held_out.model_template(site.model, site.tx), finite=True)
    t0 = time.perf_counter()
    result = held_out.adapt(site, start)
    LOG.info(
        "new site %s: scored and adapted (k = %s) in %.1f s", site.name, list(result["adapt"]), time.perf_counter() - t0
    )
    return Message(content=held_out.adapt_reply_content(site, result), reply_to=msg)
