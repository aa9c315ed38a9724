"""Utility–privacy curve: mean per-client UF1 of the deployed model against ε.

    python scripts/dp_curve.py --config=configs/fl_megc2019_dp_curve.py --out=runs/dp_curve \
        [--partitions by_dataset per_subject] [--config.protocol.seeds="(0,)"]

For every partition of ``curve.partitions`` and every z of ``curve.noise_multipliers``
(or the partition's own ``noise_multipliers``; z = 0: clipping only, ε = ∞) plus one
run without DP, with the partition's own ``seeds`` where it names them, runs the federated experiment
(``fedpsyau_jax.federated.experiment.federate``) in ``<out>/<partition>/<z_…|no_dp>``;
finished chunks are reused, so an interrupted call resumes. Writes
``<out>/dp_curve.json`` (per point: ε, mean ± std over seeds of the mean per-client UF1
and UAR, deployed and personal, clip fraction, seconds), ``<out>/dp_curve.md`` and
``<out>/dp_curve.png``.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path



#: the clip bound of a "sampled" baseline: no update of this model comes near it
UNCLIPPED = 1e9


def point_config(cfg, part: dict, z: float | None):
    c = copy.deepcopy(cfg)
    c.partition.scheme = str(part["scheme"])
    c.partition.num_clients = int(part["num_clients"])
    c.fl.rounds = int(part["rounds"])
    c.fl.local_epochs = int(part["local_epochs"])
    c.train.batch_size = int(part["batch_size"])
    if "seeds" in part:                       # a partition may run fewer seeds (compute budget)
        c.protocol.seeds = tuple(int(x) for x in part["seeds"])
    sampled_baseline = z is None and part.get("baseline", "plain") == "sampled"
    c.fl.dp.enabled = z is not None or sampled_baseline
    if c.fl.dp.enabled:
        # The "sampled" baseline: the DP points' client sampling and fixed divisor, with
        # no clipping and no noise. Without DP every one of the K clients would train
        # every round: another protocol (4× the round time at 68 people, measured).
        c.fl.dp.noise_multiplier = 0.0 if sampled_baseline else float(z)
        c.fl.dp.allow_no_noise = c.fl.dp.noise_multiplier == 0.0
        if sampled_baseline:
            c.fl.dp.clip_norm = UNCLIPPED
        c.fl.dp.sampling = str(part["sampling"])
        c.fl.dp.per_round = int(part["per_round"])
        c.fl.dp.rate = float(part.get("rate", 1.0))
    return c


def curve_settings(cfg, part: dict) -> list[tuple[str, float | None]]:
    """The (name, z) points of one partition: first one run without DP (z None, the
    baseline every other point is read against, so an interrupted sweep has it), then
    its own ``noise_multipliers`` if it has them, else the curve's."""
    zs = part.get("noise_multipliers", cfg.curve.noise_multipliers)
    return [("no_dp", None)] + [(f"z_{float(z):g}", float(z)) for z in zs]


def summarise_point(summary: dict, workdir: Path) -> dict:
    import numpy as np
    out = {"epsilon": summary.get("dp", {}).get("epsilon", math.inf), "algorithms": {}}
    for split, by_algo in summary["splits"].items():
        for algo, entry in by_algo.items():
            rec = {k: entry[k]["mean_over_clients"] for k in ("deployed", "personal")}
            clip, secs = [], []
            for res_file in (workdir / split / algo).glob("seeds_*/result.json"):
                r = json.loads(res_file.read_text(encoding="utf-8"))
                clip += r.get("clip_fraction_per_round", [])
                secs.append(r["train_seconds"])
            rec["clip_fraction"] = float(np.mean(clip)) if clip else None
            rec["train_seconds"] = float(np.sum(secs))
            out["algorithms"][f"{split}/{algo}"] = rec
    return out


def plot_partition(ax, part: str, pts: dict) -> None:
    """One panel: UF1 (mean ± std over seeds) against ε on a log axis for the noisy
    points, each labelled with its z; then, right of a break, clipping only (z = 0,
    ε = ∞) and no DP as separate markers, so the cost of clipping and of noise read apart."""
    finite = {n: p for n, p in pts.items() if math.isfinite(p["epsilon"])}
    eps = [p["epsilon"] for p in finite.values()] or [1.0]
    x_clip, x_none = max(eps) * 4, max(eps) * 12
    algos = sorted({a for p in pts.values() for a in p["algorithms"]})
    for k, algo in enumerate(algos):
        color = f"C{k}"
        row = sorted(((p["epsilon"], n, p["algorithms"][algo]["deployed"]["uf1"]) for n, p in finite.items()
                      if algo in p["algorithms"]), key=lambda t: t[0])
        if row:
            ax.errorbar([r[0] for r in row], [r[2]["mean"] for r in row], yerr=[r[2]["std"] for r in row],
                        marker="o", capsize=3, color=color, label=algo.split("/")[-1])
            if k == 0:                         # each noisy point's z, along the top edge
                for e, n, _ in row:
                    ax.text(e, 0.98, n.replace("z_", "z = "), transform=ax.get_xaxis_transform(),
                            ha="center", va="top", fontsize=7, color="grey")
        for name, x, marker in (("z_0", x_clip, "s"), ("no_dp", x_none, "*")):
            if name in pts and algo in pts[name]["algorithms"]:
                d = pts[name]["algorithms"][algo]["deployed"]["uf1"]
                ax.errorbar([x], [d["mean"]], yerr=[d["std"]], marker=marker, ms=9, capsize=3,
                            color=color, ls="none")
    ax.set_xscale("log")
    ax.axvline(max(eps) * 2, color="grey", lw=0.6, ls=":")
    ticks = sorted(set(ax.get_xticks()) & set(10.0 ** k for k in range(-2, 8)))
    ticks = [t for t in ticks if min(eps) / 3 <= t <= max(eps) * 1.5]
    ax.set_xticks(ticks + [x_clip, x_none])
    ax.set_xticklabels([f"{t:g}" for t in ticks] + ["clip\nonly", "no\nDP"], fontsize=8)
    ax.set_xlim(min(eps) / 2, x_none * 2)
    ax.set_xlabel("ε (δ = 1e-5) after the last round; right of the dotted line ε = ∞")
    ax.set_ylabel("mean per-client UF1, deployed model")
    ax.set_title(part)
    ax.legend(fontsize=8)


def write_outputs(points: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fedpsyau_jax.core.atomic_files import write_json_atomic
    write_json_atomic(out / "dp_curve.json", points)
    lines = ["| partition | setting | ε | algorithm | deployed UF1 | deployed UAR | personal UF1 | clip fraction |",
             "|---|---|---|---|---|---|---|---|"]
    parts = list(points)
    fig, axes = plt.subplots(1, len(parts), figsize=(5.5 * len(parts), 4.2), squeeze=False)
    for ax, part in zip(axes[0], parts):
        plot_partition(ax, part, points[part])
        for name, p in points[part].items():
            for algo, rec in p["algorithms"].items():
                dep, per = rec["deployed"], rec["personal"]
                clip = "" if rec["clip_fraction"] is None else f"{rec['clip_fraction']:.2f}"
                lines.append(f"| {part} | {name} | {p['epsilon']:.3g} | {algo} | "
                             f"{dep['uf1']['mean']:.3f} ± {dep['uf1']['std']:.3f} | "
                             f"{dep['uar']['mean']:.3f} ± {dep['uar']['std']:.3f} | "
                             f"{per['uf1']['mean']:.3f} ± {per['uf1']['std']:.3f} | {clip} |")
    fig.tight_layout()
    fig.savefig(out / "dp_curve.png", dpi=110)
    plt.close(fig)
    (out / "dp_curve.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    from fedpsyau_jax.compile_cache import enable_compilation_cache
    from fedpsyau_jax.config_loading import load_config, split_config_flags
    enable_compilation_cache()
    from fedpsyau_jax.core.errors import UserError
    from fedpsyau_jax.federated.experiment import federate
    import gc
    import jax

    argv = list(sys.argv[1:] if argv is None else argv)
    rest, config_path, overrides = split_config_flags(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--partitions", nargs="*", default=None)
    ap.add_argument("--points", nargs="*", default=None,
                    help="run only these points (e.g. no_dp z_1); the others' finished results are kept")
    a = ap.parse_args(rest)
    try:
        if config_path is None:
            raise UserError("--config=FILE is required")
        cfg = load_config(config_path, overrides)
        parts = a.partitions or list(cfg.curve.partitions)
        unknown = [p for p in parts if p not in cfg.curve.partitions]
        if unknown:
            raise UserError(f"unknown partition(s) {', '.join(unknown)}; the config has "
                            f"{', '.join(cfg.curve.partitions)}")
        # points of partitions not run by this call (an earlier call's) stay in the outputs
        prev = a.out / "dp_curve.json"
        points: dict = json.loads(prev.read_text(encoding="utf-8")) if prev.exists() else {}
        if a.points is not None:
            known = {n for part in parts for n, _ in curve_settings(cfg, dict(cfg.curve.partitions[part]))}
            bad = sorted(set(a.points) - known)
            if bad:
                raise UserError(f"unknown point(s) {', '.join(bad)}; {', '.join(parts)} "
                                f"has {', '.join(sorted(known))}")
        for part in parts:
            points[part] = {}
            spec = dict(cfg.curve.partitions[part])
            settings = curve_settings(cfg, spec)
            for name, z in settings:
                if a.points is not None and name not in a.points:
                    prev_point = a.out / part / name / "results.json"
                    if prev_point.exists():        # finished earlier: keep it in the outputs
                        points[part][name] = summarise_point(
                            json.loads(prev_point.read_text(encoding="utf-8")), a.out / part / name)
                    continue
                workdir = a.out / part / name
                print(f"== {part} / {name}", flush=True)
                summary = federate(point_config(cfg, spec, z), workdir, progress=True)
                points[part][name] = summarise_point(summary, workdir)
                # Each point compiles its own programs; without this a long sweep in one
                # process runs out of memory mappings (vm.max_map_count) and LLVM fails
                # with "Cannot allocate memory" while gigabytes are free.
                jax.clear_caches()
                gc.collect()
                a.out.mkdir(parents=True, exist_ok=True)
                write_outputs(points, a.out)               # after every point: partial curves survive
    except UserError as e:
        print(f"dp_curve: error: {e}", file=sys.stderr)
        return 2
    print((a.out / "dp_curve.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
