"""A site that never took part, in a Flower deployment: ``federated.new_site`` run by the
sites and the server.

**Declaring it.** The run's config names the site, as for ``fedpsyau federate``:
``fl.new_site=NAME`` (with ``fl.adapt_k``, ``fl.adapt_repeats``, ``fl.adapt_epochs``). The
SuperNode whose site has that name (its node config's ``site-name``, or its partition's
name) is the new site; its node config is an ordinary site's.

**It never takes part.** The server learns who a node is before it sends it anything
(``federating_nodes``: a query, answered with the site's name and role, once per node
id). The new site's node is left out of every train and evaluate message, so it never
trains, never sends an update and never counts among a round's sites (``min-nodes``
counts the federating sites only); its ClientApp refuses train and evaluate messages all
the same (``refusal``).

**After the last round.** In the final evaluation every federating site also returns its
deployed model (params and BatchNorm statistics: what it would use itself). The server
averages them weighted by the sites' training-sample counts with the simulator's
``new_site.weighted_mean`` (FedAvg, FedProx: the global model; FedRep: the shared body
with the mean of the heads; P-FedProx: the mean of the personal models; Local: the mean
of independently trained models) and sends that start model to the new site, which
runs the simulator's ``new_site.evaluate_new_site`` on its own samples: k = 0, the start
model on all of them; for each k of ``fl.adapt_k``, ``fl.adapt_repeats`` draws of k
labelled subjects, fine-tuning (FedRep: its head; the others: the whole model with
their proximal μ), scored on its other subjects. It replies with scalars only (per k,
the mean over the draws); the server prints one line per k and keeps them under
``new_site`` in ``flower_results.json``.

**Against the simulator** (same data, partition, seeds and settings, the new site the
partition's last client so that the others keep their positions): the same start model,
the same k = 0 scores, the same subject draws and fine-tuning plans. What a deployment
does not hand from one site to another differs: the simulator fine-tunes with the first
federating client's random key (flip and dropout draws) and its AU co-occurrence prior
D (from that client's labels); here the new site uses its own key (that of its round-0
state) and the prior of a site without AU labels (the run's preset, or
``fl.fallback_prior``). With the same key (and no AU branch, or a preset prior) the
adapted scores are the simulator's (``tests/test_flower_new_site.py``).

DP and SecAgg+ runs refuse a new site (``settings``): the deployed models would leave
the sites unclipped, outside the secure sum.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from fedpsyau_jax.federated.flower import wire
from fedpsyau_jax.federated.flower.replies import (
    ARRAYS,
    CONFIG,
    METRICS,
    SITE,
    ReplyRejected,
    RoundFailed,
    _metric_dict,
    site_label,
)

LOG = logging.getLogger("fedpsyau.flower")

ACTION = "fedpsyau-query"  # query config key: what the server asks
IDENTIFY = "identify"  # -> the site's name and role
ADAPT = "new-site"  # (the start model) -> the new site's scores
SEND_DEPLOYED = "send-deployed"  # evaluate config key: also reply with the deployed model
ROLE_SITE, ROLE_NEW, ROLE_UNKNOWN = "site", "new-site", "unidentified"


# ---------------------------------------------------------------------- the sites
def is_new_site(site) -> bool:
    ns = site.spec.new_site
    return ns is not None and site.name == ns.name


def identify_content(site):
    from flwr.app import ConfigRecord, RecordDict

    role = ROLE_NEW if is_new_site(site) else ROLE_SITE
    return RecordDict({SITE: ConfigRecord({"name": site.name, "role": role})})


def refusal(msg, reason: str):
    """An error reply (the message is not acted on)."""
    from flwr.app import Error, Message
    from flwr.common.constant import ErrorCode

    return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=reason), reply_to=msg)


def model_template(model, tx) -> dict:
    """Shapes/dtypes of a whole model {"params", "batch_stats"} (no client axis)."""
    import jax

    from fedpsyau_jax.training.train_state import create_train_state

    state = jax.eval_shape(lambda k: create_train_state(model, tx, k), jax.random.key(0))
    return {"params": state.params, "batch_stats": state.batch_stats}


def deployed_model(state) -> dict:
    """A one-row state's params and BN statistics, without the client axis."""
    import jax

    return jax.tree.map(lambda x: np.asarray(x)[0], {"params": state.params, "batch_stats": state.batch_stats})


def adapt(site, start: dict) -> dict:
    """``evaluate_new_site`` on the site's own samples, from ``start`` (a whole model,
    no client axis): the simulator's result dict (``start``, ``adapt``, ...)."""
    import dataclasses

    import jax
    import jax.numpy as jnp

    from fedpsyau_jax.federated.flower.settings import build_local_trainer
    from fedpsyau_jax.federated.new_site import evaluate_new_site
    from fedpsyau_jax.federated.runner import _client_prior

    spec = site.spec
    row = lambda t: jax.tree.map(lambda x: jnp.asarray(x)[None], t)
    state = site.fresh_state().replace(params=row(start["params"]), batch_stats=row(start["batch_stats"]))
    if state.priors:
        # the prior of a site with no AU-labelled training samples: the new site's k = 0
        # model must not read its own labels, and no other site's prior is handed over
        prior = _client_prior(site.samples, np.zeros(0, np.int64), spec.settings)
        state = state.replace(priors={"D": jnp.asarray(prior, jnp.float32)[None]})
    # one row of weight 1: start_models then returns ``start`` itself
    rows = dataclasses.replace(site.rows, num_samples=np.ones(1, np.float32))
    return evaluate_new_site(
        algorithm=site.algorithm,
        states=state,
        rows=rows,
        samples=site.samples,
        data=site.data,
        site_idx=np.arange(len(site.samples)),
        settings=spec.settings,
        site=spec.new_site,
        make_trainer=lambda t: build_local_trainer(spec, site.model, t),
        tx=site.tx,
    )


def adapt_metrics(result: dict) -> dict[str, float]:
    """The scalars the new site sends: k = 0 scores; per k the mean over the draws of the
    adapted and of the start model's UF1/UAR on the same (unlabelled) subjects."""
    k0 = result["start"][0]
    out = {
        "num-examples": float(result["samples"]),
        "subjects": float(result["subjects"]),
        "k0-uf1": float(k0["uf1"]),
        "k0-uar": float(k0["uar"]),
        "k0-accuracy": float(k0["accuracy"]),
    }
    for k, runs in result["adapt"].items():
        for m in ("uf1", "uar"):
            out[f"k{k}-{m}"] = float(np.nanmean([r["adapted"][m] for r in runs]))
            out[f"k{k}-start-{m}"] = float(np.nanmean([r["start"][m] for r in runs]))
        out[f"k{k}-draws"] = float(len(runs))
    return out


def adapt_reply_content(site, result: dict):
    from flwr.app import ConfigRecord, MetricRecord, RecordDict

    metrics: dict[str, Any] = dict(adapt_metrics(result))
    return RecordDict({METRICS: MetricRecord(metrics), SITE: ConfigRecord({"name": site.name})})


# ---------------------------------------------------------------------- the server
def _query(config: dict, node: int, arrays=None):
    from flwr.app import ConfigRecord, Message, MessageType, RecordDict

    content = RecordDict({CONFIG: ConfigRecord(config)})
    if arrays is not None:
        content[ARRAYS] = arrays
    return Message(content=content, message_type=MessageType.QUERY, dst_node_id=node)


def _by_node(msgs, replies):
    """(node id, reply) pairs: through the id of the message a reply answers (an error
    the SuperLink makes comes from the SuperLink, not the node)."""
    dst_of = {getattr(m.metadata, "message_id", ""): m.metadata.dst_node_id for m in msgs}
    return [(dst_of.get(r.metadata.reply_to_message_id, r.metadata.src_node_id), r) for r in replies]


def identify(grid, nodes: list[int], timeout: float) -> dict[int, tuple[str, str]]:
    """{node: (site name, role)} of ``nodes``; a node that does not answer properly is
    ``ROLE_UNKNOWN`` (sent nothing for the rest of the run: a SuperNode that restarts
    comes back with a new node id and is asked again)."""
    msgs = [_query({ACTION: IDENTIFY}, n) for n in nodes]
    out = {n: ("?", ROLE_UNKNOWN) for n in nodes}
    for node, reply in _by_node(msgs, grid.send_and_receive(msgs, timeout=timeout)):
        if reply.has_error():
            LOG.warning("node %s did not say who it is: %s", node, reply.error.reason)
            continue
        try:
            rec = reply.content[SITE]
            name, role = str(rec["name"]), str(rec["role"])
        except Exception:  # noqa: BLE001 - a malformed reply leaves the node unidentified
            LOG.warning("node %s: malformed identification reply", node)
            continue
        out[node] = (name, role if role in (ROLE_SITE, ROLE_NEW) else ROLE_UNKNOWN)
        LOG.info("node %s is %s%s", node, name, " (the new site)" if role == ROLE_NEW else "")
    return out


def _poll_roles(grid, roles: dict, pick, timeout: float, reply_timeout: float, poll: float):
    """Until ``pick(nodes)`` is not None or ``timeout`` seconds pass: the connected nodes,
    ``roles`` ({node: (name, role)}) updated with those not known yet. Returns
    (what ``pick`` returned last, the nodes then)."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        unknown = [n for n in nodes if n not in roles]
        if unknown:
            roles.update(identify(grid, unknown, reply_timeout))
        found = pick(nodes)
        if found is not None or time.monotonic() >= deadline:
            return found, nodes
        time.sleep(poll)


def federating_nodes(grid, roles: dict, minimum: int, timeout: float, reply_timeout: float, poll: float = 1.0):
    """The connected nodes that are federating sites, once there are ``minimum``;
    ``roles`` ({node: (name, role)}) is updated with the nodes not known yet.
    ``RoundFailed`` after ``timeout`` seconds."""

    def sites_of(nodes):
        sites = [n for n in nodes if roles[n][1] == ROLE_SITE]
        return sites if len(sites) >= minimum else None

    sites, nodes = _poll_roles(grid, roles, sites_of, timeout, reply_timeout, poll)
    if sites is None:
        raise RoundFailed(
            f"only {sum(roles[n][1] == ROLE_SITE for n in nodes)} federating site(s) connected after "
            f"{timeout:.0f} s (the new site does not count); the strategy needs {minimum}"
        )
    return sites


def parse_deployed(content, template) -> Any:
    """The deployed model of a final evaluate reply, or ``ReplyRejected``."""
    if ARRAYS not in content:
        raise ReplyRejected("no deployed model (the run has a new site)")
    try:
        return wire.from_array_record(content[ARRAYS], template, finite=True)
    except wire.WireError as e:
        raise ReplyRejected(f"deployed model: {e}") from None


def start_model(deployed: list, num_samples: list[float]) -> dict:
    """The sample-weighted mean of the sites' deployed models (simulator's arithmetic)."""
    import jax

    from fedpsyau_jax.federated.client_stack import stack_states
    from fedpsyau_jax.federated.new_site import sample_weights, weighted_mean

    w = sample_weights(num_samples, np.zeros(len(deployed), np.int32), 1)
    return jax.tree.map(lambda x: np.asarray(x)[0], weighted_mean(stack_states(deployed), w))


def expected_metrics(adapt_k) -> tuple[str, ...]:
    keys = ["num-examples", "subjects", "k0-uf1", "k0-uar", "k0-accuracy"]
    for k in adapt_k:
        keys += [f"k{k}-uf1", f"k{k}-uar", f"k{k}-start-uf1", f"k{k}-start-uar", f"k{k}-draws"]
    return tuple(keys)


def summarise(name: str, metrics: dict, order: list[str], weights: list[float], adapt_k) -> dict:
    out: dict[str, Any] = {
        "name": name,
        "subjects": int(metrics["subjects"]),
        "samples": int(metrics["num-examples"]),
        "deployed_from": order,
        "weights": weights,
        "k": {"0": {m: metrics[f"k0-{m}"] for m in ("uf1", "uar", "accuracy")}},
    }
    for k in adapt_k:
        out["k"][str(k)] = {
            "uf1": metrics[f"k{k}-uf1"],
            "uar": metrics[f"k{k}-uar"],
            "start_uf1": metrics[f"k{k}-start-uf1"],
            "start_uar": metrics[f"k{k}-start-uar"],
            "draws": int(metrics[f"k{k}-draws"]),
        }
    return out


def find_new_site(grid, roles: dict, name: str, timeout: float, reply_timeout: float, poll: float = 1.0):
    """The node id of the new site (it may connect only now), or None after ``timeout``."""
    found, _ = _poll_roles(
        grid,
        roles,
        lambda nodes: next((n for n in nodes if roles[n] == (name, ROLE_NEW)), None),
        timeout,
        reply_timeout,
        poll,
    )
    return found


def serve(grid, strategy, spec) -> dict:
    """After the last round: the start model to the new site, its scores back
    (``new_site`` of flower_results.json; ``error`` instead when it could not run)."""
    ns = spec.new_site
    last = {s: max(v["train"]) for s, v in strategy.sites.items() if v.get("train")}
    order = sorted(
        (s for s in strategy.deployed if s in last),
        key=lambda s: (strategy.sites[s]["train"][last[s]].get("partition-id", 0), s),
    )
    if not order:
        return {"name": ns.name, "error": "no federating site returned its deployed model"}
    weights = [float(strategy.sites[s]["train"][last[s]]["num-examples"]) for s in order]
    start = start_model([strategy.deployed[s] for s in order], weights)
    node = find_new_site(grid, strategy.node_roles, ns.name, spec.node_wait_timeout, spec.round_timeout)
    if node is None:
        return {
            "name": ns.name,
            "error": f"no SuperNode said it is {ns.name!r} within node-wait-timeout ({spec.node_wait_timeout:.0f} s)",
        }
    t0 = time.perf_counter()
    msg = _query({ACTION: ADAPT}, node, wire.to_array_record(start))
    LOG.info(
        "new site %s: start model (mean of %s) sent, %.3f MB", ns.name, ", ".join(order), wire.num_bytes(start) / 2**20
    )
    replies = _by_node([msg], grid.send_and_receive([msg], timeout=spec.round_timeout))
    if not replies:
        return {"name": ns.name, "error": f"no reply within round-timeout ({spec.round_timeout:.0f} s)"}
    reply = replies[0][1]
    if reply.has_error():
        return {"name": ns.name, "error": f"error reply: {reply.error.reason}"}
    try:
        if site_label(reply.content) != ns.name:
            raise ReplyRejected(f"the reply names site {site_label(reply.content)!r}")
        metrics = _metric_dict(reply.content, expected_metrics(ns.adapt_k))
        missing = sorted(set(expected_metrics(ns.adapt_k)) - set(metrics))
        if missing:
            raise ReplyRejected(f"missing metric(s) {', '.join(missing)}")
    except ReplyRejected as e:
        return {"name": ns.name, "error": f"rejected reply: {e}"}
    return {**summarise(ns.name, metrics, order, weights, ns.adapt_k), "seconds": time.perf_counter() - t0}


def format_lines(ns: dict) -> list[str]:
    """One line per k (k = 0: the deployed model on all the new site's samples)."""
    if "error" in ns:
        return [f"  new site {ns['name']}: not scored ({ns['error']})"]
    k0 = ns["k"]["0"]
    first = (
        f"  new site {ns['name']} ({ns['subjects']} subjects, {ns['samples']} samples) k=0: "
        f"UF1 {k0['uf1']:.4f} UAR {k0['uar']:.4f} acc {k0['accuracy']:.4f} (the deployed model, all its samples)"
    )
    lines = [first]
    for k, s in ns["k"].items():
        if k == "0":
            continue
        lines.append(
            f"  new site {ns['name']} k={k}: UF1 {s['uf1']:.4f} UAR {s['uar']:.4f} on its other subjects "
            f"(mean of {s['draws']} draws; the deployed model there: UF1 {s['start_uf1']:.4f} "
            f"UAR {s['start_uar']:.4f})"
        )
    return lines
