"""Lay the public MEGC2019 composite out as ``megc2019_composite`` reads it, checked.

Sources: two public GitHub repositories, cloned by the user.

- HTNet (``wangzhifengharrison/HTNet``), the ``htnet`` folder:
  ``combined_3_class2_for_optical_flow.csv`` (at the root),
  ``datasets/STSNet_whole_norm_u_v_os/<name> .png`` (28×28 flows u, v, strain; note the
  space before ``.png``) and ``datasets/combined_datasets_whole/<name>.jpg`` (224×224
  apex faces); ``cas(me)3_part_A_edited.csv`` is copied too when present.
- FED-PsyAU (``MELABIPCAS/FED-PsyAU``), the optional ``reference`` folder (the clone, or
  its ``Fed_Framework/data_coding`` folder itself): ``CASME2-coding.xlsx`` and
  ``SAMM-coding.xlsx`` (AU labels; needed for the AU branch and stage 1) and
  ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` (copied when present).

Result, a data root for ``FEDPSYAU_SHARED_DATA`` (``out``)::

    out/megc2019_htnet/combined_3_class2_for_optical_flow.csv
    out/megc2019_htnet/flow28/<name> .png          (only the flows the CSV names)
    out/megc2019_htnet/apex_faces/<name>.jpg
    out/megc2019_htnet/import_manifest.json        (sources, counts, sha256 of every file)
    out/annotations/CASME2-coding.xlsx, SAMM-coding.xlsx, ...

Checks, all before anything is written: the CSV parses (``read_composite_csv``); every
row has its flow (``flow_file``, with the release's SMIC two-digit spelling) named with
the space, decodable, 28×28×3 and not all zero, and its apex face, decodable and
224×224; the coding sheets present parse. Each problem is one line ``<file>: <problem>``
and all of them are reported together (``ImportCheckError.problems``). A sample count
other than the release's 442 and absent coding sheets are warnings only.

Nothing is half-written: the import is assembled in a temporary folder next to ``out``,
its copies hashed, and renamed into place at the end. The import owns
``out/megc2019_htnet`` and ``out/annotations`` (other folders in ``out`` are left
alone); an existing non-empty one is replaced only with ``force``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from data_pipelines.megc2019_composite import CSV_NAME, FACE_DIR, FLOW_DIR, CompositeError, flow_file
from data_pipelines.megc2019_composite import read_composite_csv
from fedpsyau_jax.core.errors import InputDataError, InputFileError, OutputPathError, check_output_dir

log = logging.getLogger(__name__)

RELEASE_SAMPLES = 442
HTNET_FLOWS = Path("datasets") / "STSNet_whole_norm_u_v_os"
HTNET_FACES = Path("datasets") / "combined_datasets_whole"
HTNET_EXTRA = ("cas(me)3_part_A_edited.csv",)  # copied when present, not needed by the loader
REFERENCE_SHEETS_DIR = Path("Fed_Framework") / "data_coding"
AU_SHEETS = ("CASME2-coding.xlsx", "SAMM-coding.xlsx")  # the composite loader's AU labels
EXTRA_SHEETS = ("cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",)
DATA_DIR, SHEETS_DIR = "megc2019_htnet", "annotations"
MANIFEST = "import_manifest.json"
FLOW_SHAPE, FACE_SIZE = (28, 28, 3), (224, 224)
# Problem lines shown before "... and N more" (a wrong folder would list every sample).
MAX_PROBLEM_LINES = 30


class ImportCheckError(InputDataError):
    """The clones are not a complete, well-formed release; ``problems`` holds one
    ``<file>: <problem>`` line each. Nothing was written."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            f"MEGC2019 import: {len(self.problems)} problem(s), nothing was written; first: {self.problems[0]}"
        )


@dataclasses.dataclass
class ImportPlan:
    """What the checks found: files to copy (destination relative to ``out`` ->
    source), the CSV rows, the AU sheets not found, and warning lines."""

    copies: dict[str, Path]
    rows: list[dict[str, str]]
    sheets_missing: list[str]
    sheets_dir: Path | None
    warnings: list[str]


def flow_only_command(out: Path) -> str:
    """The LOSO recipe without the AU branch: what trains without the coding sheets."""
    return (
        f"FEDPSYAU_SHARED_DATA={out} fedpsyau train --config=configs/megc2019_composite_loso.py "
        "--workdir=runs/megc2019_loso_flow --config.data.kwargs.allow_missing_au_labels=true "
        "--config.model.use_au_branch=false --config.pretrain.epochs=0"
    )


def _image_problem(path: Path, shape: tuple[int, ...], what: str) -> str | None:
    """None when ``path`` decodes to ``shape`` ((h, w) or (h, w, c)); else the problem line."""
    import cv2
    import numpy as np

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return f"{path}: {what} cannot be decoded as an image"
    got = img.shape[: len(shape)] if len(shape) == 2 else img.shape
    if got != shape:
        want, have = "x".join(map(str, shape)), "x".join(map(str, img.shape))
        return f"{path}: {what} is {have}, expected {want}"
    if len(shape) == 3 and not np.asarray(img).any():
        return f"{path}: {what} is all zero"
    return None


def _find_flow(flow_dir: Path, spaced: set[str], bare: set[str], row: dict[str, str]) -> tuple[Path | None, str]:
    """(flow file, "") or (None, problem line). Only names with the release's space
    before ``.png`` (``spaced``) count; a file without it (``bare``) is misnamed."""
    try:
        return flow_file(flow_dir, row["name"], row["dataset"], spaced), ""
    except CompositeError:
        pass
    try:
        found = flow_file(flow_dir, row["name"], row["dataset"], bare)
        return None, f"{found}: misnamed flow of sample {row['name']}: the release names it '{found.stem} .png'"
    except CompositeError:
        return None, f"{flow_dir / (row['name'] + ' .png')}: missing (flow of sample {row['name']})"


def _find_face(face_dir: Path, listing: set[str], name: str) -> tuple[Path | None, str]:
    """(apex face, "") or (None, problem line); another extension is reported as misnamed."""
    if f"{name}.jpg" in listing:
        return face_dir / f"{name}.jpg", ""
    other = sorted(n for n in listing if Path(n).stem.strip() == name)
    if other:
        return None, f"{face_dir / other[0]}: misnamed apex face of sample {name}: the release names it '{name}.jpg'"
    return None, f"{face_dir / (name + '.jpg')}: missing (apex face of sample {name})"


def _listing(folder: Path, problems: list[str], what: str) -> set[str] | None:
    if not folder.is_dir():
        problems.append(f"{folder}: missing ({what} folder of the HTNet release)")
        return None
    return set(os.listdir(folder))


def _checked(found: tuple[Path | None, str], dest: str, shape: tuple[int, ...], what: str, problems: list[str]):
    """{destination: source} of one found, well-formed file; else its problem appended."""
    path, problem = found
    if path is not None and not problem:
        problem = _image_problem(path, shape, what) or ""
    if path is None or problem:
        problems.append(problem)
        return {}
    return {f"{DATA_DIR}/{dest}/{path.name}": path}


def _check_htnet(htnet: Path, problems: list[str]) -> tuple[list[dict[str, str]], dict[str, Path]]:
    """The CSV rows and {destination: source} of the HTNet clone's files; problems appended."""
    try:
        rows = read_composite_csv(htnet)
    except (CompositeError, InputFileError) as e:
        problems.append(str(e).removeprefix("MEGC2019 composite "))
        return [], {}
    copies = {f"{DATA_DIR}/{CSV_NAME}": htnet / CSV_NAME}
    copies.update({f"{DATA_DIR}/{n}": htnet / n for n in HTNET_EXTRA if (htnet / n).is_file()})
    names = collections.Counter(r["name"] for r in rows)
    for n in sorted(k for k, c in names.items() if c > 1):
        problems.append(f"{htnet / CSV_NAME}: sample {n} is listed {names[n]} times")
    flow_dir, face_dir = htnet / HTNET_FLOWS, htnet / HTNET_FACES
    flows, faces = _listing(flow_dir, problems, "flow"), _listing(face_dir, problems, "apex face")
    spaced = {n for n in flows or () if n.endswith(" .png")}
    bare = (flows or set()) - spaced
    for r in rows:
        if flows is not None:
            found = _find_flow(flow_dir, spaced, bare, r)
            copies.update(_checked(found, FLOW_DIR, FLOW_SHAPE, "flow", problems))
        if faces is not None:
            found = _find_face(face_dir, faces, r["name"])
            copies.update(_checked(found, FACE_DIR, FACE_SIZE, "apex face", problems))
    return rows, copies


def _sheets_dir(reference: Path | None) -> Path | None:
    if reference is None:
        return None
    if not reference.is_dir():
        raise InputFileError(f"--reference {reference}: does not exist (give the FED-PsyAU clone's folder)")
    inner = reference / REFERENCE_SHEETS_DIR
    return inner if inner.is_dir() else reference


def _check_sheets(folder: Path | None, problems: list[str]) -> tuple[dict[str, Path], list[str]]:
    """{destination: source} of the coding sheets found and the AU sheets not found;
    a sheet that is there but does not parse is a problem."""
    from data_pipelines.readers.casme2 import read_casme2
    from data_pipelines.readers.samm import read_samm

    copies, missing = {}, []
    for name, reader in zip(AU_SHEETS, (read_casme2, read_samm)):
        path = folder / name if folder is not None else None
        if path is None or not path.is_file():
            missing.append(name)
            continue
        try:
            reader(path)
        except (ValueError, OSError, KeyError) as e:  # SheetError is a ValueError
            problems.append(f"{path}: not a readable coding sheet ({' '.join(str(e).split())})")
            continue
        copies[f"{SHEETS_DIR}/{name}"] = path
    for name in EXTRA_SHEETS:
        if folder is not None and (folder / name).is_file():
            copies[f"{SHEETS_DIR}/{name}"] = folder / name
    return copies, missing


def check_sources(htnet: Path, reference: Path | None) -> ImportPlan:
    """Check the two clones without writing anything; raise ``ImportCheckError`` with
    every problem, or return the plan of the import."""
    htnet = Path(htnet)
    if not htnet.is_dir():
        raise InputFileError(f"--htnet {htnet}: does not exist (give the HTNet clone's folder)")
    sheets_dir = _sheets_dir(Path(reference) if reference is not None else None)
    problems: list[str] = []
    rows, copies = _check_htnet(htnet, problems)
    sheet_copies, missing = _check_sheets(sheets_dir, problems)
    if problems:
        raise ImportCheckError(problems)
    warnings = []
    if len(rows) != RELEASE_SAMPLES:
        warnings.append(f"{htnet / CSV_NAME}: {len(rows)} samples, the public release has {RELEASE_SAMPLES}")
    return ImportPlan({**copies, **sheet_copies}, rows, missing, sheets_dir, warnings)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _git_commit(folder: Path | None) -> str | None:
    """The clone's checked-out commit, for provenance; None when it is not a git clone."""
    if folder is None or not (folder / ".git").exists():  # not a clone (git would answer for a parent repo)
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _manifest(plan: ImportPlan, files: dict[str, dict], htnet: Path, reference: Path | None) -> dict:
    by_ds = collections.Counter(r["dataset"] for r in plan.rows)
    classes = collections.Counter(r["label"] for r in plan.rows)
    return {
        "what": "MEGC2019 composite (SMIC + CASME II + SAMM) laid out by fedpsyau data import-megc2019",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sources": {
            "htnet": {"folder": str(htnet.resolve()), "git_commit": _git_commit(htnet)},
            "reference": None
            if reference is None
            else {"folder": str(Path(reference).resolve()), "git_commit": _git_commit(Path(reference))},
        },
        "counts": {
            "samples": len(plan.rows),
            "subjects": len({(r["dataset"], r["sub"]) for r in plan.rows}),
            "datasets": dict(sorted(by_ds.items())),
            "classes": [classes.get(str(k), 0) for k in range(3)],
            "files": len(files),
        },
        "coding_sheets_missing": plan.sheets_missing,
        "warnings": plan.warnings,
        "files": files,
    }


def _assemble(plan: ImportPlan, tmp: Path, htnet: Path, reference: Path | None) -> None:
    """Copy every planned file below ``tmp``, hash the copies and write the manifest."""
    files = {}
    for dest, src in sorted(plan.copies.items()):
        target = tmp / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        files[dest] = {"sha256": _sha256(target), "bytes": target.stat().st_size, "source": str(src)}
    manifest = _manifest(plan, files, htnet, reference)
    (tmp / DATA_DIR / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_out(out: Path, owned: list[str], force: bool) -> None:
    check_output_dir(out)
    for name in owned:
        d = out / name
        if d.exists() and not d.is_dir():
            raise OutputPathError(f"--out {d}: is a file, not a folder")
        if d.is_dir() and any(d.iterdir()) and not force:
            raise OutputPathError(f"--out {d}: already holds an import (give --force to replace it)")


def _move_into_place(tmp: Path, out: Path, owned: list[str]) -> None:
    """Rename the assembled folders into ``out``: one rename of the whole folder when
    ``out`` is new, else each owned folder in turn (an old one moved aside first and
    deleted only once the new one is in place)."""
    if not out.exists():
        os.rename(tmp, out)
        return
    for name in owned:
        old = tmp / f".old-{name}"
        if (out / name).exists():
            os.rename(out / name, old)
        try:
            os.rename(tmp / name, out / name)
        except OSError:
            if old.exists():  # put the previous import back before tmp is deleted
                os.rename(old, out / name)
            raise
    shutil.rmtree(tmp)


def import_megc2019(htnet: Path, out: Path, reference: Path | None = None, force: bool = False) -> dict:
    """Check the clones, then lay them out below ``out``; returns the manifest (dict).

    Raises ``ImportCheckError`` (every problem) or another ``UserError`` before
    anything is written; warnings (sample count, absent coding sheets) are logged and
    recorded in the manifest.
    """
    out = Path(out)
    plan = check_sources(Path(htnet), reference)
    owned = [DATA_DIR] + ([SHEETS_DIR] if any(d.startswith(SHEETS_DIR + "/") for d in plan.copies) else [])
    _check_out(out, owned, force)
    if plan.sheets_missing:
        where = plan.sheets_dir if plan.sheets_dir is not None else "no --reference"
        kept = f"; the existing {out / SHEETS_DIR} was left as it is" if (out / SHEETS_DIR).is_dir() else ""
        plan.warnings.append(
            f"coding sheets {', '.join(plan.sheets_missing)} absent ({where}){kept}: no AU labels, so AU "
            f"pre-training (stage 1) cannot run; train flow-only with: {flow_only_command(out.absolute())}"
        )
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.absolute().parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would become out's mode on the rename
    try:
        _assemble(plan, tmp, Path(htnet), reference)
        manifest = json.loads((tmp / DATA_DIR / MANIFEST).read_text(encoding="utf-8"))
        _move_into_place(tmp, out, owned)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for w in plan.warnings:
        log.warning("%s", w)
    return manifest
