"""The new-site table and adaptation curve of a ``fl.new_site`` run.

    python experiments/fl_new_site/compare.py runs/fl_new_site/smic [more run folders] \
        [--out experiments/fl_new_site/results.md] [--plot experiments/fl_new_site/adaptation.png]

For every run folder (a ``fedpsyau federate`` workdir of a config with ``fl.new_site``)
and algorithm: the federating sites' deployed UF1 and AU-head AUC on their held-out
subjects, the new site's UF1 with the federation's model as it is (k = 0, all its
samples), and after adaptation with k labelled subjects: mean UF1 on its other subjects
with a 95 % bootstrap interval over the (seed, draw) runs, and the paired gain over the
start model on the same subjects. Means over seeds; nothing here chooses a setting.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ORDER = ("local", "fedavg", "fedprox", "fedrep", "pfedprox")


def _ci(values, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, len(v), (n, len(v)))].mean(1)
    return float(v.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def _fmt(m, lo, hi, signed=False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(m)} [{f.format(lo)}, {f.format(hi)}]"


def load(run: Path) -> dict[str, list[dict]]:
    """{algorithm: [result.json of every seed chunk]} of a federate workdir."""
    out: dict[str, list[dict]] = {}
    for f in sorted(run.glob("*/*/seeds_*/result.json")):
        res = json.loads(f.read_text())
        if "new_site" in res:
            out.setdefault(res["algorithm"], []).append(res)
    return dict(sorted(out.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else 99))


def tables(run: Path) -> tuple[str, dict]:
    algos = load(run)
    if not algos:
        raise SystemExit(f"{run}: no finished chunk with a new site")
    first = next(iter(algos.values()))[0]
    ns_name = first["new_site"]["name"]
    ks = sorted({int(k) for parts in algos.values() for p in parts for k in p["new_site"]["adapt"]})
    lines = [
        (
            f"### {run.name}: new site {ns_name} ({first['new_site']['subjects']} subjects, "
            f"{first['new_site']['samples']} samples); federating sites {', '.join(first['clients'])}"
        ),
        "",
        "| algorithm | seeds | sites' held-out subjects UF1 | AU AUC (GAT head) there | new site, unseen (k = 0) "
        + "".join(f"| k = {k}: UF1 [95 %] | gain over k = 0 [95 %] " for k in ks)
        + "|",
        "|---|---|---|---|---" + "|---|---" * len(ks) + "|",
    ]
    curve = {}
    for algo, parts in algos.items():
        seeds = [s for p in parts for s in p["seeds"]]
        site_uf1 = [np.nanmean([d["uf1"] for d in p["deployed"]]) for p in parts]
        au = [np.nanmean([d["mean_auc"] for d in p["deployed_au"]["gat"]]) for p in parts if "deployed_au" in p]
        k0 = [d["uf1"] for p in parts for d in p["new_site"]["start"]]
        row = (
            f"| {algo} | {len(seeds)} | {np.mean(site_uf1):.3f} ± {np.std(site_uf1):.3f} | "
            + (f"{np.mean(au):.3f}" if au else "—")
            + f" | {np.mean(k0):.3f} ± {np.std(k0):.3f} "
        )
        curve[algo] = {0: _ci(k0)}
        for k in ks:
            runs = [r for p in parts for r in p["new_site"]["adapt"].get(str(k), [])]
            a = _ci([r["adapted"]["uf1"] for r in runs])
            g = _ci([r["adapted"]["uf1"] - r["start"]["uf1"] for r in runs])
            curve[algo][k] = a
            row += f"| {_fmt(*a)} | {_fmt(*g, signed=True)} "
        lines.append(row + "|")
    lines += [
        "",
        (
            "Sites' columns: mean over the federating sites of the deployed model on their held-out subjects, mean ± sd "
            "over seeds. k = 0: the federation's mean model on every new-site sample. k > 0: on the subjects not "
            "labelled; intervals bootstrap the (seed, draw) runs; gain = adapted − start model on the same subjects."
        ),
    ]
    return "\n".join(lines), curve


def plot(curves: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
    for ax, (name, curve) in zip(axes[0], curves.items()):
        for algo, pts in curve.items():
            ks = sorted(pts)
            m = np.array([pts[k][0] for k in ks])
            lo = np.array([pts[k][1] for k in ks])
            hi = np.array([pts[k][2] for k in ks])
            ax.plot(ks, m, marker="o", label=algo)
            ax.fill_between(ks, lo, hi, alpha=0.15)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(sorted({k for c in curve.values() for k in c}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("labelled subjects of the new site (k)")
        ax.set_ylabel("UF1 on its other subjects")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--plot", type=Path)
    args = p.parse_args(argv)
    texts, curves = [], {}
    for run in args.runs:
        text, curve = tables(run)
        texts.append(text)
        curves[run.name] = curve
    text = "\n\n".join(texts)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.plot:
        plot(curves, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
