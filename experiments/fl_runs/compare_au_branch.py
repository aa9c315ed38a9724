"""The federated table with the AU branch that learns against the committed run without it.

    python experiments/fl_runs/compare_au_branch.py \\
        experiments/fl_runs/fl_recipe_by_dataset experiments/fl_runs/fl_recipe_fixed_subject --split subject

Both arguments are ``fedpsyau federate`` workdirs (or their committed copies: each needs
``results.json``; the AU scores come from ``<split>/<algorithm>/seeds_*/result.json``).
Per algorithm: deployed UF1 (mean over clients, mean ± sd over seeds) before and after,
the paired after − before difference over the common seeds (bootstrap interval, Wilcoxon
p), the deployed AU heads' AUC on the clients' held-out test subjects (mean over clients
and seeds, GAT and AFE heads), and P-FedProx − each other algorithm after the fix.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fedpsyau_jax.federated.report import paired_difference

ALGORITHMS = ("local", "fedavg", "fedprox", "fedrep", "pfedprox")
NAMES = {"local": "Local", "fedavg": "FedAvg", "fedprox": "FedProx", "fedrep": "FedRep", "pfedprox": "P-FedProx"}


def per_seed(run: Path, split: str, algo: str, metric: str = "uf1") -> dict[int, float]:
    """{seed: deployed score, mean over clients} of one algorithm."""
    e = json.loads((run / "results.json").read_text())["splits"][split][algo]["deployed"]["mean_over_clients_per_seed"]
    return dict(zip(e["seeds"], e[metric]))


def au_auc(run: Path, split: str, algo: str, head: str) -> list[float]:
    """Per seed: the deployed AU head's AUC, mean over the clients with scored AUs."""
    out = []
    for res in sorted((run / split / algo).glob("seeds_*/result.json")):
        r = json.loads(res.read_text())
        au = (r.get("deployed_au") or {}).get(head)
        if au:  # one result.json holds one seed chunk; its clients' scores
            out.append(float(np.nanmean([c["mean_auc"] for c in au if c and c.get("aus_scored")])))
    return out


def fmt_diff(d: dict) -> str:
    lo, hi = d["ci"]
    return f"{d['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}], p {d['p_wilcoxon']:.2g}, {d['wins']}/{d['n']} up"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path, help="run without the AU-branch fix")
    ap.add_argument("after", type=Path, help="run with it")
    ap.add_argument("--split", default="subject")
    a = ap.parse_args(argv)
    header = ("| algorithm | UF1 before | UF1 after | after − before (paired by seed) | AU AUC after, GAT / AFE head "
              "| AU AUC before, GAT | P-FedProx − this, after |")
    rows = [header, "|---|---|---|---|---|---|---|"]
    ref = per_seed(a.after, a.split, "pfedprox")
    aucs = []
    for algo in ALGORITHMS:
        b, f = per_seed(a.before, a.split, algo), per_seed(a.after, a.split, algo)
        common = sorted(set(b) & set(f))
        d = paired_difference([f[s] for s in common], [b[s] for s in common])
        gat, afe = au_auc(a.after, a.split, algo, "gat"), au_auc(a.after, a.split, algo, "afe")
        old = au_auc(a.before, a.split, algo, "gat")
        aucs += gat
        vs = "" if algo == "pfedprox" else fmt_diff(paired_difference([ref[s] for s in common], [f[s] for s in common]))
        ms = lambda v: f"{np.mean(v):.3f} ± {np.std(v):.3f}"  # noqa: E731
        au = f"{np.mean(gat):.3f} / {np.mean(afe):.3f}" if gat else "—"
        rows.append(f"| {NAMES[algo]} | {ms(list(b.values()))} | {ms(list(f.values()))} | {fmt_diff(d)} | {au} "
                    f"| {f'{np.mean(old):.3f}' if old else 'not scored'} | {vs} |")
    print("\n".join(rows))
    print(f"\nAU heads (GAT), mean over algorithms, clients and seeds: {np.mean(aucs):.3f}" if aucs else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
