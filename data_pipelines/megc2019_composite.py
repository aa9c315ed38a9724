"""The released MEGC2019 composite (SMIC + CASME II + SAMM, 442 samples) as ``MESamples``.

Source (read from the shared data root, never copied into the repository):
``megc2019_htnet/combined_3_class2_for_optical_flow.csv`` (dataset, sub, filename_o,
label, imagename), ``flow28/<name> .png`` (28×28 u, v, strain, each min-max scaled to
0–255) and ``apex_faces/<name>.jpg`` (224×224 apex face crop, grey in RGB).

What we compute:
- ``flow28`` = the PNG / 255 as float32, channels reordered to (u, v, strain). OpenCV
  decodes PNGs as BGR; in the files' RGB order the third channel is the strain
  (it correlates ~0.8 with the strain recomputed from the other two; the first
  channel ~-0.1), so the documented (u, v, strain) order is the RGB order.
- ``flow128`` = ``cv2.resize(flow28, (128, 128), interpolation=cv2.INTER_LINEAR)``
  (bilinear, half-pixel centres). Bilinear weights are convex, so values stay in
  [0, 1]; we clip anyway against float rounding. It carries no more detail than
  flow28: this is what a 128-px ROI stage can get from a 28-px release.
- ``landmarks`` = dlib 68 points on the apex face (frontal detector with upsample 1,
  highest score; the whole image as the face box when nothing is detected: these are
  tight crops, and the data README measured that fallback within 0.8 % of the
  inter-ocular distance), scaled by 128/224 into the 128 frame, reduced to the 65
  keypoints, and clamped into [0, 127].
- ``landmark_frame="flow"`` (default): the landmarks moved into the frame of the flow
  they index. The released SAMM flows were cut from a different face box than the SAMM
  apex crops: their face sits about 3 px (of 28) higher and is about 18 % taller, so
  apex-face landmarks put the brow and eye ROI windows on the eyes and cheeks. SAMM
  landmarks are therefore mapped per axis by ``FLOW_FRAME["samm"]``, measured without
  labels by ``landmark_frame.frame_maps`` (the SAMM mean motion image registered onto
  the CASME II one, whose landmarks sit on its motion; printed by
  ``experiments/au_branch/landmark_flow_frame.py``), then clamped again. CASME II and SMIC stay as
  detected (the same registration moves SMIC by under one flow pixel). ``"apex"`` keeps
  the landmarks as detected on the apex crops (runs from before the fix, issue 26).
- AU labels: CASME II and SAMM rows of the coding sheets joined on (subject,
  filename); SMIC has no AU coding (mask 0), and neither has an unmatched sample.
  The sheets are required (the sibling ``annotations/`` folder, or ``annotations=``):
  a composite without them is an error naming the folder searched, unless
  ``allow_missing_au_labels=True`` (config ``data.kwargs.allow_missing_au_labels``),
  which loads every sample with AU mask 0.

Every CSV row must have a non-blank dataset, sub, filename_o, label (0/1/2) and
imagename; a blank or malformed field is an ``CompositeError`` naming the file and
line (a blank subject would otherwise become an extra subject and LOSO fold).

The arrays are cached as one .npz (written atomically) keyed by a hash of the input
files' names, sizes and modification times, the content of the CSV and the sheets,
and this module's processing version, so a changed input or changed processing never
serves stale data; a missing input is an error before any cache is looked at.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from data_pipelines.au_parse import au_targets
from data_pipelines.label_maps import MEGC3_CLASSES
from fedpsyau_jax.core.atomic_files import save_npz_atomic
from fedpsyau_jax.core.errors import InputDataError, InputFileError, unknown_name
from fedpsyau_jax.core.keypoints import dlib68_to_65
from fedpsyau_jax.core.sample_arrays import MESamples

log = logging.getLogger(__name__)

CSV_NAME = "combined_3_class2_for_optical_flow.csv"
FLOW_DIR, FACE_DIR = "flow28", "apex_faces"
FACE_SIZE, CROP_SIZE = 224, 128
DETECTOR_UPSAMPLE = 1
# Bump when the processing below changes: part of the cache key.
PROCESSING_VERSION = "megc2019-composite-v1"
# Per dataset, (a_x, b_x, a_y, b_y) mapping apex-crop landmarks (128 frame) into the
# flow's frame: x' = a_x x + b_x, y' = a_y y + b_y (landmark_frame.frame_maps).
FLOW_FRAME: dict[str, tuple[float, float, float, float]] = {"samm": (1.000, -2.67, 1.155, -24.20)}
LANDMARK_FRAMES = ("flow", "apex")
_DATASET_ALIASES = {"casme2": "casme2", "casmeii": "casme2", "samm": "samm", "smic": "smic", "smichs": "smic"}


class CompositeError(InputDataError):
    """The composite release is inconsistent (a sample cannot be joined, bad file...)."""


def normalise_dataset(raw: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", raw.lower())
    if key not in _DATASET_ALIASES:
        raise CompositeError(f"{CSV_NAME}: unknown dataset {raw!r} (expected casme2/samm/smic)")
    return _DATASET_ALIASES[key]


def read_composite_csv(root: Path) -> list[dict[str, str]]:
    """Rows of the composite CSV with normalised ``dataset`` and int-checked ``label``."""
    path = Path(root) / CSV_NAME
    if not path.is_file():
        raise InputFileError(f"MEGC2019 composite {path}: does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise CompositeError(f"{path}: not a readable UTF-8 CSV ({e})") from None
    need = {"dataset", "sub", "filename_o", "label", "imagename"}
    if not rows or not need <= set(rows[0]):
        raise CompositeError(f"{path}: expected columns {sorted(need)}, got {list(rows[0]) if rows else []}")
    out = []
    for i, r in enumerate(rows, 2):
        for col in ("dataset", "sub", "filename_o", "label", "imagename"):
            v = r.get(col)
            if v is None or not v.strip():
                raise CompositeError(
                    f"{path} line {i}: {col!r} is blank (every row needs dataset, sub, filename_o, label, imagename)"
                )
        if any(c.isspace() for c in r["sub"].strip()) or "/" in r["sub"]:
            raise CompositeError(f"{path} line {i}: 'sub' {r['sub']!r} is not a subject id")
        lab = r["label"].strip()
        if lab not in ("0", "1", "2"):
            raise CompositeError(f"{path} line {i}: label {r['label']!r} is not 0/1/2")
        name = r["imagename"].strip()
        if not name.lower().endswith(".jpg"):
            raise CompositeError(f"{path} line {i}: imagename {name!r} is not a .jpg name")
        try:
            ds = normalise_dataset(r["dataset"])
        except CompositeError as e:
            raise CompositeError(f"{path} line {i}: {str(e).split(': ', 1)[1]}") from None
        out.append(
            {
                "dataset": ds,
                "sub": r["sub"].strip(),
                "filename": r["filename_o"].strip(),
                "label": lab,
                "name": name[:-4],
            }
        )
    return out


def flow_file(flow_dir: Path, name: str, dataset: str, available: set[str]) -> Path:
    """The flow PNG of sample ``name``, surviving the release's naming quirks.

    Every flow file ends in " .png" (with a space). 93 SMIC files of subjects
    s01–s09 spell the inner subject with two digits (``s01_s01_ne_01`` for the CSV's
    ``s01_s1_ne_01``), so for SMIC the inner ``s<k>`` is also tried zero-padded.
    """
    cands = [name]
    if dataset == "smic":
        m = re.fullmatch(r"(s\d+)_s(\d+)_(.+)", name)
        if m:
            cands.append(f"{m.group(1)}_s{int(m.group(2)):02d}_{m.group(3)}")
    for c in cands:
        for fn in (f"{c} .png", f"{c}.png"):
            if fn in available:
                return flow_dir / fn
    raise CompositeError(
        f"MEGC2019 composite: no flow file for sample {name!r} ({dataset}) "
        f"in {flow_dir} (tried {[c + ' .png' for c in cands]})"
    )


def _input_files(root: Path, annotations: Path | None) -> list[Path]:
    files = [root / CSV_NAME]
    files += sorted((root / FLOW_DIR).iterdir()) + sorted((root / FACE_DIR).iterdir())
    if annotations is not None and annotations.is_dir():
        files += sorted(annotations.glob("CASME2*.xlsx")) + sorted(annotations.glob("SAMM*.xlsx"))
    return files


# Files small enough to hash whole for the cache key (the CSV and the label sheets).
_CONTENT_HASH_MAX_BYTES = 8 << 20


def cache_key(files: list[Path], root: Path) -> str:
    h = hashlib.sha256(PROCESSING_VERSION.encode())
    for f in files:
        st = f.stat()
        if f.suffix.lower() in (".csv", ".xlsx") and st.st_size <= _CONTENT_HASH_MAX_BYTES:
            h.update(hashlib.sha256(f.read_bytes()).digest())
        # Relative names keep the key stable when the shared root is mounted elsewhere.
        try:
            rel = f.relative_to(root)
        except ValueError:
            rel = Path("annotations") / f.name
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def detect_landmarks68(grey: np.ndarray) -> tuple[np.ndarray, bool]:
    """dlib 68 points (68, 2) of a face crop and whether the whole-image fallback was used."""
    import dlib

    from data_pipelines.dlib_models import frontal_detector, shape_predictor

    dets, scores, _ = frontal_detector().run(grey, DETECTOR_UPSAMPLE, 0.0)
    if len(dets):
        box, fallback = dets[int(np.argmax(scores))], False
    else:
        h, w = grey.shape
        box, fallback = dlib.rectangle(0, 0, w - 1, h - 1), True
    shape = shape_predictor()(grey, box)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32), fallback


def _au_lookup(annotations: Path | None) -> tuple[dict, list[str]]:
    """{(dataset, subject, filename-key): ClipRecord} for CASME II and SAMM sheets.

    Join key: the CSV's ``sub`` is ``sub01`` (CASME II) / ``006`` (SAMM) and
    ``filename_o`` the sheet's Filename; CASME II subjects are compared as two-digit
    numbers and filenames without a trailing "f", because the sheet and the released
    names do not always agree on that "f".
    """
    from data_pipelines.readers.casme2 import read_casme2
    from data_pipelines.readers.samm import read_samm

    table, missing = {}, []
    for ds, reader, pat in (("casme2", read_casme2, "CASME2*.xlsx"), ("samm", read_samm, "SAMM*.xlsx")):
        sheets = sorted(annotations.glob(pat)) if annotations and annotations.is_dir() else []
        if not sheets:
            missing.append(ds)
            continue
        for r in reader(sheets[0]):
            table[_join_key(ds, r.subject, r.clip)] = r
    return table, missing


def _join_key(dataset: str, sub: str, filename: str) -> tuple[str, str, str]:
    if dataset == "casme2":
        s = sub.lower().removeprefix("sub")
        return dataset, f"{int(s):02d}" if s.isdigit() else s, filename.removesuffix("f")
    return dataset, sub, filename


def _build(root: Path, annotations: Path | None) -> MESamples:
    import cv2

    rows = read_composite_csv(root)
    flow_dir, face_dir = root / FLOW_DIR, root / FACE_DIR
    available = set(os.listdir(flow_dir))
    names = [r["name"] for r in rows]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CompositeError(f"MEGC2019 composite: duplicate sample names {dup[:5]}")
    au_table, sheets_missing = _au_lookup(annotations)
    n = len(rows)
    flow28 = np.zeros((n, 28, 28, 3), np.float32)
    flow128 = np.zeros((n, CROP_SIZE, CROP_SIZE, 3), np.float32)
    lm = np.zeros((n, 65, 2), np.float32)
    au = np.zeros((n, 12), np.float32)
    au_mask = np.zeros((n, 12), np.float32)
    fallbacks, clamped, unmatched, disagree = [], [], [], []
    for i, r in enumerate(rows):
        fpath = flow_file(flow_dir, r["name"], r["dataset"], available)
        img = cv2.imread(str(fpath), cv2.IMREAD_COLOR)
        if img is None or img.shape != (28, 28, 3):
            raise CompositeError(
                f"sample {r['name']}: flow {fpath} unreadable or not 28x28x3 (got {None if img is None else img.shape})"
            )
        f28 = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        if not f28.any():
            raise CompositeError(f"sample {r['name']}: flow {fpath} is all zero")
        flow28[i] = f28
        flow128[i] = np.clip(cv2.resize(f28, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
        face_path = face_dir / f"{r['name']}.jpg"
        if not face_path.is_file():
            raise InputFileError(f"sample {r['name']}: apex face {face_path} does not exist")
        grey = cv2.imread(str(face_path), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise CompositeError(f"sample {r['name']}: apex face {face_path} cannot be decoded")
        pts68, fb = detect_landmarks68(grey)
        if fb:
            fallbacks.append(r["name"])
        # The apex crop and the flow cover the same face region; only the size differs.
        scale = np.array([CROP_SIZE / grey.shape[1], CROP_SIZE / grey.shape[0]], np.float32)
        pts65 = dlib68_to_65(pts68 * scale)
        inside = np.clip(pts65, 0.0, CROP_SIZE - 1.0)
        if not np.array_equal(inside, pts65):
            clamped.append(r["name"])
        lm[i] = inside
        if r["dataset"] in ("casme2", "samm") and r["dataset"] not in sheets_missing:
            rec = au_table.get(_join_key(r["dataset"], r["sub"], r["filename"]))
            if rec is None:
                unmatched.append(r["name"])
            else:
                au[i], au_mask[i] = au_targets(rec.aus)
                if rec.label is not None and rec.label != int(r["label"]):
                    disagree.append(r["name"])
    if sheets_missing:
        log.warning(
            "MEGC2019 composite: no AU coding sheet for %s in %s; their samples have no "
            "AU labels (allow_missing_au_labels)",
            "/".join(sheets_missing),
            annotations,
        )
    if unmatched:
        log.warning(
            "MEGC2019 composite: %d CASME II/SAMM sample(s) without an AU row: %s", len(unmatched), unmatched[:10]
        )
    meta = {
        "source": "megc2019_htnet (HTNet release)",
        "flow128_resize": "cv2.resize INTER_LINEAR from flow28",
        "landmarks": f"dlib 68-point on {FACE_DIR} (frontal detector upsample {DETECTOR_UPSAMPLE}, "
        "whole-image box fallback), x128/224, dlib68_to_65, clamped to [0,127]",
        "face_fallbacks": len(fallbacks),
        "face_fallback_names": fallbacks,
        "landmarks_clamped": len(clamped),
        "landmarks_clamped_names": clamped,
        "au_sheets_missing": sheets_missing,
        "au_unmatched": len(unmatched),
        "au_unmatched_names": unmatched,
        "label_disagreements_with_sheets": disagree,
    }
    return MESamples(
        flow128=flow128,
        flow28=flow28,
        landmarks=lm,
        label=np.array([int(r["label"]) for r in rows], np.int32),
        au=au,
        au_mask=au_mask,
        subject=np.array([f"{r['dataset']}_{r['sub']}" for r in rows]),
        name=np.array(names),
        dataset=np.array([r["dataset"] for r in rows]),
        class_names=MEGC3_CLASSES,
        meta=meta,
    )


def _save(path: Path, s: MESamples) -> None:
    save_npz_atomic(
        path,
        dict(
            flow128=s.flow128,
            flow28=s.flow28,
            landmarks=s.landmarks,
            label=s.label,
            au=s.au,
            au_mask=s.au_mask,
            subject=s.subject,
            name=s.name,
            dataset=s.dataset,
            class_names=np.array(s.class_names),
            meta=np.array(json.dumps(s.meta)),
        ),
    )


def _load(path: Path) -> MESamples:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        meta["cache_file"] = str(path)
        return MESamples(
            flow128=z["flow128"],
            flow28=z["flow28"],
            landmarks=z["landmarks"],
            label=z["label"],
            au=z["au"],
            au_mask=z["au_mask"],
            subject=z["subject"],
            name=z["name"],
            dataset=z["dataset"],
            class_names=tuple(str(c) for c in z["class_names"]),
            meta=meta,
        )


def check_annotations(annotations: Path, allow_missing: bool) -> None:
    """The CASME II and SAMM coding sheets must be in ``annotations`` (AU labels),
    unless ``allow_missing``; the error names the folder searched and the patterns."""
    if allow_missing:
        return
    hint = (
        "pass annotations=<folder with the coding sheets>, or "
        "allow_missing_au_labels=True (config data.kwargs.allow_missing_au_labels=true) "
        "to load without AU labels"
    )
    if not annotations.is_dir():
        raise InputFileError(
            f"MEGC2019 composite AU sheets: folder {annotations} does not exist (searched {annotations}); {hint}"
        )
    missing = [pat for pat in ("CASME2*.xlsx", "SAMM*.xlsx") if not sorted(annotations.glob(pat))]
    if missing:
        raise InputFileError(
            f"MEGC2019 composite AU sheets: no {' / '.join(missing)} in {annotations} (searched {annotations}); {hint}"
        )


def _flag(what: str, v) -> bool:
    """A boolean option that may arrive as text from a config override ("true")."""
    if isinstance(v, (bool, int)) and v in (0, 1):
        return bool(v)
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off", "", "none"):
        return False
    from fedpsyau_jax.core.errors import UserError

    raise UserError(f"{what} {v!r}: expected true or false")


def load_megc2019_composite(
    root: Path | None = None,
    cache_dir: Path | None = None,
    annotations: Path | None = None,
    allow_missing_au_labels: bool = False,
    landmark_frame: str = "flow",
) -> MESamples:
    """All 442 composite samples; computed once, then served from ``cache_dir``.

    ``root`` defaults to ``<shared>/megc2019_htnet``; ``annotations`` to the sibling
    ``annotations/`` folder (the CASME II and SAMM coding sheets, for AU labels). A
    missing folder or sheet is an ``InputFileError`` unless
    ``allow_missing_au_labels`` (then those AU masks are 0 and
    ``meta["au_sheets_missing"]`` says so). ``cache_dir`` defaults to
    ``$FEDPSYAU_CACHE`` or ``~/.cache/fedpsyau``.
    """
    from data_pipelines.cache_dirs import default_cache_dir
    from fedpsyau_jax.core.shared_data import shared_path

    if landmark_frame not in LANDMARK_FRAMES:
        raise unknown_name("data.kwargs.landmark_frame", landmark_frame, LANDMARK_FRAMES)
    root = Path(root) if root is not None else shared_path("megc2019_htnet")
    if not root.is_dir():
        raise InputFileError(f"MEGC2019 composite root {root}: does not exist (or is not a folder)")
    for sub in (FLOW_DIR, FACE_DIR):
        if not (root / sub).is_dir():
            raise InputFileError(
                f"MEGC2019 composite {root / sub}: does not exist "
                f"(the release has {CSV_NAME}, {FLOW_DIR}/ and {FACE_DIR}/)"
            )
    if not (root / CSV_NAME).is_file():
        raise InputFileError(f"MEGC2019 composite {root / CSV_NAME}: does not exist")
    annotations = Path(annotations) if annotations is not None else root.parent / "annotations"
    check_annotations(annotations, _flag("allow_missing_au_labels", allow_missing_au_labels))
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(_input_files(root, annotations), root)
    path = cache_dir / f"megc2019_composite-{key}.npz"
    if path.is_file():
        try:
            s = _load(path)
            s.meta["from_cache"] = True
            return to_flow_frame(s) if landmark_frame == "flow" else s
        except (OSError, ValueError, KeyError) as e:  # corrupt/old cache: rebuild it
            log.warning("ignoring unreadable cache %s: %s", path, e)
    s = _build(root, annotations)
    _save(path, s)
    s.meta.update(from_cache=False, cache_file=str(path))
    return to_flow_frame(s) if landmark_frame == "flow" else s


def to_flow_frame(s: MESamples) -> MESamples:
    """``s`` with each dataset's landmarks mapped by ``FLOW_FRAME`` and clamped into
    [0, 127] again (``meta["landmark_frame"]`` records the maps and how many samples
    had a point clamped)."""
    lm = np.array(s.landmarks, np.float32)
    ds = np.asarray(s.dataset).astype(str)
    clamped = 0
    for name, (ax, bx, ay, by) in FLOW_FRAME.items():
        k = ds == name
        moved = lm[k] * np.array([ax, ay], np.float32) + np.array([bx, by], np.float32)
        inside = np.clip(moved, 0.0, CROP_SIZE - 1.0)
        clamped += int((inside != moved).any(axis=(1, 2)).sum())
        lm[k] = inside
    maps = {k: list(v) for k, v in FLOW_FRAME.items()}
    meta = dict(s.meta, landmark_frame={"frame": "flow", "maps": maps, "clamped": clamped})
    return dataclasses.replace(s, landmarks=lm, meta=meta)
