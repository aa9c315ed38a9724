"""Stage 1 in a Flower deployment: the AU branch pre-trained on the sites' AU labels
before the emotion rounds (``fl.pretrain_rounds``), as ``federated.stage1`` runs it in
the simulator.

**What trains.** Every site runs the simulator's stage-1 local training on its own
training rows: ``stage1_settings`` (AU loss only, ``pretrain.learning_rate``,
``pretrain.au_pos_weight``), its rows weighted by its AU-labelled training samples
(``au_weighted_rows``) — ``Site.stage1`` builds that site once; every round is the same
``Site`` code as an emotion round.

**federated** (``fl.pretrain_mode=federated``): the server runs ``fl.pretrain_rounds``
FedAvg rounds before the emotion rounds (``serve``). Their train messages carry
``STAGE = AU_PRETRAIN``; a site keeps its stage-1 state apart from its emotion state and
replies with the FedAvg upload, ``num-examples`` (its training samples) and
``au-examples`` (its AU-labelled ones: the FedAvg weight, 0 for a site without AU
coding, which trains but weighs nothing, as in the simulator). After the last round the
server sends the last mean to every site that took part (a query, ``ADOPT``): the site
applies it as the simulator's last communication step does and starts its emotion
state from that AU branch (``adopt``). Stage 1 uses its own strategy instance, so its
rounds do not count among the emotion rounds.

**local**: nothing is exchanged. A site pre-trains alone when it first needs its
emotion state (``pretrain_locally``, inside round 1's train message: the round timeout
must cover it). ``settings`` refuses this mode for now: its numbers do not yet match the
simulator's local stage 1 (tests/test_flower_stage1.py covers the federated mode).

A site without the stage-1 model (it missed the adoption) refuses the emotion rounds
rather than silently starting from an untrained AU branch. DP and SecAgg+ runs refuse
stage 1 (``settings``).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from fedpsyau_jax.federated.flower import wire
from fedpsyau_jax.federated.flower.replies import CONFIG, METRICS, SITE, RoundFailed, site_label

LOG = logging.getLogger("fedpsyau.flower")

STAGE = "fedpsyau-stage"  # train config key: which stage a train message belongs to
AU_PRETRAIN = "au-pretrain"  # its value for a stage-1 round
ADOPT = "stage1-model"  # query action: (stage 1's last mean) -> the site starts stage 2 from it
AU_EXAMPLES = "au-examples"  # a stage-1 reply's FedAvg weight


# ---------------------------------------------------------------------- the sites
def is_stage1(content) -> bool:
    cfg = content[CONFIG] if CONFIG in content else {}
    return str(cfg.get(STAGE, "")) == AU_PRETRAIN


def train_round(site, state, broadcast, rnd: int):
    """One stage-1 round of ``site`` (the stage-2 site): (stage-1 state, loss)."""
    s1 = site.stage1()
    if state is None:
        state = s1.fresh_state()
    state, anchors = s1.receive(state, broadcast)
    return s1.train(state, anchors, rnd)


def reply_content(site, state, loss: float, timing: dict):
    """A stage-1 train reply: the FedAvg upload, the counts, the loss, the site's name."""
    from flwr.app import ConfigRecord, MetricRecord, RecordDict

    from fedpsyau_jax.federated.flower.replies import ARRAYS

    s1 = site.stage1()
    metrics = {
        "num-examples": site.num_train,
        AU_EXAMPLES: s1.num_train,
        "train-loss": float(loss),
        "partition-id": site.partition_id,
        **timing,
    }
    return RecordDict(
        {
            ARRAYS: wire.to_array_record(s1.upload(state)),
            METRICS: MetricRecord(metrics),
            SITE: ConfigRecord({"name": site.name}),
        }
    )


def adopt(site, state, broadcast):
    """The site's emotion-round start state after stage 1: the last mean applied with
    the stage-1 algorithm's client half (``broadcast`` None: Local, its own model),
    then its AU branch loaded into the fresh state (``Site.fresh_state``)."""
    state, _ = site.stage1().receive(state, broadcast)
    return site.fresh_state((state.params, state.batch_stats))


def pretrain_locally(site):
    """``fl.pretrain_mode=local``: the site's emotion-round start state after its own
    stage-1 rounds (Local: no broadcast), as the simulator's Local stage 1."""
    state = None
    for rnd in range(site.spec.stage1.rounds):
        state, loss = train_round(site, state, None, rnd)
        LOG.info("site %s stage 1 (local) round %d: AU loss %.4f", site.name, rnd + 1, loss)
    return adopt(site, state, None)


def adopt_reply_content(site):
    from flwr.app import ConfigRecord, MetricRecord, RecordDict

    return RecordDict(
        {METRICS: MetricRecord({"num-examples": site.num_train}), SITE: ConfigRecord({"name": site.name})}
    )


# ---------------------------------------------------------------------- the server
def serve(grid, spec, model, tx, node_roles: dict | None = None) -> dict:
    """``fl.pretrain_rounds`` FedAvg rounds of the AU loss, then the last mean to the
    sites (``ADOPT``). Returns the stage's record (``stage1`` of flower_results.json);
    ``RoundFailed`` when a round has fewer valid replies than ``min-nodes``, none with
    AU-labelled samples, or fewer than ``min-nodes`` sites adopt the result.
    ``node_roles`` (runs with a new site): filled with the nodes identified here."""
    from flwr.app import ArrayRecord, ConfigRecord

    from fedpsyau_jax.federated.algorithms import make_algorithm
    from fedpsyau_jax.federated.flower.new_site import _by_node, _query
    from fedpsyau_jax.federated.flower.settings import upload_template
    from fedpsyau_jax.federated.flower.strategies import FedPsyAUStrategy
    from fedpsyau_jax.federated.flower.new_site import ACTION

    rounds = spec.stage1.rounds
    record: dict = {"mode": spec.pretrain_mode, "rounds": rounds}
    if spec.pretrain_mode != "federated":
        LOG.info("stage 1 (local): every site pre-trains its AU branch alone, %d round(s), nothing exchanged", rounds)
        return record
    algorithm = make_algorithm("fedavg")
    strategy = FedPsyAUStrategy(
        algorithm,
        upload_template(model, tx, algorithm),
        rounds,
        min_nodes=spec.min_nodes,
        node_wait_timeout=spec.node_wait_timeout,
        new_site=spec.new_site.name if spec.new_site is not None else None,
        reply_timeout=spec.round_timeout,
        weight_key=AU_EXAMPLES,
    )
    if node_roles is not None:
        strategy.node_roles = node_roles
    t0 = time.perf_counter()
    arrays = ArrayRecord()
    for rnd in range(1, rounds + 1):
        msgs = strategy.configure_train(rnd, arrays, ConfigRecord({STAGE: AU_PRETRAIN}), grid)
        arrays, metrics = strategy.aggregate_train(rnd, grid.send_and_receive(msgs, timeout=spec.round_timeout))
        LOG.info("stage 1 round %d/%d: AU loss %.4f", rnd, rounds, float(metrics.get("train-loss", float("nan"))))
    # every site that was sent the last round adopts the last mean, as every row of the
    # simulator does after its last communication step
    nodes = strategy._sent[("train", rounds)]
    msgs = [_query({ACTION: ADOPT}, n, arrays) for n in nodes]
    adopted, failed = [], {}
    for node, reply in _by_node(msgs, grid.send_and_receive(msgs, timeout=spec.round_timeout)):
        name = strategy.node_sites.get(node, f"node {node}")
        if reply.has_error():
            failed[name] = reply.error.reason
        elif site_label(reply.content) != name:
            failed[name] = f"the reply names site {site_label(reply.content)!r}"
        else:
            adopted.append(name)
    for name, why in failed.items():
        LOG.warning("stage 1: %s did not adopt the AU branch: %s", name, why)
    if len(adopted) < min(spec.min_nodes, len(nodes)):
        raise RoundFailed(
            f"stage 1: {len(adopted)} site(s) adopted the pre-trained AU branch, the run needs "
            f"{min(spec.min_nodes, len(nodes))}; failed: {failed or 'none'}"
        )
    res = strategy.results()
    record.update(
        {
            "sites": {
                name: {"au_examples": s["train"][max(s["train"])][AU_EXAMPLES], "train": s["train"]}
                for name, s in res["sites"].items()
            },
            "per_round": res["per_round"],
            "adopted": sorted(adopted),
            "failed": failed,
            "seconds": time.perf_counter() - t0,
        }
    )
    return record


def format_line(rec: dict) -> str:
    if rec["mode"] != "federated":
        return f"  stage 1 (local): {rec['rounds']} round(s) of AU pre-training at every site, nothing exchanged"
    last = {n: s["train"][max(s["train"])] for n, s in rec["sites"].items()}
    loss = np.mean([m["train-loss"] for m in last.values()]) if last else float("nan")
    return (
        f"  stage 1 (federated): {rec['rounds']} FedAvg round(s) of AU pre-training over "
        f"{len(last)} site(s), last AU loss {loss:.4f}; adopted by {', '.join(rec['adopted'])}"
    )
