"""The per-frame spotting signal: optical flow in landmark regions, head motion and
blinks removed, turned into one motion score per frame. (Only spotting uses this
cheap flow; the recognition input of an interval is computed as in training,
by ``recognise``.)

Pipeline, per frame t of a face segment:

1. *Alignment.* The frame is warped onto a reference face (the first face of the
   chunk) with the similarity that maps its eye-corner and nose landmarks onto the
   reference's (``face_crop.alignment_transform``), and cropped with the reference's
   input crop box at ``SPOT_SIZE`` px. This removes most head translation, rotation and
   scale.
2. *Flow.* Farneback flow between the aligned crops of t-1 and t (about 1 ms at
   96 px; TV-L1 is reserved for the recognition input).
3. *Regions.* The mean flow vector in small boxes around landmark groups of the AUs
   (``REGIONS``: brows, cheeks, nose wings, mouth corners, lips, chin). The eyes are
   not a region (blinks are eye motion), and a region's box is at most ``ROI_HALF`` g
   wide so that the brow boxes stay off the lids. The mean vector of the rigid nose
   bridge (``REFERENCE_REGION``) is subtracted from every region: residual head motion
   that the alignment left moves the bridge as much as the rest.
4. *Displacement and score* (``motion_scores``): the per-region flows are summed over
   time into a displacement X(t) (restarting at every gap). A movement that rises and
   returns within about 2k frames gives a peak of
   ``D_k(t) = |2 X(t) - X(t-k) - X(t+k)|``, while any motion that is linear over
   [t-k, t+k] (slow head drift, a constant-speed turn the alignment missed) cancels.
   The frame's score is the mean of the ``TOP_REGIONS`` largest region values
   (expressions move several regions; one noisy box does not make a peak).

Blinks: the eyes are excluded, and a blink leaves the brows and cheeks almost still;
``blink_mask`` additionally zeroes the brow/cheek regions on frames where the lids
(measured in an eye box, never scored) move more than ``BLINK_RATIO`` times as much as
the brows, because Farneback's window lets some lid motion leak into the brow box.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from data_pipelines import face_crop

SPOT_SIZE = 96
ROI_HALF = 0.5  # half side of a region box, in units of g (half inner-eye distance)
TOP_REGIONS = 3
BLINK_RATIO = 2.0
# name -> (dlib-68 points whose mean is the centre, (dx, dy) offset in units of g)
REGIONS: dict[str, tuple[tuple[int, ...], tuple[float, float]]] = {
    "brow_outer_l": ((17, 18), (0.0, 0.0)),
    "brow_inner_l": ((20, 21), (0.0, 0.0)),
    "brow_inner_r": ((22, 23), (0.0, 0.0)),
    "brow_outer_r": ((25, 26), (0.0, 0.0)),
    "cheek_l": ((40, 41), (0.0, 1.2)),
    "cheek_r": ((46, 47), (0.0, 1.2)),
    "nose_l": ((31,), (-0.3, -0.3)),
    "nose_r": ((35,), (0.3, -0.3)),
    "mouth_l": ((48,), (0.0, 0.0)),
    "mouth_r": ((54,), (0.0, 0.0)),
    "lip_upper": ((50, 51, 52), (0.0, 0.0)),
    "lip_lower": ((56, 57, 58), (0.0, 0.0)),
    "chin": ((8,), (0.0, -0.8)),
}
REFERENCE_REGION = ((27, 28, 29), (0.0, 0.0))  # nose bridge: rigid
EYE_REGIONS = (((37, 38, 40, 41), (0.0, 0.0)), ((43, 44, 46, 47), (0.0, 0.0)))
BROW_CHEEK = tuple(i for i, n in enumerate(REGIONS) if n.startswith(("brow", "cheek")))
# pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags
FARNEBACK = (0.5, 2, 9, 3, 5, 1.1, 0)
# Alignment points of the spotting pass: nose and the upper face contour. Not the eye
# corners that align the model input: dlib moves them when the lids close, and a blink
# would then tilt the whole aligned face (measured: mouth regions "moving" 1 px).
ALIGN_POINTS = (0, 1, 2, 14, 15, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35)


@dataclasses.dataclass(frozen=True)
class SignalParams:
    spot_size: int = SPOT_SIZE
    roi_half: float = ROI_HALF
    farneback: tuple = FARNEBACK

    def as_dict(self) -> dict:
        return {
            "spot_size": self.spot_size,
            "roi_half": self.roi_half,
            "farneback": list(self.farneback),
            "regions": {k: [list(v[0]), list(v[1])] for k, v in REGIONS.items()},
        }


def region_boxes(ref68: np.ndarray, box: face_crop.CropBox, size: int, half_g: float) -> np.ndarray:
    """(R + 1 + 2, 4) int boxes (x0, y0, x1, y1) in crop px: the ``REGIONS``, then the
    reference (nose bridge) region, then the two eye boxes."""
    lm = np.asarray(ref68, np.float64)
    g = 0.5 * float(np.hypot(*(lm[42] - lm[39])))
    specs = list(REGIONS.values()) + [REFERENCE_REGION, *EYE_REGIONS]
    scale = size / box.side
    h = max(1.0, half_g * g * scale)
    out = []
    for pts, (dx, dy) in specs:
        c = lm[list(pts)].mean(0) + np.array([dx, dy]) * g
        cx, cy = (c[0] - box.left) * scale - 0.5, (c[1] - box.top) * scale - 0.5
        out.append(
            [
                int(np.clip(round(cx - h), 0, size - 1)),
                int(np.clip(round(cy - h), 0, size - 1)),
                int(np.clip(round(cx + h) + 1, 1, size)),
                int(np.clip(round(cy + h) + 1, 1, size)),
            ]
        )
    return np.array(out, np.int32)


class RegionFlow:
    """Aligned crops and per-region flow vectors of consecutive frames.

    ``step(gray, landmarks)`` → (R + 3, 2) float32 mean flow per box (``region_boxes``
    order) between the previous face frame and this one, or None when either has no
    face (then the next face frame starts a new segment). The first face frame seen
    becomes the reference.
    """

    def __init__(self, params: SignalParams | None = None):
        self.p = params or SignalParams()
        self.ref68: np.ndarray | None = None
        self.box: face_crop.CropBox | None = None
        self.boxes: np.ndarray | None = None
        self._prev: np.ndarray | None = None

    def aligned_crop(self, gray: np.ndarray, lm68: np.ndarray) -> np.ndarray:
        if self.ref68 is None:
            self.ref68 = np.asarray(lm68, np.float32)
            self.box = face_crop.crop_box(self.ref68, what="reference face")
            self.boxes = region_boxes(self.ref68, self.box, self.p.spot_size, self.p.roi_half)
        assert self.box is not None  # set with ref68 above
        idx = list(ALIGN_POINTS)
        m = face_crop.similarity_transform(np.asarray(lm68)[idx], self.ref68[idx])
        return face_crop.crop_face(gray, self.box, transform=m, size=self.p.spot_size)

    def step(self, gray: np.ndarray, lm68: np.ndarray | None) -> np.ndarray | None:
        if lm68 is None:
            self._prev = None
            return None
        crop = self.aligned_crop(gray, lm68)
        prev, self._prev = self._prev, crop
        if prev is None:
            return None
        # cv2 stubs require a flow array; None (allocate the output) is valid at runtime
        flow = cv2.calcOpticalFlowFarneback(prev, crop, None, *self.p.farneback)  # type: ignore[call-overload]
        assert self.boxes is not None  # set by aligned_crop on the first face frame
        return box_means(remove_affine(flow), self.boxes)


_DESIGN: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def remove_affine(flow: np.ndarray) -> np.ndarray:
    """``flow`` minus its least-squares affine fit over the crop: the global motion the
    landmark alignment left (landmark jitter, rotation and scale of the head). Local
    AU motion covers a small part of the crop, so it barely enters the fit."""
    h, w = flow.shape[:2]
    if h not in _DESIGN:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        a = np.stack([np.ones(h * w), xx.ravel() / w - 0.5, yy.ravel() / h - 0.5], 1)
        _DESIGN[h] = (a, np.linalg.pinv(a))
    a, pinv = _DESIGN[h]
    f = flow.reshape(-1, 2).astype(np.float64)
    fit = a @ (pinv @ f)
    return (f - fit).reshape(flow.shape).astype(np.float32)


def box_means(flow: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean (u, v) of ``flow`` in each (x0, y0, x1, y1) box, via an integral image."""
    ii = cv2.integral(np.ascontiguousarray(flow, np.float32))  # (H+1, W+1, 2) float64
    x0, y0, x1, y1 = boxes.T
    s = ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]
    area = ((x1 - x0) * (y1 - y0)).astype(np.float64)[:, None]
    return (s / np.maximum(area, 1.0)).astype(np.float32)


# ---------------------------------------------------------------- scores (pure)


def head_compensated(region_flow: np.ndarray) -> np.ndarray:
    """(T, R+3, 2) box flows → (T, R, 2) region flows minus the nose-bridge flow."""
    r = len(REGIONS)
    return region_flow[:, :r] - region_flow[:, r : r + 1]


def blink_mask(region_flow: np.ndarray) -> np.ndarray:
    """(T, R) multiplier: 0 on brow/cheek regions in frames where the lids move more
    than ``BLINK_RATIO`` times the brows (a blink), else 1."""
    r = len(REGIONS)
    ref = region_flow[:, r]
    eyes = np.linalg.norm(region_flow[:, r + 1 : r + 3] - ref[:, None], axis=-1).mean(1)
    brows = np.linalg.norm(region_flow[:, list(BROW_CHEEK)] - ref[:, None], axis=-1).mean(1)
    blink = np.nan_to_num(eyes) > BLINK_RATIO * np.nan_to_num(brows) + 0.05
    m = np.ones((len(region_flow), r), np.float32)
    m[np.ix_(blink, list(BROW_CHEEK))] = 0.0
    return m


def displacement(flows: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Cumulative displacement X (T, R, 2) of per-frame flows (T, R, 2) within each run
    of face frames (``face`` (T,) bool): 0 on a run's first frame, NaN without a face."""
    x = np.full(flows.shape, np.nan)
    acc = None
    for t in range(len(flows)):
        if not face[t]:
            acc = None
            continue
        acc = np.zeros(flows.shape[1:]) if acc is None else acc + flows[t]
        x[t] = acc
    return x


def second_difference(x: np.ndarray, k: int) -> np.ndarray:
    """|2 X(t) - X(t-k) - X(t+k)| per region (T, R). Near the ends of a face segment
    the offset shrinks symmetrically to the frames available (k' = min(k, t - start,
    end - 1 - t)), so linear drift still cancels there; a segment's first and last
    frames score 0."""
    out = np.zeros(x.shape[:2])
    seg = _segments(~np.isnan(x[:, 0, 0]))
    for a, b in seg:
        for t in range(a, b):
            kk = min(k, t - a, b - 1 - t)
            if kk <= 0:
                continue
            d = 2 * x[t] - x[t - kk] - x[t + kk]
            out[t] = np.linalg.norm(d, axis=-1)
    return out


def _segments(ok: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True."""
    out, start = [], None
    for i, v in enumerate(ok):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(ok)))
    return out


def motion_scores(region_flow: np.ndarray, face: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(T,) score and (T, R) per-region second differences at scale ``k`` from the raw
    box flows (T, R+3, 2) (NaN rows = no flow into that frame) and ``face`` (T,) bool.
    Frames without a face score 0."""
    f = np.nan_to_num(head_compensated(region_flow)) * blink_mask(np.nan_to_num(region_flow))[..., None]
    x = displacement(f, np.asarray(face, bool))
    per = second_difference(x, k)
    top = np.sort(per, axis=1)[:, -TOP_REGIONS:]
    return top.mean(1), per
