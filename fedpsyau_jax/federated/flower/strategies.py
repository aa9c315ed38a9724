"""Server side on ``flwr.serverapp.strategy``: the simulator's ``reduce``, one strategy.

``FedPsyAUStrategy(algorithm, upload_template, ...)`` serves Local, FedAvg, FedProx,
P-FedProx and FedRep: it differs from Flower's ``FedAvg`` in what it computes (the
algorithm's server half ``reduce`` — the same jitted function the stacked simulator
calls — instead of a plain weighted mean of everything received), so it subclasses
``Strategy`` and keeps Flower's round loop (``Strategy.start``).

Per round: ``configure_train`` waits (bounded) for ``min_nodes`` SuperNodes and sends
each the last broadcast (empty in round 1 and for Local) with the round number;
``aggregate_train`` checks every reply (``parse_train_reply``: exactly the expected
array names, shapes and dtypes, finite values, a positive finite ``num-examples``),
names and leaves out the bad ones and the sites that did not answer, raises
``RoundFailed`` below ``min_nodes`` valid replies, and reduces the rest
(``reduce_uploads``). The broadcast is what FedAvg computes (its mean; for P-FedProx
only S = Σ n_j W_j and N = Σ n_j): the server never holds a per-client model.
Evaluation runs once, after the last round, on what each client deploys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Callable

import numpy as np

from fedpsyau_jax.federated.flower import dp as dp_keys
from fedpsyau_jax.federated.flower import wire

# the reply vocabulary lives in ``replies`` (``new_site`` reads it too, without a cycle)
from fedpsyau_jax.federated.flower.replies import (
    ARRAYS,
    CONFIG,
    EVAL_METRICS,
    METRICS,
    PERSONAL_METRICS,
    SITE,
    TRAIN_METRICS,
    ReplyRejected,
    RoundFailed,
    _metric_dict,
    site_label,
)

LOG = logging.getLogger("fedpsyau.flower")


def describe_content(content) -> dict:
    """What a reply carries, without values: {record: {"type", names (and shapes)}} —
    kept for every reply so a run can be audited ('what leaves a site')."""
    out = {}
    for key, rec in content.items():
        kind = type(rec).__name__
        if kind == "ArrayRecord":
            out[key] = {"type": kind, "arrays": {k: [list(a.shape), a.dtype] for k, a in rec.items()}}
        else:
            out[key] = {"type": kind, "keys": sorted(rec.keys())}
    return out


def parse_train_reply(content, upload_template, required: tuple[str, ...] = ()) -> tuple[str, Any, dict[str, float]]:
    """(site name, upload tree, metrics) of a train reply's RecordDict, or
    ``ReplyRejected``. Only the expected arrays (names, shapes, dtypes), finite; only
    scalar finite metrics from the known list (and ``required``, which must be there);
    the site's name."""
    site = site_label(content)
    allowed_records = {ARRAYS, METRICS, SITE}
    extra = sorted(set(content.keys()) - allowed_records)
    if extra:
        raise ReplyRejected(f"unexpected record(s) {', '.join(extra)}")
    metrics = _metric_dict(content, TRAIN_METRICS + PERSONAL_METRICS + required)
    missing = sorted(set(required) - set(metrics))
    if missing:
        raise ReplyRejected(f"missing metric(s) {', '.join(missing)}")
    if ARRAYS not in content:
        raise ReplyRejected("no arrays record")
    try:
        tree = wire.from_array_record(content[ARRAYS], upload_template, finite=True)
    except wire.WireError as e:
        raise ReplyRejected(str(e)) from None
    return site, tree, metrics


def parse_evaluate_reply(content, with_model: bool = False) -> tuple[str, dict[str, float]]:
    """(site name, metrics) of an evaluate reply, or ``ReplyRejected``; ``with_model``:
    it may also carry the deployed model (runs with a new site, ``flower.new_site``)."""
    site = site_label(content)
    extra = sorted(set(content.keys()) - ({METRICS, SITE, ARRAYS} if with_model else {METRICS, SITE}))
    if extra:
        raise ReplyRejected(f"unexpected record(s) {', '.join(extra)}")
    return site, _metric_dict(content, EVAL_METRICS)


def reduce_uploads(algorithm, uploads: list[Any], num_samples: list[float]):
    """The algorithm's server half on K accepted uploads: its broadcast (no client
    axis), or None for an algorithm that communicates nothing. One federation: all
    rows in group 0, so row 0 of the (group-constant) result is what everyone gets."""
    import jax
    import jax.numpy as jnp

    from fedpsyau_jax.federated.client_stack import stack_states
    from fedpsyau_jax.federated.upload import ClientUpload

    if algorithm.reduce is None:
        return None
    stacked = stack_states(uploads)
    up = ClientUpload(
        params=stacked["params"], batch_stats=stacked["batch_stats"], num_samples=jnp.asarray(num_samples, jnp.float32)
    )
    out = _jitted_reduce(algorithm)(up, jnp.zeros(len(uploads), jnp.int32))
    return jax.tree.map(lambda x: np.asarray(x[0]), out)


_REDUCE_CACHE: dict = {}


def _jitted_reduce(algorithm):
    import jax

    if algorithm not in _REDUCE_CACHE:
        _REDUCE_CACHE[algorithm] = jax.jit(lambda up, groups: algorithm.reduce(up, groups, 1))
    return _REDUCE_CACHE[algorithm]


def wait_for_nodes(
    get_node_ids: Callable[[], Iterable[int]], minimum: int, timeout: float, poll: float = 1.0
) -> list[int]:
    """Connected node ids once at least ``minimum`` are connected; ``RoundFailed``
    after ``timeout`` seconds (never an endless wait)."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(get_node_ids())
        if len(nodes) >= minimum:
            return nodes
        if time.monotonic() >= deadline:
            raise RoundFailed(
                f"only {len(nodes)} SuperNode(s) connected after {timeout:.0f} s; the strategy needs {minimum}"
            )
        time.sleep(poll)


def _weighted(per_site: dict[str, dict[str, float]], keys, weight="num-examples") -> dict[str, float]:
    tot = sum(m[weight] for m in per_site.values())
    return {
        k: sum(m[k] * m[weight] for m in per_site.values()) / tot
        for k in keys
        if all(k in m for m in per_site.values())
    }


try:
    from flwr.serverapp.strategy import Strategy as _FlowerStrategy
except ImportError:  # pragma: no cover - the flower extra is not installed
    _FlowerStrategy = object  # type: ignore[misc,assignment]


class FedPsyAUStrategy(_FlowerStrategy):
    """One Flower strategy for every ``fedpsyau_jax.federated`` algorithm (see module doc).

    After ``start``: ``self.sites`` {name: {"train": {round: metrics}, "personal": …,
    "deployed": …}}, ``self.rounds`` (per-round accepted/rejected/missing sites, seconds,
    bytes), ``self.broadcast`` (the last broadcast tree).
    """

    def __init__(
        self,
        algorithm,
        upload_template,
        num_rounds: int,
        min_nodes: int = 2,
        node_wait_timeout: float = 300.0,
        dp=None,
        new_site: str | None = None,
        model_template=None,
        reply_timeout: float = 1800.0,
        weight_key: str = "num-examples",
    ):
        """``new_site`` (a site name; ``model_template`` the whole model's shapes): a site
        held out (``flower.new_site``): every node is asked who it is before it is sent
        anything, the new site's node never is, and the final evaluation also collects
        each site's deployed model (``self.deployed``). ``reply_timeout``: the wait for
        those identification replies. ``weight_key``: the reply metric that weighs a
        site's upload (stage 1: ``au-examples``, which may be 0; it must be in every reply).

        ``dp`` (``privacy.DPSettings``): client-level DP (``flower.dp``; wrap this
        strategy with ``dp.wrap_strategy``, start it with ``initial_arrays`` = R_0).
        Then the arrays sent are the last release R under the upload's names (the
        sites' clipping mod clips against them), each node is told which round made
        R and whether its reply was in it, sampling "fixed" trains ``per_round`` of the
        K sites (drawn from OS entropy: the sample must not be predictable), and
        ``aggregate_train`` returns R + Σ clip(U_i − R)/m, equal weights, m fixed."""
        self.dp = dp
        self.reference = None
        self.release_round = 0
        self.release_nodes: set[int] = set()
        self.epsilon: list[float] = []
        self.algorithm = algorithm
        self.upload_template = upload_template
        self.num_rounds = int(num_rounds)
        self.min_nodes = int(min_nodes)
        self.node_wait_timeout = float(node_wait_timeout)
        self.sites: dict[str, dict] = {}
        self.rounds: dict[int, dict] = {}
        self.node_sites: dict[int, str] = {}
        self._sent: dict[tuple[str, int], list[int]] = {}
        self._sent_msgs: dict[tuple[str, int], list] = {}
        self._t0: dict[int, float] = {}
        self.broadcast = None
        self.manifest: list[dict] = []
        self.new_site = new_site or None
        self.model_template = model_template
        self.reply_timeout = float(reply_timeout)
        self.node_roles: dict[int, tuple[str, str]] = {}
        self.deployed: dict[str, Any] = {}
        self.weight_key = weight_key

    def summary(self) -> None:
        LOG.info(
            "FedPsyAUStrategy: algorithm %s (mu=%s), %d rounds, min %d nodes",
            self.algorithm.name,
            self.algorithm.mu,
            self.num_rounds,
            self.min_nodes,
        )

    # ------------------------------------------------------------------ messages
    def _messages(self, kind: str, server_round: int, arrays, config, grid):
        from flwr.app import ConfigRecord, Message, MessageType, RecordDict

        if self.new_site is not None:
            from fedpsyau_jax.federated.flower import new_site

            nodes = new_site.federating_nodes(
                grid, self.node_roles, self.min_nodes, self.node_wait_timeout, self.reply_timeout
            )
            if kind == "evaluate":
                config[new_site.SEND_DEPLOYED] = True
        else:
            nodes = wait_for_nodes(
                grid.get_node_ids, self.min_nodes if self.dp is None else self.dp.num_clients, self.node_wait_timeout
            )
        if self.dp is not None:
            nodes = self._dp_nodes(kind, nodes)
        config["server-round"] = server_round
        config["final-round"] = server_round == self.num_rounds
        self._sent[(kind, server_round)] = nodes
        self._t0[server_round] = time.perf_counter()
        mtype = MessageType.TRAIN if kind == "train" else MessageType.EVALUATE
        LOG.info(
            "round %d: %s on %d node(s), %.3f MB each", server_round, kind, len(nodes), wire.num_bytes(arrays) / 2**20
        )

        def content(node):
            if self.dp is None:
                return RecordDict({ARRAYS: arrays, CONFIG: config})
            cfg = ConfigRecord(dict(config.items()))
            cfg[dp_keys.RELEASE_ROUND] = self.release_round
            cfg[dp_keys.IN_RELEASE] = node in self.release_nodes
            return RecordDict({ARRAYS: arrays, CONFIG: cfg})

        msgs = [Message(content=content(n), message_type=mtype, dst_node_id=n) for n in nodes]
        self._sent_msgs[(kind, server_round)] = msgs  # the grid sets their message ids
        return msgs

    def _dp_nodes(self, kind: str, nodes: list[int]) -> list[int]:
        k = self.dp.num_clients
        if len(nodes) > k:
            raise RoundFailed(
                f"DP run for {k} sites (dp-num-sites, or min-nodes) but {len(nodes)} "
                "SuperNodes are connected: the accounting would not hold"
            )
        if kind == "train" and self.dp.sampling == "fixed":
            pick = np.random.default_rng().choice(len(nodes), self.dp.per_round, replace=False)
            return sorted(nodes[i] for i in pick)
        return nodes

    def configure_train(self, server_round, arrays, config, grid):
        if self.dp is not None:
            # R: R_0 in round 1, afterwards the release (noise included) that Flower's
            # wrapper returned for the previous round
            try:
                self.reference = wire.from_array_record(arrays, self.upload_template, finite=True)
            except wire.WireError as e:
                raise RoundFailed(
                    f"round {server_round}: the DP reference is not the upload's "
                    f"arrays ({e}); start the strategy with initial_arrays = R_0"
                ) from None
        return self._messages("train", server_round, arrays, config, grid)

    def configure_evaluate(self, server_round, arrays, config, grid):
        if server_round < self.num_rounds:
            return []
        return self._messages("evaluate", server_round, arrays, config, grid)

    # ------------------------------------------------------------------ replies
    def _screen(self, kind: str, server_round: int, replies, parse):
        accepted, rejected = [], {}
        replied = set()
        # an error reply made by the SuperLink (e.g. "Node Unavailable") comes from the
        # SuperLink, not the node: attribute it through the id of the message it answers
        dst_of = {
            getattr(m.metadata, "message_id", ""): m.metadata.dst_node_id
            for m in self._sent_msgs.get((kind, server_round), [])
        }
        for msg in replies:
            node = dst_of.get(msg.metadata.reply_to_message_id, msg.metadata.src_node_id)
            replied.add(node)
            if msg.has_error():
                name = self.node_sites.get(node, f"node {node}")
                rejected[name] = f"error reply: {msg.error.reason}"
                continue
            self.manifest.append(
                {
                    "round": server_round,
                    "kind": kind,
                    "node": node,
                    "site": site_label(msg.content),
                    "records": describe_content(msg.content),
                }
            )
            try:
                parsed = parse(msg.content)
            except ReplyRejected as e:
                name = site_label(msg.content)
                rejected[name if name != "?" else f"node {node}"] = str(e)
                continue
            self.node_sites[node] = parsed[0]
            accepted.append(parsed)
        missing = [
            self.node_sites.get(n, f"node {n}") for n in self._sent.get((kind, server_round), []) if n not in replied
        ]
        for name, why in rejected.items():
            LOG.warning("round %d %s: rejected %s: %s", server_round, kind, name, why)
        if missing:
            LOG.warning("round %d %s: no reply from %s", server_round, kind, ", ".join(missing))
        names = [p[0] for p in accepted]
        if len(set(names)) != len(names):
            raise RoundFailed(f"round {server_round}: two replies claim the same site: {names}")
        need = min(self.min_nodes, len(self._sent.get((kind, server_round), [])) or self.min_nodes)
        if len(accepted) < need:
            raise RoundFailed(
                f"round {server_round} {kind}: {len(accepted)} valid repl(ies), the strategy needs "
                f"{need}; rejected: {rejected or 'none'}; missing: {missing or 'none'}"
            )
        return accepted, rejected, missing

    @property
    def _required(self) -> tuple[str, ...]:
        return () if self.weight_key == "num-examples" else (self.weight_key,)

    def aggregate_train(self, server_round, replies):
        from flwr.app import ArrayRecord, MetricRecord

        accepted, rejected, missing = self._screen(
            "train", server_round, list(replies), lambda c: parse_train_reply(c, self.upload_template, self._required)
        )
        per_site = {}
        for name, _, metrics in accepted:
            site = self.sites.setdefault(name, {"train": {}})
            site["train"][server_round] = metrics
            if "personal-uf1" in metrics:
                site["personal"] = {k.removeprefix("personal-"): metrics[k] for k in PERSONAL_METRICS if k in metrics}
            per_site[name] = metrics
        dp_record = {}
        if self.dp is not None:
            # equal weights, fixed divisor m; Flower's wrapper adds the noise to this
            self.broadcast, norms = dp_keys.release_mean(
                self.algorithm, self.reference, [t for _, t, _ in accepted], self.dp
            )
            self.release_round = server_round
            names = {p[0] for p in accepted}
            self.release_nodes = {n for n, name in self.node_sites.items() if name in names}
            self.epsilon.append(dp_keys.epsilon(self.dp, len(self.epsilon) + 1))
            dp_record = {
                "epsilon": self.epsilon[-1],
                "released": len(accepted),
                "server_reclipped": int(sum(n > self.dp.clip_norm * (1 + 1e-4) for n in norms)),
            }
            # on Flower's logger: it is the one a `flwr run --stream` shows
            logging.getLogger("flwr").info(
                "round %d: DP release of %d clipped update(s) (C=%g, z=%g, m=%g): epsilon %.4f at delta %g",
                server_round,
                len(accepted),
                self.dp.clip_norm,
                self.dp.noise_multiplier,
                dp_keys.divisor(self.dp),
                self.epsilon[-1],
                self.dp.delta,
            )
        else:
            weights = [m[self.weight_key] for _, _, m in accepted]
            if not sum(weights) > 0:
                raise RoundFailed(
                    f"round {server_round}: the accepted replies weigh nothing ({self.weight_key} "
                    f"{ {name: m[self.weight_key] for name, _, m in accepted} })"
                )
            self.broadcast = reduce_uploads(self.algorithm, [t for _, t, _ in accepted], weights)
        arrays = ArrayRecord() if self.broadcast is None else wire.to_array_record(self.broadcast)
        self.rounds[server_round] = {
            **dp_record,
            "accepted": sorted(per_site),
            "rejected": rejected,
            "missing": missing,
            "seconds": time.perf_counter() - self._t0.get(server_round, time.perf_counter()),
            "upload_bytes": {name: wire.num_bytes(t) for name, t, _ in accepted},
            "broadcast_bytes": wire.num_bytes(arrays),
        }
        return arrays, MetricRecord({**_weighted(per_site, ["train-loss"]), "num-sites": len(per_site)})

    def aggregate_evaluate(self, server_round, replies):
        from flwr.app import MetricRecord

        if server_round < self.num_rounds:
            return None
        accepted, rejected, missing = self._screen("evaluate", server_round, list(replies), self._parse_evaluate)
        per_site = {}
        for name, metrics in accepted:
            self.sites.setdefault(name, {"train": {}})["deployed"] = metrics
            per_site[name] = metrics
        self.rounds.setdefault(server_round, {})["evaluate"] = {
            "accepted": sorted(per_site),
            "rejected": rejected,
            "missing": missing,
        }
        return MetricRecord(_weighted(per_site, ["uf1", "uar", "accuracy"]))

    def _parse_evaluate(self, content):
        if self.new_site is None:
            return parse_evaluate_reply(content)
        from fedpsyau_jax.federated.flower.new_site import parse_deployed

        name, metrics = parse_evaluate_reply(content, with_model=True)
        self.deployed[name] = parse_deployed(content, self.model_template)
        return name, metrics

    def results(self) -> dict:
        """JSON-able summary: per-site personal/deployed scores, per-round bookkeeping."""
        out = {
            "algorithm": self.algorithm.name,
            "rounds": self.num_rounds,
            "sites": self.sites,
            "per_round": {str(k): v for k, v in self.rounds.items()},
            "replies": self.manifest,
        }
        if self.new_site is not None:
            out["node_roles"] = {str(n): {"site": name, "role": role} for n, (name, role) in self.node_roles.items()}
        if self.dp is not None:
            out["dp"] = {
                **self.dp.__dict__,
                "divisor": dp_keys.divisor(self.dp),
                "epsilon_per_round": list(self.epsilon),
            }
        return out
