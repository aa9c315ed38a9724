"""One site of a Flower federation: its own data, its persistent state, one round.

Everything here is the simulator's code run for ONE client (a stacked pytree with a
client axis of 1): ``runner.plan_rows`` (split, prior D, with the site's partition id
as client index, so split, plans and dropout keys equal the simulator's row),
``runner.init_row_states`` + the algorithm's ``init``, ``runner.round_inputs``, the
vmapped ``LocalTrainer`` (same jitted step, proximal term included), the algorithm's
client half ``combine`` + ``client_update``, and ``runner._scores``. No Flower import:
``client_app`` only moves arrays between these functions and Flower records.

Site data (node config of the SuperNode):
- ``partition-id`` (int, required): the site's index; distinct per site.
- ``data-root`` (+ ``dataset``, optional ``cache-dir``): a real site — every sample of
  that dataset at that root is the site's own data.
- without ``data-root``: the run's ``dataset`` is loaded, partitioned with
  ``partition-scheme`` into ``num-partitions``, and only partition ``partition-id`` is
  kept (simulation and tests: one machine pretending to be several sites).
- ``site-name`` (optional; default the partition's name) and ``site-dir`` (where the
  JAX compilation cache lives).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from fedpsyau_jax.federated.flower.settings import RunSpec, build


def configure_compilation_cache(node_config: Mapping[str, Any]) -> str | None:
    """Point JAX's persistent compilation cache into the site's folder (before the
    first compile): in a deployment every round is a new ``flwr-clientapp`` process,
    which would otherwise re-compile the local step each round. An already set
    ``JAX_COMPILATION_CACHE_DIR`` wins."""
    import jax

    path = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if not path and node_config.get("site-dir"):
        path = str(Path(str(node_config["site-dir"])) / "jax_cache")
    if not path:
        return None
    Path(path).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path


def load_site_samples(node_config: Mapping[str, Any], spec: RunSpec):
    """(site name, partition id, the site's own MESamples)."""
    from data_pipelines.datasets import load_dataset
    from fedpsyau_jax.federated.partitions import partition_clients

    if "partition-id" not in node_config:
        raise ValueError("the SuperNode's node config needs partition-id=<int> (the site's index)")
    pid = int(node_config["partition-id"])
    if node_config.get("data-root"):
        name = str(node_config.get("dataset", spec.dataset))
        cache = node_config.get("cache-dir")
        samples = load_dataset(
            name,
            root=Path(str(node_config["data-root"])).expanduser(),
            cache_dir=Path(str(cache)).expanduser() if cache else None,
        )
        return str(node_config.get("site-name", f"site{pid}")), pid, samples
    if "num-partitions" not in node_config:
        raise ValueError("a site without data-root needs num-partitions in its node config")
    whole = load_dataset(spec.dataset, **spec.dataset_kw)
    parts = partition_clients(whole, spec.partition_scheme, int(node_config["num-partitions"]), spec.partition_seed)
    if not 0 <= pid < len(parts):
        raise ValueError(f"partition-id {pid} outside 0..{len(parts) - 1}")
    name, idx = parts[pid]
    return str(node_config.get("site-name", name)), pid, whole.take(idx)


@dataclasses.dataclass
class Site:
    """A site's model, optimiser, algorithm, own data and its one-row plan."""

    name: str
    partition_id: int
    spec: RunSpec
    samples: Any
    model: Any
    tx: Any
    algorithm: Any
    trainer: Any
    rows: Any
    data: Any
    betas_all: np.ndarray
    _stage1: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def num_train(self) -> float:
        return float(self.rows.num_samples[0])

    @property
    def num_test(self) -> int:
        return int(len(self.rows.test_idx[0]))

    # ---------------------------------------------------------------- state
    def fresh_state(self, pretrained=None):
        """Round-0 state, exactly the simulator's row (init, prior D, dropout key).
        ``pretrained``: stage 1's (params, batch_stats) of this site (a row axis of 1),
        whose AU branch replaces the initial one before the algorithm's ``init``, in the
        simulator's order (``runner.PlainRounds``)."""
        import jax.numpy as jnp

        from fedpsyau_jax.federated.runner import init_row_states
        from fedpsyau_jax.federated.server_round import make_init

        groups = jnp.asarray(self.rows.groups)
        states = init_row_states(self.model, self.tx, self.rows, self.trainer)
        if pretrained is not None:
            from fedpsyau_jax.training.fold_training import load_pretrained

            states = load_pretrained(states, pretrained[0], pretrained[1], stacked=True)
        return make_init(self.algorithm, 1)(states, groups)

    def stage1(self) -> "Site":
        """This site in stage 1 (``fl.pretrain_rounds``): the simulator's stage-1 settings,
        trainer and algorithm (FedAvg, or Local for ``fl.pretrain_mode=local``), its rows
        weighted by its AU-labelled training samples (``stage1.au_weighted_rows``). The
        same data, split and keys, so every ``Site`` method runs stage 1 unchanged."""
        if self._stage1 is None:
            from fedpsyau_jax.federated.algorithms import make_algorithm
            from fedpsyau_jax.federated.settings import build_trainer
            from fedpsyau_jax.federated.stage1 import au_weighted_rows

            s1 = self.spec.stage1
            if s1 is None:
                raise ValueError(f"site {self.name}: the run has no stage 1 (fl.pretrain_rounds)")
            algorithm = make_algorithm("fedavg" if self.spec.pretrain_mode == "federated" else "local")
            self._stage1 = dataclasses.replace(
                self,
                spec=dataclasses.replace(self.spec, settings=s1),
                algorithm=algorithm,
                trainer=build_trainer(self.spec.config, self.model, self.tx, s1),
                rows=au_weighted_rows(self.rows, self.samples),
                betas_all=np.asarray(s1.train.betas()),
                _stage1=None,
            )
        return self._stage1

    def state_template(self):
        """Shapes of the persisted state (typed key stored as its uint32 key data)."""
        import jax

        return jax.eval_shape(lambda: to_raw(self.fresh_state()))

    # ---------------------------------------------------------------- a round
    def receive(self, state, broadcast):
        """The algorithm's client half: (state, anchors) for the next local training.

        ``broadcast``: the server's reduction for this client (no client axis), or
        None (first round, or Local): the client keeps its state and its anchor is its
        own params (as the simulator's round-0 anchors)."""
        import jax
        import jax.numpy as jnp

        if broadcast is None:
            return self._reset(state), jax.tree.map(jnp.copy, state.params)
        rows = jax.tree.map(lambda x: jnp.asarray(x)[None], broadcast)
        n = jnp.asarray(self.rows.num_samples)
        message = self.algorithm.combine(state.params, n, rows)
        state, anchors = self.algorithm.client_update(state, message)
        # own buffers for the anchor: local training donates the state's
        return self._reset(state), jax.tree.map(jnp.copy, anchors)

    def _reset(self, state):
        """``reset-optimizer``: a fresh optimiser state at the received params, as the
        simulator resets after every communication (on a fresh state it is a no-op,
        so doing it in every round, the first and Local's included, matches)."""
        if not self.spec.settings.reset_optimizer:
            return state
        from fedpsyau_jax.federated.runner import reset_optimizer_states

        return reset_optimizer_states(self.tx, state)

    def receive_release(self, state, release, release_round: int, participated: bool, contribution=None):
        """The algorithm's client half under client-level DP (``flower.dp``), as the
        simulator's ``dp_runner`` start points: (state, anchors).

        ``release``: R (upload-shaped, no client axis). Release round 0 is R_0, the
        common initial model: the site adopts it for the leaves it uploads (its own
        round-0 model already equals it, so this changes nothing; it only makes sure
        the updates it sends are relative to what the server holds) and trains from
        there, as the simulator's round 0. Later releases go through
        ``Algorithm.combine_noisy_mean`` with participate = 1 iff the site's reply was
        in the round that made R, and ``contribution`` its clipped upload of that round."""
        import jax
        import jax.numpy as jnp

        from fedpsyau_jax.federated.flower.dp import divisor

        rows = lambda t: jax.tree.map(lambda x: jnp.asarray(x)[None], t)
        if release_round == 0:
            keep = lambda new, own: own if new is None else jnp.asarray(new)[None].astype(own.dtype)
            isnone = lambda x: x is None
            params = (
                jax.tree.map(keep, release["params"], state.params, is_leaf=isnone)
                if release["params"] is not None
                else state.params
            )
            bs = (
                jax.tree.map(keep, release["batch_stats"], state.batch_stats, is_leaf=isnone)
                if release["batch_stats"] is not None
                else state.batch_stats
            )
            state = state.replace(params=params, batch_stats=bs)
            return state, jax.tree.map(jnp.copy, state.params)
        if participated and contribution is None:
            raise ValueError(
                f"site {self.name}: the release of round {release_round} contains "
                "this site's update but its contribution was not kept"
            )
        p = jnp.asarray([1.0 if participated else 0.0], jnp.float32)
        contrib = rows(contribution if contribution is not None else release)
        message = self.algorithm.combine_noisy_mean(state.params, p, rows(release), contrib, divisor(self.spec.dp))
        state, anchors = self.algorithm.client_update(state, message)
        return self._reset(state), jax.tree.map(jnp.copy, anchors)

    def train(self, state, anchors, rnd: int):
        """Local training of round ``rnd`` (0-based): (state, mean loss)."""
        from fedpsyau_jax.federated.runner import round_inputs, round_lrs, row_au_weights, row_class_weights

        labels = np.asarray(self.samples.label)
        s = self.spec.settings
        idx, mask, betas = round_inputs(self.rows, labels, rnd, s, self.betas_all)
        lrs = round_lrs(s, rnd, mask, idx.shape[1] // s.local_epochs)  # None: rate in tx
        class_w = row_class_weights(self.rows, labels, self.samples.num_classes, s)
        au_w = row_au_weights(self.rows, self.samples, s)
        state, mean_loss, _ = self.trainer.train(
            state, anchors, self.algorithm.mu, self.data, idx, mask, betas, lrs, class_w, au_w
        )
        return state, float(np.asarray(mean_loss)[0])

    def evaluate(self, state) -> dict:
        """UF1 / UAR / accuracy on the site's own test split (the simulator's scores);
        with an AU branch also each AU head's mean ROC AUC there (``au-auc-gat``,
        ``au-auc-afe``)."""
        from fedpsyau_jax.federated.runner import _scores, eval_plans

        ei, em = eval_plans(self.rows, self.spec.settings.train.eval_batch_size)
        pred = np.asarray(self.trainer.evaluate(state, self.data, ei, em, self.betas_all[-1])[0])
        sc = _scores(self.rows, np.asarray(self.samples.label), pred, self.samples.num_classes)[0]
        out = {k: float(sc[k]) for k in ("uf1", "uar", "accuracy")}
        if self.trainer.evaluate_au is not None:  # the AU heads on the same test split
            from fedpsyau_jax.federated.runner import au_scores

            heads = self.trainer.evaluate_au(state, self.data, ei, em, self.betas_all[-1])
            for h, p in zip(("gat", "afe"), heads):
                auc = au_scores(self.rows, self.samples, np.asarray(p))[0]["mean_auc"]
                if np.isfinite(auc):  # no AU scorable on this test split: no number (a NaN would be rejected)
                    out[f"au-auc-{h}"] = auc
        return out

    def upload(self, state) -> dict:
        """What leaves the site: {"params", "batch_stats"} of the algorithm's upload
        (None parts are not sent), no client axis. The count travels as num-examples."""
        import jax

        from fedpsyau_jax.federated.upload import make_upload

        up = make_upload(state, self.rows.num_samples, self.algorithm)
        return jax.tree.map(lambda x: np.asarray(x)[0], {"params": up.params, "batch_stats": up.batch_stats})


def to_raw(state):
    """A TrainState with its typed PRNG key as uint32 key data (storable as arrays)."""
    import jax

    return state.replace(key=jax.random.key_data(state.key))


def from_raw(raw):
    import jax
    import jax.numpy as jnp

    st = jax.tree.map(jnp.asarray, raw)
    return st.replace(key=jax.random.wrap_key_data(st.key))


def make_site(node_config: Mapping[str, Any], spec: RunSpec, samples=None, name=None, partition_id=None) -> Site:
    """The site of ``node_config`` (or of explicitly given own ``samples``)."""
    from fedpsyau_jax.federated.flower.settings import build_local_trainer
    from fedpsyau_jax.federated.runner import plan_rows
    from fedpsyau_jax.training.batching import device_data

    if samples is None:
        name, partition_id, samples = load_site_samples(node_config, spec)
    if samples.num_classes != spec.num_classes:
        raise ValueError(
            f"site {name}: its data has {samples.num_classes} classes, the run expects num-classes={spec.num_classes}"
        )
    model, tx, algorithm = build(spec)
    trainer = build_local_trainer(spec, model, tx)
    rows = plan_rows(
        samples, [(name, np.arange(len(samples)))], [spec.seed], spec.split, spec.settings, client_ids=[partition_id]
    )
    betas_all = spec.settings.train.betas()  # β of every global epoch (rounds·local_epochs)
    return Site(
        name=name,
        partition_id=int(partition_id),
        spec=spec,
        samples=samples,
        model=model,
        tx=tx,
        algorithm=algorithm,
        trainer=trainer,
        rows=rows,
        data=device_data(samples),
        betas_all=np.asarray(betas_all),
    )
