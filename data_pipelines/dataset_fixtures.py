"""Tiny dataset folders laid out like the real (licence-gated) releases, with real faces.

Training configs and readers for CAS(ME)^3, DFME and CASME II cannot be tested on the
real data in CI, so ``write_fixture_layout`` writes a release-shaped folder: the label
sheet (.xlsx with the real sheet and column names) and frame folders whose frames are
taken from the MIT-licensed clip ``tests/fixtures/faces/single_face.mp4`` (a real
neutral -> smile -> neutral face; see that folder's LICENSES.md).

Each clip is 9 frames sampled from the video: the sheet's onset is the neutral video
frame 0, its apex the smiling video frame 35, its offset video frame 40 (the clip's
own frame numbers are contiguous, so a reader finds every frame onset..offset).
Labels cycle over the classes so that every subject has at least two classes.

Layouts written (all below ``dest``):
- casme3: ``annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` (sheet ``label``,
  every cell text) + ``data/part_A/spNO.<k>/<task>/color/<n>.jpg``; the clips of one
  subject share one task video and differ by onset (the real "key on onset" quirk).
- dfme: ``DFME_data_coding.xlsx`` (Subject, Filename, Onset, Apex, Offset, AU,
  Emotion, fps: emotion in column 6) + ``<part folder>/micro_static_aligned_croped/
  <emotion>/<Filename>/<n>.jpg``; subjects are spread over parts A, C, D-500fps, B ...
  so every folder rule is exercised. (The release's frame file naming is not
  documented publicly; frames are numbered ``<n>.jpg``.)
- casme2: ``CASME2-coding-20140508.xlsx`` (Sheet1, real column names, two unnamed
  blank columns) + ``CASME2_RAW_selected/sub<XX>/EP0<k>_0<c>f/img<n>.jpg``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

FACE_CLIP = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "faces" / "single_face.mp4"
# Video frame indices used for a clip's 9 frames: neutral onset ... smiling apex.
CLIP_VIDEO_FRAMES = (0, 5, 10, 15, 20, 25, 30, 35, 40)
APEX_POS = CLIP_VIDEO_FRAMES.index(35)
KINDS = ("casme3", "dfme", "casme2")

# Per kind: (emotion word per class index, AU string per class index). AU strings use
# the real sheets' notation (side prefixes, intensities) so parsers get exercised.
_CASME3 = (("disgust", "happy", "surprise"), ("4+L10", "R12", "1+2"))
_CASME2 = (("disgust", "happiness", "surprise"), ("4+L10", "6+12", "1+R2"))
_DFME = (
    ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"),
    ("4+7", "R14", "9+10", "1+2+4+20", "6+12", "1+4+15", "1+2+5"),
)
_DFME_SUBJECTS = (1, 111, 301, 16, 302, 200, 5)


@functools.lru_cache(maxsize=1)
def _video_frames() -> tuple[np.ndarray, ...]:
    import cv2

    if not FACE_CLIP.is_file():
        raise FileNotFoundError(
            f"fixture face clip {FACE_CLIP} is missing (it ships with the repository's tests/fixtures/faces/)"
        )
    cap = cv2.VideoCapture(str(FACE_CLIP))
    frames = []
    try:
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
    finally:
        cap.release()
    if len(frames) <= max(CLIP_VIDEO_FRAMES):
        raise ValueError(f"{FACE_CLIP}: decoded {len(frames)} frames, need {max(CLIP_VIDEO_FRAMES) + 1}")
    return tuple(frames)


def _write_frames(folder: Path, first: int, pattern: str) -> tuple[int, int, int]:
    """Write the 9 clip frames numbered first..first+8; return (onset, apex, offset)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    video = _video_frames()
    for k, vf in enumerate(CLIP_VIDEO_FRAMES):
        path = folder / pattern.format(n=first + k)
        if not cv2.imwrite(str(path), video[vf], [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OSError(f"could not write fixture frame {path}")
    return first, first + APEX_POS, first + len(CLIP_VIDEO_FRAMES) - 1


def _write_xlsx(path: Path, sheet: str, header: list, rows: list[list]) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(header)
    for r in rows:
        ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


def write_fixture_layout(kind: str, dest: Path, n_subjects: int = 3, clips_per_subject: int = 2) -> Path:
    """Write a tiny release of ``kind`` ("casme3", "dfme", "casme2") below ``dest``.

    Returns the dataset root to pass to the reader / ``load_dataset``. Needs
    ``n_subjects >= 1`` and ``clips_per_subject >= 2`` (two classes per subject).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown fixture kind {kind!r}; choose from {KINDS}")
    if n_subjects < 1 or clips_per_subject < 2:
        raise ValueError(f"need n_subjects >= 1 and clips_per_subject >= 2 (got {n_subjects}, {clips_per_subject})")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return {"casme3": _casme3, "dfme": _dfme, "casme2": _casme2}[kind](dest, n_subjects, clips_per_subject)


def _casme3(dest: Path, n_subj: int, n_clips: int) -> Path:
    words, aus = _CASME3
    rows = []
    for s in range(n_subj):
        subj, task = f"spNO.{s + 1}", "abcdefghijklm"[s % 13]
        folder = dest / "data" / "part_A" / subj / task / "color"
        for c in range(n_clips):
            cls = (s + c) % len(words)
            on, ap, off = _write_frames(folder, 100 * c + 1, "{n}.jpg")
            objective = ("III", "I", "II")[cls]
            # The real sheet stores every cell as text.
            rows.append(
                [
                    subj,
                    task,
                    str(on),
                    str(ap),
                    str(off),
                    aus[cls],
                    objective,
                    words[cls],
                    aus[cls].replace("+", ",").replace("L", ""),
                ]
            )
    _write_xlsx(
        dest / "annotation" / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
        "label",
        ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion", "AU_Split"],
        rows,
    )
    return dest


def _dfme(dest: Path, n_subj: int, n_clips: int) -> Path:
    from data_pipelines.readers.dfme import FRAMES_SUBDIR, part_folder

    words, aus = _DFME
    rows = []
    for s in range(n_subj):
        num = _DFME_SUBJECTS[s] if s < len(_DFME_SUBJECTS) else 400 + s
        subj = f"sub{num:04d}"
        fps = 500 if num >= 301 and s % 2 == 0 else 200
        for c in range(n_clips):
            cls = (s + c) % len(words)
            fname = f"{subj}_{c + 1:02d}"
            folder = dest / part_folder(num, fps) / FRAMES_SUBDIR / words[cls] / fname
            on, ap, off = _write_frames(folder, 1, "{n}.jpg")
            rows.append([subj, fname, on, ap, off, aus[cls], words[cls], fps])
    _write_xlsx(
        dest / "DFME_data_coding.xlsx",
        "Sheet1",
        ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Emotion", "fps"],
        rows,
    )
    return dest


def _casme2(dest: Path, n_subj: int, n_clips: int) -> Path:
    words, aus = _CASME2
    rows = []
    for s in range(n_subj):
        subj = f"{s + 1:02d}"
        for c in range(n_clips):
            cls = (s + c) % len(words)
            fname = f"EP0{c + 1}_0{s + 1}f"
            folder = dest / "CASME2_RAW_selected" / f"sub{subj}" / fname
            on, ap, off = _write_frames(folder, 20 * c + 10, "img{n}.jpg")
            rows.append([subj, fname, None, on, ap, off, None, aus[cls], words[cls]])
    _write_xlsx(
        dest / "CASME2-coding-20140508.xlsx",
        "Sheet1",
        [
            "Subject",
            "Filename",
            None,
            "OnsetFrame",
            "ApexFrame",
            "OffsetFrame",
            None,
            "Action Units",
            "Estimated Emotion",
        ],
        rows,
    )
    return dest
