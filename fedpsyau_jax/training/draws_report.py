"""Arms of a study, each trained for several draws (seeds), compared as a whole.

One training run is one draw: its initialisation, dropout, batch order and inner
splits follow its seed, and one arm can score 0.05 UF1 above or below itself from one
seed to the next. ``draws_markdown`` reads every finished run of every arm and reports,
per arm, the mean pooled UF1/UAR over its draws with an interval over draws AND
subjects (``metrics.draws_bootstrap``), the spread of single draws, the seed ensemble
(probabilities averaged over the draws), and per source dataset; then every arm minus a
reference arm minus every other, paired by seed.

    python experiments/cross_database/compare.py      # the cross-database study
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from fedpsyau_jax.core.errors import InputFileError
from fedpsyau_jax.training.metrics import draws_bootstrap, subject_bootstrap
from fedpsyau_jax.training.report import run_predictions


@dataclasses.dataclass(frozen=True)
class ArmDraws:
    """The pooled test predictions of one arm's draws on the same samples.

    seeds: (D,) each draw's seed. idx: (n,) tested sample indices (sorted).
    prob: (D, n, C) emotion probabilities; pred: (D, n) predicted classes.
    label, subject, dataset: (n,) of the tested samples. class_names: C names.
    """

    seeds: tuple[int, ...]
    idx: np.ndarray
    prob: np.ndarray
    pred: np.ndarray
    label: np.ndarray
    subject: np.ndarray
    dataset: np.ndarray
    class_names: tuple[str, ...]

    def take(self, seeds) -> ArmDraws:
        rows = [self.seeds.index(s) for s in seeds]
        return dataclasses.replace(self, seeds=tuple(seeds), prob=self.prob[rows], pred=self.pred[rows])


def arm_draws(runs: list[Path]) -> ArmDraws:
    """Read the finished runs of one arm (one per seed). Runs that test other samples
    than the first, or repeat a seed, are an ``InputFileError`` naming the run."""
    seeds, probs, idx0, samples = [], [], None, None
    for run in runs:
        cfg, samples, folds, preds = run_predictions(run)
        idx = np.concatenate([p["test_idx"] for p in preds])
        order = np.argsort(idx)
        if idx0 is None:
            idx0 = idx[order]
        elif not np.array_equal(idx[order], idx0):
            raise InputFileError(f"{run}: tests other samples than {runs[0]} (not the same protocol)")
        seed = int(cfg.seed)
        if seed in seeds:
            raise InputFileError(f"{run}: seed {seed} already read from another run of the same arm")
        seeds.append(seed)
        probs.append(np.concatenate([p["prob"] for p in preds])[order])
    if samples is None or idx0 is None:
        raise InputFileError("an arm needs at least one finished run")
    prob = np.stack(probs)
    return ArmDraws(
        tuple(seeds),
        idx0,
        prob,
        prob.argmax(-1),
        samples.label[idx0],
        samples.subject[idx0],
        samples.dataset[idx0],
        tuple(samples.class_names),
    )


def _ci(s: dict, key: str, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    lo, hi = s[f"{key}_ci95"]
    return f"{f.format(s[key])} [{f.format(lo)}, {f.format(hi)}]"


def arm_scores(arm: ArmDraws, replicates: int = 2000) -> dict:
    """Pooled and per-dataset draw statistics and the seed ensemble of one arm."""
    c = len(arm.class_names)
    out = {"pooled": draws_bootstrap(arm.label, arm.pred, arm.subject, c, replicates)}
    ens = arm.prob.mean(0).argmax(-1)
    out["ensemble"] = subject_bootstrap(arm.label, ens, arm.subject, c, replicates)
    out["per_dataset"] = {
        str(d): draws_bootstrap(
            arm.label[arm.dataset == d], arm.pred[:, arm.dataset == d], arm.subject[arm.dataset == d], c, replicates
        )
        for d in sorted(np.unique(arm.dataset))
    }
    return out


def paired_scores(a: ArmDraws, b: ArmDraws, replicates: int = 2000) -> dict:
    """a − b over the seeds both arms have (paired by seed), pooled and per dataset."""
    common = [s for s in a.seeds if s in b.seeds]
    if not common:
        raise InputFileError("the two arms share no seed: nothing to pair")
    if not np.array_equal(a.idx, b.idx):
        raise InputFileError("the two arms test different samples: nothing to pair")
    a, b = a.take(common), b.take(common)
    c = len(a.class_names)
    out = {"seeds": common, "pooled": draws_bootstrap(a.label, a.pred, a.subject, c, replicates, preds_b=b.pred)}
    out["per_dataset"] = {
        str(d): draws_bootstrap(
            a.label[a.dataset == d],
            a.pred[:, a.dataset == d],
            a.subject[a.dataset == d],
            c,
            replicates,
            preds_b=b.pred[:, a.dataset == d],
        )
        for d in sorted(np.unique(a.dataset))
    }
    return out


def draws_markdown(arms: dict[str, list[Path]], vs: str | None = None, replicates: int = 2000) -> str:
    """The Markdown tables of a study: one row per arm, then ``vs`` minus every other
    arm (positive: ``vs`` scores higher)."""
    loaded = {name: arm_draws(runs) for name, runs in arms.items() if runs}
    if vs is not None and vs not in loaded:
        raise InputFileError(f"reference arm {vs!r} has no finished run")
    scores = {name: arm_scores(arm, replicates) for name, arm in loaded.items()}
    datasets = sorted({d for s in scores.values() for d in s["per_dataset"]})
    out = [
        (
            "| arm | draws | mean UF1 [95 % CI] | mean UAR [95 % CI] | single draws: sd, min–max UF1 "
            f"| seed ensemble UF1 | {' | '.join(f'{d} UF1' for d in datasets)} |"
        ),
        "|---|---|---|---|---|---|" + "---|" * len(datasets),
    ]
    for name, s in scores.items():
        p = s["pooled"]
        per = " | ".join(f"{s['per_dataset'][d]['uf1']:.3f}" if d in s["per_dataset"] else "" for d in datasets)
        out.append(
            f"| {name} | {p['draws']} | {_ci(p, 'uf1')} | {_ci(p, 'uar')} | {p['uf1_sd']:.3f}, "
            f"{p['uf1_min']:.3f}–{p['uf1_max']:.3f} | {_ci(s['ensemble'], 'uf1')} | {per} |"
        )
    if vs is not None:
        out += [
            "",
            (
                f"| paired by seed | draws | ΔUF1 [95 % CI] | ΔUAR [95 % CI] | draws with ΔUF1 > 0 "
                f"| {' | '.join(f'{d} ΔUF1 [95 % CI]' for d in datasets)} |"
            ),
            "|---|---|---|---|---|" + "---|" * len(datasets),
        ]
        for name, arm in loaded.items():
            if name == vs:
                continue
            d = paired_scores(loaded[vs], arm, replicates)
            p = d["pooled"]
            per = " | ".join(_ci(d["per_dataset"][x], "uf1", True) if x in d["per_dataset"] else "" for x in datasets)
            out.append(
                f"| {vs} − {name} | {p['draws']} | {_ci(p, 'uf1', True)} | {_ci(p, 'uar', True)} | "
                f"{p['share_above_zero'] * p['draws']:.0f}/{p['draws']} | {per} |"
            )
    out += [
        "",
        (
            f"Intervals: {replicates} two-stage bootstrap replicates (subjects, then draws, each with "
            "replacement); single draws are each seed's own pooled score."
        ),
    ]
    return "\n".join(out)
