"""Do the composite's landmarks sit on the faces of the flows they index? (issue 26)

    python experiments/au_branch/landmark_flow_frame.py [--png experiments/au_branch/landmark_flow_frame.png] [--roi-probe]

The MEGC2019 composite's landmarks are detected on the apex face crops and the ROI
windows are cut from the released 28-px flows at those points. That is only right if
both images were cut from the same face box. This script measures it without labels:

1. A motion image per dataset: the mean over its samples of |u - median u| + |v -
   median v| plus the strain channel, each normalised by its own mean (the face's
   eyes, brows and mouth move; the background does not).
2. Each dataset's motion image is registered onto the CASME II one (per-axis scale
   and shift, coarse-to-fine grid search on normalised cross-correlation). CASME II
   is the reference because its landmarks sit on its motion (the AU maps of the
   figure show it).
3. The map that takes the dataset's mean landmarks (apex frame) onto the registered
   CASME II mean landmarks, fitted per axis by least squares, is printed in the 128-px
   landmark frame: the numbers ``data_pipelines.megc2019_composite.FLOW_FRAME`` uses.

The figure (labels used only to draw it, not to fit anything): per dataset and a few
AUs, the motion of AU-positive minus AU-negative samples, with the mean landmarks as
detected (black) and as mapped (green). Brow AUs should light up at the brow points,
AU7 at the eyes, AU12/AU14 beside the mouth corners.

``--roi-probe``: what the branch's input carries, with either set of landmarks. The
linear AU probe of ``fedpsyau report`` (``training.au_probe``) is fitted on the
65 ROI windows the branch reads (5×5×3 pixels of the 28-px flow, cut as
``network.roi_patches`` cuts them) instead of on the whole flow, leave one subject out
over the AU-labelled subjects; pooled and within-subject AUC and F1 at 0.5 per dataset
(a few minutes).

``--per-au``: with the landmarks the loader uses (mapped), the share of the 28-px flow
the 65 windows read in each AU-labelled sample, and the ROI-window and whole-flow probes'
ROC AUC per AU (where a network loses to the whole-flow probe on one AU, this tells
whether its windows lack the information or it does not use it).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from data_pipelines.landmark_frame import SIDE, frame_maps, motion_image
from data_pipelines.megc2019_composite import CROP_SIZE, load_megc2019_composite


def figure(samples, maps: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = np.asarray(samples.dataset).astype(str)
    lm = np.asarray(samples.landmarks, np.float64) * SIDE / CROP_SIZE
    au, m = np.asarray(samples.au), np.asarray(samples.au_mask)
    aus = {0: "AU1", 2: "AU4", 5: "AU7", 8: "AU12", 9: "AU14", 11: "AU17"}
    rows = ("casme2", "samm")
    fig, axes = plt.subplots(len(rows), len(aus), figsize=(3 * len(aus), 3.2 * len(rows)))
    for r, d in enumerate(rows):
        mean_lm = lm[ds == d].mean(0)
        for c, (j, name) in enumerate(aus.items()):
            ax = axes[r, c]
            k = (ds == d) & (m[:, j] > 0)
            pos, neg = k & (au[:, j] > 0.5), k & (au[:, j] < 0.5)
            diff = motion_image(samples.flow28[pos]) - motion_image(samples.flow28[neg])
            v = np.abs(diff).max()
            ax.imshow(diff, cmap="RdBu_r", vmin=-v, vmax=v)
            ax.scatter(mean_lm[:, 0], mean_lm[:, 1], s=5, c="k", label="as detected")
            if d in maps:
                a_x, b_x, a_y, b_y = maps[d]["map128"]
                k28 = SIDE / CROP_SIZE
                ax.scatter(
                    a_x * mean_lm[:, 0] + b_x * k28, a_y * mean_lm[:, 1] + b_y * k28, s=5, c="lime", label="mapped"
                )
            ax.set_title(f"{d} {name}: positives - negatives ({int(pos.sum())}+)", fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])
    axes[1, 0].legend(loc="lower left", fontsize=7)
    fig.suptitle("Flow motion of AU-positive minus AU-negative samples, with the mean landmarks")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def roi_windows(flow28: np.ndarray, landmarks128: np.ndarray) -> np.ndarray:
    """(n, 65, 5, 5, 3) windows the branch reads with ``model.roi_source=flow28``."""
    from fedpsyau_jax.network.roi_patches import cut_patches_batch

    return np.asarray(cut_patches_batch(np.asarray(flow28, np.float32), np.asarray(landmarks128) * SIDE / CROP_SIZE))


def roi_probe(samples) -> dict[str, tuple[float, float, float]]:
    """{dataset or "both": (pooled AUC, within-subject AUC, F1 at 0.5)} of the linear
    probe on the ROI windows, leave one AU-labelled subject out."""
    from fedpsyau_jax.training.au_probe import fit_predict_probe
    from fedpsyau_jax.training.metrics import au_detection_scores, au_within_subject_auc

    subj, ds = np.asarray(samples.subject).astype(str), np.asarray(samples.dataset).astype(str)
    x = roi_windows(samples.flow28, samples.landmarks)
    labelled = samples.au_mask.sum(1) > 0
    prob = np.zeros((len(subj), 12), np.float32)
    for s in np.unique(subj[labelled]):
        test = subj == s
        prob[test] = fit_predict_probe(x[~test], samples.au[~test], samples.au_mask[~test], x[test])
    out = {}
    for d in (*sorted(set(ds[labelled])), "both"):
        k = labelled & ((ds == d) if d != "both" else True)
        t, m, p = samples.au[k], samples.au_mask[k], prob[k]
        sc = au_detection_scores(t, m, p)
        out[d] = (sc["mean_auc"], au_within_subject_auc(t, m, p, subj[k])["mean_auc"], sc["mean_f1"])
    return out


def window_coverage(samples) -> float:
    """Mean share of the 28×28 flow pixels that at least one of a sample's 65 windows
    reads, over the AU-labelled samples."""
    from fedpsyau_jax.network.roi_patches import cut_patches_batch

    rows = np.flatnonzero(samples.au_mask.sum(1) > 0)
    pixel = np.arange(SIDE * SIDE, dtype=np.float32).reshape(1, SIDE, SIDE, 1)
    index = np.ascontiguousarray(np.broadcast_to(pixel, (len(rows), SIDE, SIDE, 1)))
    read = np.asarray(cut_patches_batch(index, np.asarray(samples.landmarks)[rows] * SIDE / CROP_SIZE))
    return float(np.mean([len(np.unique(r)) / (SIDE * SIDE) for r in read.reshape(len(rows), -1).astype(int)]))


def per_au_probes(samples) -> dict[str, dict[str, float]]:
    """{"windows" | "whole flow": {AU name: pooled ROC AUC}} of the linear probe, leave one
    AU-labelled subject out."""
    from fedpsyau_jax.core.au_groups import AU_ORDER
    from fedpsyau_jax.training.au_probe import fit_predict_probe
    from fedpsyau_jax.training.metrics import au_detection_scores

    subj = np.asarray(samples.subject).astype(str)
    labelled = samples.au_mask.sum(1) > 0
    names = [f"AU{a}" for a in AU_ORDER]
    out = {}
    for name, x in (("windows", roi_windows(samples.flow28, samples.landmarks)), ("whole flow", samples.flow28)):
        x = np.asarray(x).reshape(len(subj), -1)
        prob = np.zeros((len(subj), 12), np.float32)
        for s in np.unique(subj[labelled]):
            test = subj == s
            prob[test] = fit_predict_probe(x[~test], samples.au[~test], samples.au_mask[~test], x[test])
        sc = au_detection_scores(samples.au[labelled], samples.au_mask[labelled], prob[labelled], au_names=names)
        out[name] = {"mean": sc["mean_auc"], **sc["auc_per_au"]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--png", help="write the AU motion figure here")
    ap.add_argument("--roi-probe", action="store_true", help="the linear AU probe on the ROI windows, both frames")
    ap.add_argument("--per-au", action="store_true", help="window coverage and per-AU AUC of windows vs whole flow")
    args = ap.parse_args(argv)
    samples = load_megc2019_composite(landmark_frame="apex")
    maps = frame_maps(samples)
    for d, v in maps.items():
        sx, sy, tx, ty = v["registration"]
        print(
            f"{d}: NCC with CASME II {v['ncc_identity']:.3f} -> {v['ncc_registered']:.3f} "
            f"(x {sx:.3f}·x{tx:+.2f}, y {sy:.3f}·y{ty:+.2f}, 28-px units); landmark map (128-px frame) "
            f"a_x {v['map128'][0]:.3f} b_x {v['map128'][1]:+.2f} a_y {v['map128'][2]:.3f} b_y {v['map128'][3]:+.2f}; "
            f"largest move {v['max_shift_px28']:.2f} px of 28"
        )
    if args.png:
        figure(samples, maps, args.png)
        print(f"figure: {args.png}")
    if args.roi_probe:
        for frame, s in (("apex", samples), ("flow", load_megc2019_composite(landmark_frame="flow"))):
            cells = [f"{d} {a:.3f}/{w:.3f}/F1 {f:.3f}" for d, (a, w, f) in roi_probe(s).items()]
            print(f"ROI-window probe, landmarks {frame} (pooled / within AUC / F1 at 0.5): " + " | ".join(cells))
    if args.per_au:
        mapped = load_megc2019_composite(landmark_frame="flow")
        print(f"share of the 28-px flow read by the 65 windows (mean over AU-labelled samples): {window_coverage(mapped):.3f}")
        for name, auc in per_au_probes(mapped).items():
            print(f"{name} probe, pooled AUC: " + " ".join(f"{k} {v:.3f}" for k, v in auc.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
