"""Summaries, tables and figures of federated results (host side, numpy + matplotlib).

Input: {split: {algorithm: [chunk result dicts of ``runner.run_federation``]}}.
Per split, algorithm and client: mean ± std over repeat seeds of the per-client UF1
and UAR (paper protocol), for the ``deployed`` model (headline) and the ``personal``
model after the last local training; plus the mean over clients (computed per seed,
then mean ± std over seeds) and the training loss per round (mean over seeds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _mean_std(values) -> dict:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=0)), "n": int(len(v))}


def summarise(results: dict, cfg=None) -> dict:
    out: dict[str, Any] = {"splits": {}}
    if cfg is not None:
        out["config"] = {
            "name": cfg.get("name", ""),
            "rounds": int(cfg.fl.rounds),
            "local_epochs": int(cfg.fl.local_epochs),
            "mu": float(cfg.fl.mu),
            "theta": float(cfg.fl.theta),
            "lr": float(cfg.train.learning_rate),
            "batch_size": int(cfg.train.batch_size),
            "seeds": [int(s) for s in cfg.protocol.seeds],
            "seeds_by_split": {k: [int(x) for x in v] for k, v in (cfg.protocol.get("seeds_by_split") or {}).items()},
        }
    for split, by_algo in results.items():
        s_out = {}
        for algo, parts in by_algo.items():
            clients = parts[0]["clients"]
            k = len(clients)
            entry = {
                "clients": clients,
                "seeds": [],
                "per_seed": [],
                "loss_per_round": None,
                "train_seconds": float(sum(p["train_seconds"] for p in parts)),
            }
            losses = []
            for kind in ("deployed", "personal"):
                per_client: dict[str, dict[str, list]] = {c: {"uf1": [], "uar": []} for c in clients}
                overall: dict[str, list] = {"uf1": [], "uar": []}
                overall_seeds = []
                for p in parts:
                    for si, seed in enumerate(p["seeds"]):
                        overall_seeds.append(int(seed))
                        rows = p[kind][si * k : (si + 1) * k]
                        for c, r in zip(clients, rows):
                            per_client[c]["uf1"].append(r["uf1"])
                            per_client[c]["uar"].append(r["uar"])
                        overall["uf1"].append(np.nanmean([r["uf1"] for r in rows]))
                        overall["uar"].append(np.nanmean([r["uar"] for r in rows]))
                entry[kind] = {
                    "per_client": {c: {m: _mean_std(v[m]) for m in ("uf1", "uar")} for c, v in per_client.items()},
                    "mean_over_clients": {m: _mean_std(overall[m]) for m in ("uf1", "uar")},
                    # per seed, for the paired comparison (same seed = same partition,
                    # split, initialisation and batch order for every algorithm)
                    "mean_over_clients_per_seed": {
                        "seeds": overall_seeds,
                        **{m: [float(x) for x in overall[m]] for m in ("uf1", "uar")},
                    },
                    "raw": {c: per_client[c] for c in clients},
                }
            for p in parts:
                entry["seeds"] += p["seeds"]
                lp = np.asarray(p["loss_per_round"], np.float64)  # (rounds, C)
                losses.append(lp.reshape(lp.shape[0], len(p["seeds"]), k).transpose(1, 0, 2))
                entry["per_seed"].append({"seeds": p["seeds"], "num_train": p["num_train"], "num_test": p["num_test"]})
            curves = [
                np.asarray(p["deployed_uf1_per_round"], np.float64) for p in parts if "deployed_uf1_per_round" in p
            ]
            if curves and len(curves) == len(parts):
                cv = np.concatenate(
                    [c.reshape(c.shape[0], len(p["seeds"]), k).transpose(1, 0, 2) for c, p in zip(curves, parts)]
                )  # (seeds, rounds, K)
                entry["deployed_uf1_per_round"] = {
                    "mean": np.nanmean(cv, axis=0).tolist(),
                    "std": np.nanstd(cv, axis=0).tolist(),
                }
            all_loss = np.concatenate(losses)  # (seeds, rounds, K)
            entry["loss_per_round"] = np.nanmean(all_loss, axis=0).tolist()  # (rounds, K)
            s_out[algo] = entry
        out["splits"][split] = s_out
    out["paired"] = paired_comparison(out)
    return out


def paired_difference(a, b, replicates: int = 10000, seed: int = 0) -> dict:
    """Paired a − b over repeats (seeds): mean, 95 % percentile-bootstrap interval of the
    mean difference (resampling seeds), the Wilcoxon signed-rank two-sided p-value,
    whether the interval excludes zero, and ``significant``: it does AND p < 0.05.

    Both are needed with few seeds: the bootstrap interval of 2–4 differences of one
    sign always excludes zero, while the exact signed-rank p can never go below
    2 / 2**n (0.0625 at n = 5), so fewer than 6 seeds can never be ``significant``.
    NaN pairs (a client without test data) dropped."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = len(d)
    if n == 0:
        return {
            "n": 0,
            "mean": float("nan"),
            "ci": [float("nan")] * 2,
            "p_wilcoxon": float("nan"),
            "excludes_zero": False,
            "significant": False,
            "wins": 0,
            "losses": 0,
        }
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, n, size=(replicates, n))].mean(axis=1)
    lo, hi = (float(x) for x in np.percentile(means, [2.5, 97.5]))
    p = float("nan")
    if n >= 2 and np.any(d != 0):
        from scipy.stats import wilcoxon

        p = float(wilcoxon(d).pvalue)
    excludes = bool(lo > 0 or hi < 0)
    return {
        "n": int(n),
        "mean": float(d.mean()),
        "ci": [lo, hi],
        "p_wilcoxon": p,
        "excludes_zero": excludes,
        "significant": bool(excludes and p < 0.05),
        "wins": int(np.sum(d > 0)),
        "losses": int(np.sum(d < 0)),
    }


def paired_comparison(summary: dict, reference: str = "pfedprox") -> dict:
    """{split: {kind: {metric: {other algorithm: paired_difference(reference − other)}}}}
    on the mean-over-clients score of each seed, for every split that ran ``reference``."""
    out: dict[str, dict] = {}
    for split, by_algo in summary["splits"].items():
        if reference not in by_algo:
            continue
        out[split] = {}
        for kind in ("deployed", "personal"):
            ref = by_algo[reference][kind]["mean_over_clients_per_seed"]
            out[split][kind] = {}
            for metric in ("uf1", "uar"):
                res = {}
                for algo, e in by_algo.items():
                    if algo == reference:
                        continue
                    other = e[kind]["mean_over_clients_per_seed"]
                    common = [s for s in ref["seeds"] if s in other["seeds"]]
                    a = [ref[metric][ref["seeds"].index(s)] for s in common]
                    b = [other[metric][other["seeds"].index(s)] for s in common]
                    res[algo] = paired_difference(a, b)
                out[split][kind][metric] = res
    return out


def _fmt(ms: dict) -> str:
    return f"{ms['mean']:.3f} ± {ms['std']:.3f}" if ms["n"] else "n/a"


def write_markdown(summary: dict, kind: str = "deployed", header: bool = True) -> str:
    """Per-client and mean-over-clients tables of one model kind (``deployed`` or
    ``personal``) and the paired P-FedProx comparison; ``header``: the config line."""
    lines = []
    cfg = summary.get("config", {})
    if cfg and header:
        lines.append(
            f"Config {cfg.get('name', '')}: {cfg['rounds']} rounds × {cfg['local_epochs']} "
            f"local epoch(s), lr {cfg['lr']}, batch {cfg['batch_size']}, μ {cfg['mu']}, "
            f"θ {cfg['theta']}, seeds {cfg['seeds']}"
            + (f" (per split: {cfg['seeds_by_split']})" if cfg.get("seeds_by_split") else "")
            + "."
        )
        lines.append("")
    for split, by_algo in summary["splits"].items():
        clients = next(iter(by_algo.values()))["clients"]
        for metric in ("uf1", "uar"):
            lines.append(f"**split `{split}` — {metric.upper()} ({kind} model), mean ± std over seeds**")
            lines.append("")
            lines.append("| algorithm | " + " | ".join(clients) + " | mean over clients |")
            lines.append("|---|" + "---|" * (len(clients) + 1))
            for algo, e in by_algo.items():
                cells = [_fmt(e[kind]["per_client"][c][metric]) for c in clients]
                cells.append(_fmt(e[kind]["mean_over_clients"][metric]))
                lines.append(f"| {algo} | " + " | ".join(cells) + " |")
            lines.append("")
        pair = summary.get("paired", {}).get(split, {}).get(kind)
        if pair:
            lines.append(
                f"**split `{split}` — paired over seeds, pfedprox − other ({kind} model, "
                "mean over clients; 95 % bootstrap interval over seeds, Wilcoxon p)**"
            )
            lines.append("")
            lines.append("| other | ΔUF1 | ΔUAR | seeds pfedprox better / worse (UF1) |")
            lines.append("|---|---|---|---|")
            for algo, d in pair["uf1"].items():
                u = pair["uar"][algo]
                cell = lambda x: (
                    f"{x['mean']:+.3f} [{x['ci'][0]:+.3f}, {x['ci'][1]:+.3f}], "
                    f"p {x['p_wilcoxon']:.3g}" + (" *" if x.get("significant") else "")
                )
                lines.append(f"| {algo} | {cell(d)} | {cell(u)} | {d['wins']} / {d['losses']} |")
            lines.append("")
            lines.append(
                f"(* the interval excludes zero and Wilcoxon p < 0.05; {d['n']} seeds paired, "
                f"smallest possible p {2 / 2 ** d['n']:.3g})"
                if d["n"]
                else "(no seeds paired)"
            )
            lines.append("")
    return "\n".join(lines)


def write_figures(summary: dict, workdir) -> list[Path]:
    """``fl_<split>.png``: per-client UF1 bars per algorithm (± std) and loss per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for split, by_algo in summary["splits"].items():
        algos = list(by_algo)
        clients = by_algo[algos[0]]["clients"]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        width = 0.8 / len(algos)
        x = np.arange(len(clients))
        for i, a in enumerate(algos):
            pc = by_algo[a]["deployed"]["per_client"]
            ax1.bar(
                x + i * width,
                [pc[c]["uf1"]["mean"] for c in clients],
                width,
                yerr=[pc[c]["uf1"]["std"] for c in clients],
                capsize=2,
                label=a,
            )
            loss = np.asarray(by_algo[a]["loss_per_round"]).mean(axis=1)
            ax2.plot(np.arange(1, len(loss) + 1), loss, marker="o", label=a)
        ax1.set_xticks(x + 0.4 - width / 2, clients)
        ax1.set_ylabel("UF1 (mean ± std over seeds)")
        ax1.set_title(f"per-client UF1, split {split}")
        ax1.legend(fontsize=8)
        ax2.set_xticks(np.arange(1, len(loss) + 1))
        ax2.set_xlabel("round")
        ax2.set_ylabel("training loss (mean over clients, seeds)")
        ax2.set_title("training loss per round")
        ax2.legend(fontsize=8)
        fig.tight_layout()
        path = Path(workdir) / f"fl_{split}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
        if all("deployed_uf1_per_round" in by_algo[a] for a in algos):
            paths.append(_convergence_figure(split, by_algo, algos, clients, workdir, plt))
    return paths


def _convergence_figure(split, by_algo, algos, clients, workdir, plt) -> Path:
    """Fig. 5 style: per client, the deployed model's test UF1 after every round
    (mean ± std over seeds) for each algorithm. For reading convergence only; results
    are the last round's."""
    fig, axes = plt.subplots(1, len(clients), figsize=(4 * len(clients), 3.4), squeeze=False)
    for j, (ax, c) in enumerate(zip(axes[0], clients)):
        for a in algos:
            cur = by_algo[a]["deployed_uf1_per_round"]
            m, sd = np.asarray(cur["mean"])[:, j], np.asarray(cur["std"])[:, j]
            r = np.arange(1, len(m) + 1)
            ax.plot(r, m, marker=".", label=a)
            ax.fill_between(r, m - sd, m + sd, alpha=0.15)
        ax.set_title(f"{c} ({split} split)")
        ax.set_xlabel("round")
        ax.set_ylabel("test UF1, deployed model")
        ax.set_ylim(0, 1)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(workdir) / f"fl_{split}_convergence.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
