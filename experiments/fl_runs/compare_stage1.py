"""Stage 1 in federation against stage 1 at each site alone (or any two runs of one
algorithm), per seed: the deployed AU heads on the sites' held-out subjects, the sites'
held-out emotion UF1 and the new site's UF1 before adaptation (k = 0).

    python experiments/fl_runs/compare_stage1.py \\
        experiments/fl_runs/fl_new_site_smic_stage1 experiments/fl_runs/fl_new_site_smic_stage1_local

Each argument is a ``fedpsyau federate`` workdir or its committed copy; the scores come
from ``<split>/<algorithm>/seeds_*/result.json``. Prints a Markdown table: one row per
run (means over its seeds; AU AUC and sites' UF1 are means over the sites), then the
second run minus the first on every seed both have.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

COLUMNS = ("AU AUC, GAT head", "AU AUC, AFE head", "sites' held-out UF1", "new site UF1 (k = 0)")


def scores(run: Path, split: str, algorithm: str) -> dict[int, tuple[float, float, float, float]]:
    """{seed: (GAT AUC, AFE AUC, sites' UF1, new-site UF1)} of one run."""
    out = {}
    for path in sorted((run / split / algorithm).glob("seeds_*/result.json")):
        r = json.loads(path.read_text())
        for i, seed in enumerate(r["seeds"]):
            # one result file holds one or more seeds; its per-client lists are per seed when
            # there are several (a chunk of one seed stores them flat)
            def pick(x, i=i):
                return x[i] if len(r["seeds"]) > 1 else x

            gat = np.mean([c["mean_auc"] for c in pick(r["deployed_au"]["gat"])])
            afe = np.mean([c["mean_auc"] for c in pick(r["deployed_au"]["afe"])])
            uf1 = np.mean([c["uf1"] for c in pick(r["deployed"])])
            new = r["new_site"]["start"][i]["uf1"] if r.get("new_site") else float("nan")
            out[int(seed)] = (float(gat), float(afe), float(uf1), float(new))
    if not out:
        raise SystemExit(f"{run}: no {split}/{algorithm}/seeds_*/result.json")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs=2, type=Path, help="two federate workdirs (first: the reference)")
    p.add_argument("--split", default="subject")
    p.add_argument("--algorithm", default="fedavg")
    args = p.parse_args(argv)
    a, b = (scores(r, args.split, args.algorithm) for r in args.runs)
    print("| run | seeds | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for run, s in zip(args.runs, (a, b)):
        means = np.mean(list(s.values()), axis=0)
        print(f"| `{run.name}` | {len(s)} | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    common = sorted(set(a) & set(b))
    diffs = [np.subtract(b[s], a[s]) for s in common]
    cells = [", ".join(f"{d[j]:+.3f}" for d in diffs) for j in range(len(COLUMNS))]
    print(f"| second − first, per seed ({', '.join(map(str, common))}) | {len(common)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
