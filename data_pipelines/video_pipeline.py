"""Video/frames → model inputs of one sample, and whole datasets → ``MESamples``.

    clip_to_sample(onset_frame, apex_frame)          two grey frames → dict of arrays
    video_to_sample(path, onset=None, apex=None)     a video file or frame folder
    records_to_samples(records, cache_dir=...)       ClipRecords → MESamples, cached

Caches (``cached_video_sample``, ``records_to_samples``) are keyed on the identity of
the input files (``input_identity``), never on names alone.

Per sample: dlib face + 68 landmarks on the onset frame (highest-scoring box), the
face crop box from the onset landmarks (``PipelineParams.crop``: the project's
``"eyes"`` box, or ``"composite"``, the face placed as in the released MEGC2019
composite flows, for models trained on them), the apex frame similarity-aligned to the
onset face (apex landmarks come from the shape predictor inside the onset's
detection box: micro-expression clips barely move, and it saves a second detector
pass), TV-L1 flow on the 128-px grey crops, strain, min-max encoding, and the 65
keypoints in the crop frame.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import zipfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from data_pipelines import face_crop, face_landmarks, optical_flow
from data_pipelines.clip_record import ClipRecord
from data_pipelines.sample_errors import (
    MissingFrameError,
    MissingMediaError,
    MultipleFacesError,
    NoFaceError,
    SampleError,
    UnknownLabelError,
    UnusableSampleError,
)
from data_pipelines.video_io import FrameSource
from fedpsyau_jax.core.atomic_files import save_npz_atomic, write_json_atomic
from fedpsyau_jax.core.keypoints import dlib68_to_65
from fedpsyau_jax.core.sample_arrays import MESamples

log = logging.getLogger(__name__)

# Bump when the computation changes in a way the parameters below do not capture:
# it is part of every cache key, so old cache files are then ignored, not reused.
PIPELINE_VERSION = 2
# SMIC- and DFME-style data carry no AU coding → au_mask all 0.
DATASETS_WITHOUT_AU_LABELS = frozenset({"smic", "dfme"})
# Apex spotting (video_to_sample with apex=None) works on crops this small.
SPOT_SIZE = 64
MANIFEST_NAME = "skipped_samples.json"
# Arrays a cache file must hold (anything else in the sample dict is recomputable or debug).
CACHED_KEYS = (
    "flow128",
    "flow28",
    "landmarks",
    "flow_raw",
    "clamped",
    "constant_channels",
    "onset",
    "apex",
    "onset_replaced",
    "faceless_leading",
)
# Inputs up to this size are content-hashed for cache keys (beyond: path, size, mtime).
CONTENT_HASH_MAX_BYTES = 256 << 20


@dataclasses.dataclass(frozen=True)
class PipelineParams:
    """Everything that changes the numbers a sample gets; hashed into cache keys."""

    align: bool = True
    apex_window: bool = False  # average flows onset→apex-1, apex, apex+1 (paper)
    exactly_one_face: bool = False  # True: several faces → MultipleFacesError (default: best box)
    tvl1: tuple[tuple[str, object], ...] = tuple(sorted(optical_flow.TVL1_PARAMS.items()))
    # face_crop.CROP_RULES: "eyes" (the project's box) or "composite" (as the released
    # MEGC2019 composite flows, for a model trained on them: fedpsyau_jax.input_check)
    crop: str = "eyes"

    def __post_init__(self):
        if self.crop not in face_crop.CROP_RULES:
            raise ValueError(f"PipelineParams.crop {self.crop!r}: choose from {', '.join(face_crop.CROP_RULES)}")

    def as_dict(self) -> dict:
        if self.crop == "eyes":
            # unchanged from before the crop rule existed, so existing caches stay valid
            crop: dict = {
                "size": face_crop.CROP_SIZE,
                "rows_above_g": face_crop.ROWS_ABOVE,
                "rows_below_g": face_crop.ROWS_BELOW,
                "cols_half_g": face_crop.COLS_HALF,
                "align_points": list(face_crop.ALIGN_POINTS),
            }
        else:
            crop = {
                "size": face_crop.CROP_SIZE,
                "rule": self.crop,
                "layout": {str(k): list(v) for k, v in face_crop.COMPOSITE_LAYOUT.items()},
                "align_points": list(face_crop.ALIGN_POINTS),
            }
        return {
            "pipeline_version": PIPELINE_VERSION,
            "align": self.align,
            "apex_window": self.apex_window,
            "exactly_one_face": self.exactly_one_face,
            "tvl1": dict(self.tvl1),
            "crop": crop,
            "face_detect_stages": [list(x) for x in face_landmarks.DETECT_STAGES],
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- one pair of frames


def clip_to_sample(
    onset_frame: np.ndarray,
    apex_frame: np.ndarray,
    *,
    align: bool = True,
    apex_neighbors: Sequence[np.ndarray] | None = None,
    exactly_one_face: bool = False,
    tvl1_params: dict | None = None,
    crop: str = "eyes",
    name: str = "clip",
) -> dict:
    """Model inputs of one onset/apex pair of frames (uint8 grey or BGR).

    ``apex_neighbors``: extra frames (typically apex-1 and apex+1) whose onset→frame
    flows are averaged with onset→apex (the paper's apex window). ``crop``: the crop
    rule (``face_crop.CROP_RULES``).

    Returns float32 ``flow128`` (128,128,3) and ``flow28`` (28,28,3) in [0,1],
    ``landmarks`` (65,2) and ``landmarks68`` (68,2) in the crop frame (clamped),
    ``flow_raw`` (128,128,2) in crop px, ``strain_raw`` (128,128), ``clamped`` (number
    of the 65 points clamped), ``constant_channels`` (3,) bool, the 128-px
    ``onset_crop``/``apex_crop``, ``crop_box`` (left, top, width, height) in frame px,
    ``align_matrix`` (2,3) apex→onset, ``face_score`` and ``n_faces``.
    Raises ``NoFaceError``/``MultipleFacesError``/``UnusableSampleError``.
    """
    onset = face_landmarks.as_gray_uint8(onset_frame, f"{name} onset frame")
    targets = [face_landmarks.as_gray_uint8(apex_frame, f"{name} apex frame")]
    targets += [
        face_landmarks.as_gray_uint8(f, f"{name} apex neighbour {i}") for i, f in enumerate(apex_neighbors or ())
    ]

    faces = face_landmarks.detect_faces(onset)
    if not faces:
        raise NoFaceError(f"{name}: no face found in the onset frame by the dlib frontal detector")
    if exactly_one_face and len(faces) > 1:
        raise MultipleFacesError(f"{name}: {len(faces)} faces in the onset frame where one is required")
    det_box, score = faces[0]
    lm_on = face_landmarks.landmarks68(onset, det_box, what=f"{name} onset frame")
    box = face_crop.face_box(lm_on, crop, what=f"{name} onset face")
    onset_crop = face_crop.crop_face(onset, box)

    flows, crops, matrices = [], [], []
    for img in targets:
        m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        if align:
            lm_t = face_landmarks.landmarks68(img, det_box, what=f"{name} apex frame")
            m = face_crop.alignment_transform(lm_t, lm_on)
        target_crop = face_crop.crop_face(img, box, transform=None if not align else m)
        flows.append(optical_flow.tvl1_flow(onset_crop, target_crop, tvl1_params))
        crops.append(target_crop)
        matrices.append(m)
    flow_raw = flows[0] if len(flows) == 1 else optical_flow.average_flows(flows)

    feats = optical_flow.flow_features(flow_raw)
    if feats["constant_channels"][:2].all():
        # Never emit an all-zero flow silently (e.g. identical frames).
        raise UnusableSampleError(f"{name}: onset→apex flow is constant (u and v); the frames show no motion")
    lm65, clamped = face_crop.map_points(dlib68_to_65(lm_on), box)
    lm68, _ = face_crop.map_points(lm_on, box)
    return {
        **feats,
        "landmarks": lm65,
        "landmarks68": lm68,
        "flow_raw": flow_raw,
        "clamped": clamped,
        "onset_crop": onset_crop,
        "apex_crop": crops[0],
        "crop_box": np.array([box.left, box.top, box.side, box.rows], np.float32),
        "align_matrix": matrices[0].astype(np.float32),
        "face_score": score,
        "n_faces": len(faces),
    }


# ---------------------------------------------------------------- frame numbers


def resolve_onset_apex(numbers: Sequence[int], onset: int | None, apex: int | None, name: str) -> tuple[int, int, bool]:
    """(onset, apex, onset_replaced) after the onset == apex rule.

    ``onset`` None means the clip's first frame. When onset == apex the first frame
    becomes the onset if it differs, else the sample is unusable.
    """
    if not numbers:
        raise MissingFrameError(f"{name}: clip has no frames")
    first = numbers[0]
    onset = first if onset is None else int(onset)
    if apex is None:
        raise ValueError(f"{name}: apex frame not given")
    apex = int(apex)
    have = set(numbers)
    for what, n in (("onset", onset), ("apex", apex)):
        if n not in have:
            raise MissingFrameError(
                f"{name}: {what} frame {n} not in the clip (frames {first}..{numbers[-1]}, {len(numbers)} present)"
            )
    if apex < onset:
        raise UnusableSampleError(f"{name}: apex frame {apex} comes before onset frame {onset}")
    if apex == onset:
        if first == onset:
            raise UnusableSampleError(
                f"{name}: onset == apex == frame {onset}, which is the clip's first frame, so no other onset exists"
            )
        return first, apex, True
    return onset, apex, False


def apex_window(numbers: Sequence[int], onset: int, apex: int) -> list[int]:
    """Neighbours of ``apex`` in the clip (previous, next) that exist and are not the onset."""
    i = list(numbers).index(apex)
    out = []
    for j in (i - 1, i + 1):
        if 0 <= j < len(numbers) and numbers[j] != onset:
            out.append(numbers[j])
    return out


def spot_apex(source: FrameSource, onset: int, *, name: str = "clip") -> int:
    """The frame after ``onset`` whose motion from the onset is largest.

    Cheap on purpose (it looks at every frame): the onset's crop box, crops shrunk to
    64 px, Farneback flow (not TV-L1), and the median flow subtracted so that global
    head drift does not count as expression; score = mean |flow|.
    """
    onset_img = source.read(onset)
    lm = face_landmarks.landmarks68(onset_img, what=f"{name} onset frame")
    box = face_crop.crop_box(lm, what=f"{name} onset face")
    ref = face_crop.crop_face(onset_img, box, size=SPOT_SIZE)
    best, best_score = None, -1.0
    for n in source.numbers():
        if n <= onset:
            continue
        cur = face_crop.crop_face(source.read(n), box, size=SPOT_SIZE)
        # pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags
        f = cv2.calcOpticalFlowFarneback(ref, cur, None, 0.5, 3, 9, 3, 5, 1.1, 0)  # type: ignore[call-overload]  # flow=None allocates; the stubs lack it
        f = f - np.median(f.reshape(-1, 2), axis=0)
        score = float(np.hypot(f[..., 0], f[..., 1]).mean())
        if score > best_score:
            best, best_score = n, score
    if best is None:
        raise UnusableSampleError(f"{name}: no frame after the onset {onset} to spot an apex in")
    return best


def video_to_sample(
    path: Path | str,
    onset: int | None = None,
    apex: int | None = None,
    *,
    params: PipelineParams | None = None,
    name: str | None = None,
) -> dict:
    """Model inputs of a video file (frame numbers = 0-based indices) or frame folder
    (numbers = trailing integer of the file names).

    ``onset`` None → the first frame with a face (normally the first frame; when the
    first frames show no face, the first one that does, with a warning naming them).
    ``apex`` None → ``spot_apex``. A given onset equal to the apex is an error (the
    caller chose both frames; there is no motion to measure). The result of
    ``clip_to_sample`` plus ``onset``, ``apex`` (frame numbers used), ``apex_spotted``,
    ``onset_replaced`` (onset == apex rule applied) and ``faceless_leading``
    (number of leading frames skipped for having no face).
    """
    p = params or PipelineParams()
    name = name or Path(path).stem
    check_onset_apex(name, onset, apex)
    src = FrameSource(path)
    numbers = src.numbers()
    skipped = 0
    if onset is None:
        onset, skipped = first_face_frame(src, numbers, name)
        if skipped:
            log.warning(
                "%s: no face in the first %d frame(s) (%s..%s); onset is frame %s, the first frame with a face",
                name,
                skipped,
                numbers[0],
                numbers[skipped - 1],
                onset,
            )
    spotted = apex is None
    if spotted:
        start = int(onset)
        if start not in set(numbers):
            raise MissingFrameError(f"{name}: onset frame {start} not in the clip (frames {numbers[0]}..{numbers[-1]})")
        apex = spot_apex(src, start, name=name)
    if skipped and apex is not None and onset is not None and int(apex) <= int(onset):
        raise UnusableSampleError(
            f"{name}: apex frame {apex} is not after frame {onset}, the first "
            f"frame with a face (frames {numbers[0]}..{numbers[skipped - 1]} have none)"
        )
    onset, apex, replaced = resolve_onset_apex(numbers, onset, apex, name)
    return _sample_from_source(src, numbers, onset, apex, replaced, p, name) | {
        "apex_spotted": spotted,
        "faceless_leading": skipped,
    }


def check_onset_apex(name: str, onset: int | None, apex: int | None) -> None:
    """A caller-given onset must come before a caller-given apex (``UnusableSampleError``)."""
    if onset is not None and apex is not None:
        if int(onset) == int(apex):
            raise UnusableSampleError(
                f"{name}: onset frame {int(onset)} equals apex frame {int(apex)}; "
                "give an onset before the apex (the onset→apex flow would be zero)"
            )
        if int(apex) < int(onset):
            raise UnusableSampleError(f"{name}: apex frame {int(apex)} comes before onset frame {int(onset)}")


def first_face_frame(src: FrameSource, numbers: list[int], name: str) -> tuple[int, int]:
    """(first frame number with a face, how many frames before it had none)."""
    for k, n in enumerate(numbers):
        if face_landmarks.detect_faces(src.read(n)):
            return n, k
    raise NoFaceError(
        f"{name}: no face found by the dlib frontal detector in any of the "
        f"{len(numbers)} frames ({numbers[0]}..{numbers[-1]})"
    )


def _sample_from_source(
    src: FrameSource, numbers: list[int], onset: int, apex: int, replaced: bool, p: PipelineParams, name: str
) -> dict:
    """clip_to_sample on already-resolved frame numbers (see resolve_onset_apex)."""
    neigh = apex_window(numbers, onset, apex) if p.apex_window else []
    out = clip_to_sample(
        src.read(onset),
        src.read(apex),
        align=p.align,
        apex_neighbors=[src.read(n) for n in neigh],
        exactly_one_face=p.exactly_one_face,
        tvl1_params=dict(p.tvl1),
        crop=p.crop,
        name=name,
    )
    return out | {"onset": onset, "apex": apex, "onset_replaced": replaced, "faceless_leading": 0}


# ---------------------------------------------------------------- per-sample cache


def sample_cache_path(cache_dir: Path, name: str, key: str) -> Path:
    """``<cache_dir>/<name with unsafe chars replaced>-<key[:16]>.npz``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "sample"
    return Path(cache_dir) / f"{safe}-{key[:16]}.npz"


def sample_cache_key(name: str, params: PipelineParams, frames: dict, inputs: list[dict] | None = None) -> str:
    """Hash of the sample name, the pipeline parameters, the frame numbers used and
    the identity of the input files (``input_identity``)."""
    blob = json.dumps(
        {"name": name, "params": params.digest(), "frames": frames, "inputs": inputs or []}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _file_identity(path: Path, hash_content: bool) -> dict:
    st = path.stat()
    out = {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if hash_content:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out["sha256"] = h.hexdigest()
    return out


def input_identity(path: Path | str, frame_files: list[Path] | None = None) -> list[dict]:
    """Identity of a clip's input files for cache keys: resolved path, size and mtime
    of the video file (or of every frame image of a folder, or of ``frame_files``),
    plus their SHA-256 when they total at most ``CONTENT_HASH_MAX_BYTES``. A path that
    does not exist raises ``MissingMediaError`` (never answered from a cache)."""
    p = Path(path)
    if not p.exists():
        raise MissingMediaError(f"{p}: does not exist (expected a video file or a folder of frame images)")
    if frame_files is None:
        if p.is_dir():
            from data_pipelines.video_io import frame_folder_index

            frame_files = list(frame_folder_index(p).values())
        else:
            frame_files = [p]
    total = sum(f.stat().st_size for f in frame_files)
    return [_file_identity(Path(f), total <= CONTENT_HASH_MAX_BYTES) for f in frame_files]


def load_cached_sample(path: Path) -> dict | None:
    """The cached arrays, or None if the file is absent or unreadable/incomplete
    (then the sample is simply recomputed and the file overwritten)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in CACHED_KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        log.warning("cache file %s unreadable (%s); recomputing", path, e)
        return None
    return out


def cached_video_sample(
    path: Path | str,
    cache_dir: Path,
    *,
    onset: int | None = None,
    apex: int | None = None,
    params: PipelineParams | None = None,
    name: str | None = None,
) -> tuple[dict, Path, bool]:
    """``video_to_sample`` through the per-sample cache → (arrays, cache file, was_cached).

    The key uses the requested onset/apex (None = first frame / spotted), so the same
    request finds the same file without re-spotting the apex, and the identity of the
    input (``input_identity``: path, size, mtime, content hash), so a different or
    changed video with the same name is recomputed. A missing ``path`` is an error
    even when a cache entry exists; a ``cache_dir`` that is a file fails before any
    work.
    """
    from fedpsyau_jax.core.errors import check_output_dir

    p = params or PipelineParams()
    name = name or Path(path).stem
    check_output_dir(cache_dir, what="output folder")
    check_onset_apex(name, onset, apex)
    key = sample_cache_key(name, p, {"onset": onset, "apex": apex}, input_identity(path))
    cpath = sample_cache_path(Path(cache_dir), name, key)
    hit = load_cached_sample(cpath)
    if hit is not None:
        return hit, cpath, True
    s = video_to_sample(path, onset, apex, params=p, name=name)
    arrays = _cacheable(s)
    save_npz_atomic(cpath, arrays)
    return arrays, cpath, False


def _cacheable(s: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(s[k]) for k in CACHED_KEYS}


def _source_identity(src: FrameSource, used: list[int]) -> list[dict]:
    """``input_identity`` of the files a dataset sample reads: its frame images by
    number (onset, apex, apex window), or its video file."""
    files = [src.path_of(n) for n in used]
    paths = [f for f in files if f is not None]
    if len(paths) == len(files):
        return input_identity(paths[0], frame_files=paths)
    return input_identity(src.where)


# ---------------------------------------------------------------- datasets


def record_source(rec: ClipRecord) -> FrameSource:
    if rec.frame_paths:
        return FrameSource(frame_paths=rec.frame_paths)
    if rec.frame_dir is not None:
        return FrameSource(rec.frame_dir)
    raise MissingFrameError(
        f"{rec.name}: record has neither frame_dir nor frame_paths "
        "(annotation-only record; pass the dataset root to the reader)"
    )


def _record_apex(rec: ClipRecord, numbers: list[int]) -> int:
    """The annotated apex, or (SMIC, CASME II "/") the middle frame of onset..offset."""
    if rec.apex is not None:
        return int(rec.apex)
    lo = numbers[0] if rec.onset is None else rec.onset
    hi = numbers[-1] if rec.offset is None else rec.offset
    span = [n for n in numbers if lo <= n <= hi]
    if not span:
        raise MissingFrameError(
            f"{rec.name}: no frames between onset {lo} and offset {hi} to take the middle frame as apex"
        )
    return span[len(span) // 2]


def records_to_samples(
    records: list[ClipRecord],
    *,
    cache_dir: Path | None,
    progress: bool = True,
    class_names: tuple[str, ...] | None = None,
    params: PipelineParams | None = None,
    manifest_path: Path | None = None,
) -> MESamples:
    """Turn annotated clips into ``MESamples``, skipping (and reporting) bad ones.

    Per record: label check (None or outside ``class_names`` → skipped), frames by
    number, the onset == apex rule, apex None → middle frame (SMIC annotates no apex), then
    ``clip_to_sample``. With ``cache_dir`` each finished sample is one .npz named by
    sample name + a hash of parameters, frame numbers and the identity (path, size,
    mtime, SHA-256) of the frame files it reads, written atomically, so a rerun (or a
    resumed, interrupted run) reuses it and a replaced frame is recomputed. Skipped samples go to a JSON
    manifest {name: reason} (default ``cache_dir/skipped_samples.json``) and to
    ``meta["skipped"]``. ``class_names`` None → "0".."max label".
    """
    p = params or PipelineParams()
    names = [r.name for r in records]
    dup = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    if dup:
        raise ValueError(f"records_to_samples: duplicate sample names {dup[:5]} (cache keys would collide)")
    if class_names is None:
        labels = [r.label for r in records if r.label is not None and r.label >= 0]
        class_names = tuple(str(i) for i in range(max(labels) + 1)) if labels else ()
    cache_dir = Path(cache_dir) if cache_dir is not None else None
    if manifest_path is None and cache_dir is not None:
        manifest_path = cache_dir / MANIFEST_NAME

    it = records
    if progress:
        from tqdm import tqdm

        it = tqdm(records, desc="preprocess", unit="clip")
    kept: list[tuple[ClipRecord, dict]] = []
    skipped: dict[str, str] = {}
    n_cached = n_computed = 0
    for rec in it:
        try:
            if rec.label is None:
                raise UnknownLabelError(
                    f"{rec.name}: label is None (emotion {rec.emotion!r} is dropped by the class mapping)"
                )
            if not 0 <= rec.label < len(class_names):
                raise UnknownLabelError(
                    f"{rec.name}: label {rec.label} outside classes 0..{len(class_names) - 1} {class_names}"
                )
            src = record_source(rec)
            numbers = src.numbers()
            apex = _record_apex(rec, numbers)
            onset, apex, replaced = resolve_onset_apex(numbers, rec.onset, apex, rec.name)
            cpath = None
            if cache_dir is not None:
                used = [onset, apex, *(apex_window(numbers, onset, apex) if p.apex_window else [])]
                key = sample_cache_key(rec.name, p, {"onset": onset, "apex": apex}, _source_identity(src, used))
                cpath = sample_cache_path(cache_dir, rec.name, key)
                hit = load_cached_sample(cpath)
                if hit is not None:
                    kept.append((rec, hit))
                    n_cached += 1
                    continue
            s = _sample_from_source(src, numbers, onset, apex, replaced, p, rec.name)
            arrays = _cacheable(s)
            if cpath is not None:
                save_npz_atomic(cpath, arrays)
            kept.append((rec, arrays))
            n_computed += 1
        except (SampleError, cv2.error) as e:
            # cv2.error: OpenCV rejecting a frame it decoded (odd depth/size); still one
            # bad sample, not a reason to lose the batch. Anything else is a bug: raise.
            skipped[rec.name] = f"{type(e).__name__}: {e}"
            log.info("skipped %s", skipped[rec.name])

    if manifest_path is not None:
        write_json_atomic(Path(manifest_path), skipped)
    return _assemble(
        kept,
        class_names,
        {
            "preprocess": p.as_dict(),
            "params_digest": p.digest(),
            "skipped": skipped,
            "counts": {"computed": n_computed, "cached": n_cached, "skipped": len(skipped)},
            "manifest": None if manifest_path is None else str(manifest_path),
            "clamped_landmarks": {r.name: int(a["clamped"]) for r, a in kept if int(a["clamped"])},
            "constant_channels": {
                r.name: [c for c, f in zip(optical_flow.CHANNELS, a["constant_channels"]) if f]
                for r, a in kept
                if np.any(a["constant_channels"])
            },
            "onset_replaced": [r.name for r, a in kept if bool(a["onset_replaced"])],
        },
    )


def _assemble(kept: list[tuple[ClipRecord, dict]], class_names: tuple[str, ...], meta: dict) -> MESamples:
    n = len(kept)
    au = np.zeros((n, 12), np.float32)
    mask = np.zeros((n, 12), np.float32)
    for i, (r, _) in enumerate(kept):
        au[i], mask[i] = r.au_multi_hot(known=r.dataset not in DATASETS_WITHOUT_AU_LABELS)

    def stack(k, shape):
        return np.stack([a[k] for _, a in kept]).astype(np.float32) if n else np.zeros((0, *shape), np.float32)

    return MESamples(
        flow128=stack("flow128", (128, 128, 3)),
        flow28=stack("flow28", (28, 28, 3)),
        landmarks=stack("landmarks", (65, 2)),
        label=np.array([r.label for r, _ in kept], np.int32),
        au=au,
        au_mask=mask,
        subject=np.array([r.subject for r, _ in kept], dtype=str),
        name=np.array([r.name for r, _ in kept], dtype=str),
        dataset=np.array([r.dataset for r, _ in kept], dtype=str),
        class_names=tuple(class_names),
        meta=meta,
    )
