"""Secure aggregation (Flower SecAgg+): the server learns only the weighted sum.

In flwr 1.41 SecAgg+ exists only in the legacy stack: ``flwr.server.workflow``
``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))`` on the server (a
``LegacyContext`` with a legacy ``flwr.server.strategy.Strategy``) and
``flwr.client.mod.secaggplus_mod`` around the ClientApp's train handler, which then
speaks the legacy FitIns/FitRes records. One round is four message exchanges (keys,
key shares, masked vectors — the only one that trains —, unmasking).

What the protocol computes (read from the installed source): site i sends, masked,
q_i = round(n_i/W · T) and quantise(dq_i · w_i) with dq_i = q_i/T, W =
``secagg-max-weight``, T = ``secagg-quantization-range``; each coordinate of
dq_i·w_i is clipped to [−c, c] (c = ``secagg-clipping-range``) and stochastically
rounded to one of T levels over [−c, c]. The server unmasks only the sum and hands
the strategy's ``aggregate_fit`` the dq-weighted MEAN M = Σ dq_i w_i / Σ dq_i — the
same object in every site's FitRes (no individual update), with each site's plain
``num_examples`` n_i (public, as in the plain deployment).

That is all the project's algorithms need from the server (in their deployment form):
FedAvg/FedProx's broadcast is the weighted mean, P-FedProx's is S = Σ n_j w_j and
N = Σ n_j. So the broadcast is the algorithm's own ``reduce`` applied to ONE row
holding M with count N = Σ n_i (``reduce_uploads``: FedAvg returns M; P-FedProx
returns S = N·M and N); the sites apply it with the algorithm's ``combine`` and train
with ``Site`` exactly as in the plain deployment.

Quantisation error (no clipping, i.e. |dq_i·w| ≤ c everywhere): each site's integer
is off by < 1 level = 2c/T, so per coordinate
    |M − M_exact| < k · (2c/T) / Σ_i dq_i,       (``error_bound``)
M_exact the dq-weighted mean of the same uploads (= the n-weighted mean when the
dq_i are proportional to the n_i, e.g. equal n_i; otherwise the weights are off by
≤ 0.5/q_i relative). A smaller W (just above the largest n_i) gives finer levels.

Refused: fewer than 3 sites (with two, each learns the other's update by subtracting
its own from the sum), an algorithm that sends nothing (Local), DP together with
SecAgg+ (``settings``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fedpsyau_jax.federated.flower import wire

LOG = logging.getLogger("fedpsyau.flower.secagg")
MIN_SITES = 3


class SecAggError(ValueError):
    """SecAgg+ settings that cannot protect the sites (the message says why)."""


def error_bound(num_sites: int, num_examples, settings: dict) -> float:
    """Per-coordinate bound of |secure mean − exact dq-weighted mean| (module doc)."""
    t, c, w = settings["quantization_range"], settings["clipping_range"], settings["max_weight"]
    dq = [round(n / w * t) / t for n in num_examples]
    return num_sites * (2 * c / t) / sum(dq)


def check(spec, algorithm) -> None:
    if algorithm.reduce is None:
        raise SecAggError(
            f"run-config secagg=true: algorithm {algorithm.name!r} communicates nothing; there is nothing to aggregate"
        )
    if spec.min_nodes < MIN_SITES:
        raise SecAggError(
            f"run-config secagg=true needs min-nodes >= {MIN_SITES} (got "
            f"{spec.min_nodes}): with two sites each learns the other's update "
            "from the sum"
        )


def workflow_args(settings: dict) -> dict:
    """SecAggPlusWorkflow's arguments: shares to every site (1.0) unless set; threshold
    2/3 of the shares (Flower's float rule, at least 2) unless set."""
    shares = settings["num_shares"] or 1.0
    threshold = settings["reconstruction_threshold"] or 2 / 3
    return {
        "num_shares": shares,
        "reconstruction_threshold": threshold,
        "max_weight": settings["max_weight"],
        "clipping_range": settings["clipping_range"],
        "quantization_range": settings["quantization_range"],
    }


class CountingGrid:
    """A Grid that counts the payload bytes of every exchange (``content_bytes``),
    per message type; everything else is the wrapped grid's."""

    def __init__(self, grid):
        self._grid = grid
        self.log: list[dict] = []

    def __getattr__(self, name):
        return getattr(self._grid, name)

    def send_and_receive(self, messages, *, timeout=None):
        msgs = list(messages)
        sent = sum(content_bytes(m) for m in msgs)
        t = time.perf_counter()
        replies = list(self._grid.send_and_receive(msgs, timeout=timeout))
        self.log.append(
            {
                "type": msgs[0].metadata.message_type if msgs else "",
                "messages": len(msgs),
                "sent_bytes": sent,
                "received_bytes": sum(content_bytes(m) for m in replies),
                "seconds": time.perf_counter() - t,
            }
        )
        return replies

    def totals(self, message_type: str = "train") -> dict:
        rows = [r for r in self.log if r["type"] == message_type]
        return {
            "exchanges": len(rows),
            "sent_bytes": sum(r["sent_bytes"] for r in rows),
            "received_bytes": sum(r["received_bytes"] for r in rows),
        }


def content_bytes(msg) -> int:
    """Bytes of the message's content as Flower serialises it (protobuf RecordDict)."""
    from flwr.common.serde import recorddict_to_proto

    if not msg.has_content():
        return 0
    return int(recorddict_to_proto(msg.content).ByteSize())


# ---------------------------------------------------------------------- server
def _legacy_strategy_base():
    from flwr.server.strategy import Strategy

    return Strategy


class SecAggStrategy(_legacy_strategy_base()):  # type: ignore[misc]  # Flower's base, resolved at import
    """Legacy strategy for ``SecAggPlusWorkflow``: every site each round; the broadcast
    from the securely aggregated mean via the algorithm's ``reduce`` (module doc).

    ``self.broadcasts`` {round: broadcast tree}; ``self.handed`` {round: the number of
    distinct parameter objects aggregate_fit received} (1: only the aggregate)."""

    def __init__(self, algorithm, upload_template, broadcast_template, spec):
        self.algorithm = algorithm
        self.upload_template = upload_template
        self.broadcast_template = broadcast_template
        self.spec = spec
        self.sites: dict[str, dict] = {}
        self.rounds: dict[int, dict] = {}
        self.broadcasts: dict[int, Any] = {}
        self.handed: dict[int, int] = {}
        self._t0: dict[int, float] = {}
        self.grid: CountingGrid | None = None

    def __repr__(self) -> str:
        return f"SecAggStrategy({self.algorithm.name})"

    def initialize_parameters(self, client_manager):
        from flwr.common import ndarrays_to_parameters

        return ndarrays_to_parameters([])  # round 1: every site starts from its own init

    def _clients(self, client_manager):
        client_manager.num_available()  # (Flower's wrapper refreshes the nodes)
        if not client_manager.wait_for(self.spec.min_nodes, timeout=int(self.spec.node_wait_timeout)):
            from fedpsyau_jax.federated.flower.strategies import RoundFailed

            raise RoundFailed(
                f"only {client_manager.num_available()} SuperNode(s) connected after "
                f"{self.spec.node_wait_timeout:.0f} s; SecAgg+ needs {self.spec.min_nodes}"
            )
        clients = sorted(client_manager.all().values(), key=lambda c: c.node_id)
        if len(clients) < MIN_SITES:
            raise SecAggError(f"SecAgg+ with {len(clients)} site(s): needs at least {MIN_SITES}")
        return clients

    def configure_fit(self, server_round, parameters, client_manager):
        from flwr.common import FitIns

        clients = self._clients(client_manager)
        self._t0[server_round] = time.perf_counter()
        self._mark = len(self.grid.log) if self.grid is not None else 0
        cfg = {"server-round": server_round, "final-round": server_round == self.spec.rounds}
        return [(c, FitIns(parameters, dict(cfg))) for c in clients]

    def aggregate_fit(self, server_round, results, failures):
        from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays

        from fedpsyau_jax.federated.flower.strategies import RoundFailed, reduce_uploads

        if len(results) < max(self.spec.min_nodes, MIN_SITES):
            raise RoundFailed(
                f"round {server_round}: {len(results)} site(s) in the secure sum, "
                f"needs {max(self.spec.min_nodes, MIN_SITES)}; failures: {failures}"
            )
        # every FitRes holds the same unmasked aggregate (SecAggPlusWorkflow sets it)
        self.handed[server_round] = len({id(res.parameters) for _, res in results})
        mean = wire.from_list(
            parameters_to_ndarrays(results[0][1].parameters), self.upload_template, finite=True, cast=True
        )
        n = [float(res.num_examples) for _, res in results]
        broadcast = reduce_uploads(self.algorithm, [mean], [sum(n)])
        self.broadcasts[server_round] = broadcast
        for _, res in results:
            m = dict(res.metrics)
            name = str(m.pop("site", "?"))
            site = self.sites.setdefault(name, {"train": {}})
            m["num-examples"] = float(res.num_examples)
            site["train"][server_round] = {k: float(v) for k, v in m.items()}
            if "personal-uf1" in m:
                site["personal"] = {
                    k.removeprefix("personal-"): float(m[k])
                    for k in ("personal-uf1", "personal-uar", "personal-accuracy")
                }
        wire_log = self.grid.log[self._mark :] if self.grid is not None else []
        self.rounds[server_round] = {
            "accepted": sorted(self.sites),
            "failures": len(failures),
            "seconds": time.perf_counter() - self._t0.get(server_round, time.perf_counter()),
            "exchanges": len(wire_log),
            "sent_bytes": sum(r["sent_bytes"] for r in wire_log),
            "received_bytes": sum(r["received_bytes"] for r in wire_log),
            "error_bound": error_bound(len(results), n, self.spec.secagg),
        }
        LOG.info(
            "round %d: secure aggregate of %d sites (N=%g), %d exchange(s)",
            server_round,
            len(results),
            sum(n),
            len(wire_log),
        )
        return ndarrays_to_parameters(wire.to_list(broadcast)), {}

    def configure_evaluate(self, server_round, parameters, client_manager):
        from flwr.common import EvaluateIns

        if server_round < self.spec.rounds:
            return []
        return [(c, EvaluateIns(parameters, {"server-round": server_round})) for c in self._clients(client_manager)]

    def aggregate_evaluate(self, server_round, results, failures):
        for _, res in results:
            m = dict(res.metrics)
            name = str(m.pop("site", "?"))
            self.sites.setdefault(name, {"train": {}})["deployed"] = {k: float(v) for k, v in m.items()}
        return None, {}

    def evaluate(self, server_round, parameters):
        return None

    def results(self) -> dict:
        return {
            "algorithm": self.algorithm.name,
            "rounds": self.spec.rounds,
            "sites": self.sites,
            "per_round": {str(k): v for k, v in self.rounds.items()},
            "secagg": {
                **self.spec.secagg,
                "sites": len(self.sites),
                "handed_parameter_objects": {str(k): v for k, v in self.handed.items()},
            },
        }


def run_secagg(grid, context, spec, model, tx, algorithm) -> dict:
    """The run under SecAgg+ (legacy DefaultWorkflow + SecAggPlusWorkflow)."""
    from flwr.server import ServerConfig
    from flwr.server.compat import LegacyContext
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    from fedpsyau_jax.federated.flower.settings import broadcast_template, upload_template

    check(spec, algorithm)
    up = upload_template(model, tx, algorithm)
    strategy = SecAggStrategy(algorithm, up, broadcast_template(algorithm, up), spec)
    counting = CountingGrid(grid)
    strategy.grid = counting
    legacy = LegacyContext(
        context, config=ServerConfig(num_rounds=spec.rounds, round_timeout=spec.round_timeout), strategy=strategy
    )
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(**workflow_args(spec.secagg), timeout=spec.round_timeout)
    )
    t0 = time.perf_counter()
    workflow(counting, legacy)  # type: ignore[arg-type]  # CountingGrid wraps a Grid (duck-typed)
    res = strategy.results()
    res["wall_seconds"] = time.perf_counter() - t0
    res["wire"] = {"train": counting.totals("train"), "evaluate": counting.totals("evaluate")}
    return res


# ---------------------------------------------------------------------- client
def secagg_mod(msg, context, call_next):
    """The ClientApp's outer train mod: Flower's ``secaggplus_mod`` for SecAgg+ stage
    messages; in a run with ``secagg`` any other train message is refused (a site
    of a SecAgg+ run never sends its update in the clear); otherwise nothing."""
    from flwr.app import Error, Message
    from flwr.client.mod import secaggplus_mod
    from flwr.common.constant import ErrorCode
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

    from fedpsyau_jax.federated.flower.settings import _bool

    if RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, context, call_next)
    if _bool(context.run_config.get("secagg", False)):
        return Message(
            Error(
                code=ErrorCode.MOD_FAILED_PRECONDITION,
                reason="this SecAgg+ run's site refuses a train message outside the SecAgg+ protocol",
            ),
            reply_to=msg,
        )
    return call_next(msg, context)


def is_legacy(content) -> bool:
    return "fitins.config" in content.config_records or "evaluateins.config" in content.config_records


def legacy_broadcast(site, content, kind: str):
    """The broadcast tree a legacy FitIns/EvaluateIns carries (None if empty)."""
    from flwr.common import parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat

    from fedpsyau_jax.federated.flower.settings import broadcast_template, upload_template

    ins = (
        compat.recorddict_to_fitins(content, keep_input=True)
        if kind == "train"
        else compat.recorddict_to_evaluateins(content, keep_input=True)
    )
    arrays = parameters_to_ndarrays(ins.parameters)
    tmpl = broadcast_template(site.algorithm, upload_template(site.model, site.tx, site.algorithm))
    if tmpl is None or not arrays:
        return None, dict(ins.config)
    return wire.from_list(arrays, tmpl, finite=True), dict(ins.config)


def legacy_train_reply(site, upload: dict, metrics: dict):
    """FitRes records: the upload (the mod masks it, then removes it), n, metrics."""
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
    from flwr.compat.common import recorddict_compat as compat

    res = FitRes(
        status=Status(code=Code.OK, message=""),
        parameters=ndarrays_to_parameters(wire.to_list(upload)),
        num_examples=int(round(site.num_train)),
        metrics={**metrics, "site": site.name},
    )
    return compat.fitres_to_recorddict(res, keep_input=True)


def legacy_evaluate_reply(site, scores: dict):
    from flwr.common import Code, EvaluateRes, Status
    from flwr.compat.common import recorddict_compat as compat

    res = EvaluateRes(
        status=Status(code=Code.OK, message=""),
        loss=0.0,
        num_examples=int(site.num_test),
        metrics={**scores, "partition-id": site.partition_id, "site": site.name},
    )
    return compat.evaluateres_to_recorddict(res)
