"""Choose training settings on validation subjects carved from training data only.

    python scripts/select_settings.py --config=configs/megc2019_composite_loso.py \
        --workdir=runs/select_megc --grid "train.learning_rate=3e-4,1e-3" \
        --grid "model.roi_source=flow128,flow28"

Every combination of the ``--grid`` values runs the config with
``protocol.kind=inner_val`` (outer test subjects dropped entirely; see
``training.protocols.inner_validation_folds``), no final-model export, each in its own
sub-folder of --workdir (resumable: a finished candidate is read back, a partial one
continues). Prints and writes ``selection.md`` / ``selection.json``: pooled validation
UF1, UAR and mean negative log-likelihood of the true class per candidate, and the best
one by UF1, ties broken by UAR, then by the lower NLL (a proper score, not discrete: on
a validation set of ~70 samples two candidates can share a confusion matrix). Extra
fixed overrides go in ``--config.key=value`` as for ``fedpsyau train``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from fedpsyau_jax.training.report import run_predictions
from fedpsyau_jax.training.train_run import train
from fedpsyau_jax.core.atomic_files import write_json_atomic
from fedpsyau_jax.config_loading import load_config, split_config_flags


def validation_nll(run: Path) -> float:
    """Mean −log p(true class) over the run's validation predictions."""
    import numpy as np

    _, samples, _, preds = run_predictions(run)
    y = np.concatenate([samples.label[p["test_idx"]] for p in preds])
    prob = np.concatenate([p["prob"] for p in preds])
    return float(-np.log(np.clip(prob[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest, path, fixed = split_config_flags(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(rest)
    if path is None:
        ap.error("--config=FILE is required")
    axes = []
    for g in args.grid:
        key, values = g.split("=", 1)
        axes.append([(key, v) for v in values.split(",")])
    base = fixed + ["protocol.kind=inner_val", "export.final_model=none"]
    load_config(path, base + [f"{k}={v}" for k, v in (a[0] for a in axes)])  # check every key first
    rows = []
    for combo in itertools.product(*axes) if axes else [()]:
        name = "_".join(f"{k.split('.')[-1]}-{v}" for k, v in combo) or "base"
        cfg = load_config(path, base + [f"{k}={v}" for k, v in combo])
        summary = train(cfg, Path(args.workdir) / name, show_progress=not args.no_progress, verbose=False)
        p = summary["pooled"]
        rows.append(
            {
                "candidate": dict(combo),
                "name": name,
                "uf1": p["uf1"],
                "uar": p["uar"],
                "nll": validation_nll(Path(args.workdir) / name),
                "folds": list(summary["per_fold"]),
                "wall_s": summary.get("wall_seconds"),
            }
        )
        print(f"{name}: validation UF1 {p['uf1']:.4f} UAR {p['uar']:.4f} NLL {rows[-1]['nll']:.4f}", flush=True)
    best = max(rows, key=lambda r: (round(r["uf1"], 10), round(r["uar"], 10), -r["nll"]))
    lines = ["| candidate | val UF1 | val UAR | val NLL |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['uf1']:.4f} | {r['uar']:.4f} | {r['nll']:.4f} |" for r in rows]
    lines.append(f"\nbest (UF1, then UAR, then lower NLL): {best['name']}")
    out = Path(args.workdir)
    write_json_atomic(out / "selection.json", {"config": path, "fixed": base, "rows": rows, "best": best})
    (out / "selection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
