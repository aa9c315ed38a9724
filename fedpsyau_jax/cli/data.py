"""``fedpsyau data summary <name>``: the key facts of a dataset, one ``key: value`` a line;
``fedpsyau data import-megc2019``: the public MEGC2019 composite laid out as a data root."""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from data_pipelines.datasets import DATASET_NAMES, VIDEO_DATASETS, check_dataset_name, load_dataset, read_records
from fedpsyau_jax.core.errors import UserError

_EPILOG = """\
Reader-backed datasets (casme2, samm, casme3, dfme, smic, ckplus) are summarised
from their annotation records, without decoding frames, when --records-only is given
or when the clips have no frame folders (for example --root points at a label sheet,
or at a folder with the sheet but no frames). The record summary counts only clips
whose emotion has a class (samples), and reports the dropped ones separately.
Otherwise the dataset is loaded as model inputs (this can run the video pipeline).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser(
        "summary",
        help="print samples, subjects, class counts ...",
        description="Print one 'key: value' line per fact of a dataset.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Checked in run() (not argparse choices) so a typo is one error line with a suggestion.
    s.add_argument("name", metavar="NAME", help=f"dataset name: {', '.join(DATASET_NAMES)}")
    s.add_argument(
        "--root",
        type=Path,
        default=None,
        help="dataset root folder or label sheet (default for the composite: the shared data's megc2019_htnet/)",
    )
    s.add_argument(
        "--cache-dir", type=Path, default=None, help="cache folder (default $FEDPSYAU_CACHE or ~/.cache/fedpsyau)"
    )
    s.add_argument(
        "--scheme",
        default=None,
        choices=("megc3", "emotion7"),
        help="class scheme for reader-backed datasets (default: the dataset's)",
    )
    s.add_argument("--records-only", action="store_true", help="summarise annotation records only; never decode frames")
    s.add_argument(
        "--allow-missing-au-labels",
        action="store_true",
        help="megc2019_composite: load even without the annotations/ coding sheets (every AU mask 0)",
    )
    _add_import_arguments(sub)


_IMPORT_EPILOG = """\
Copies the composite's CSV, 28x28 flows and 224x224 apex faces from the HTNet clone,
and the CASME II / SAMM coding sheets from the FED-PsyAU clone, into OUT/megc2019_htnet/
and OUT/annotations/, after checking every file (one line per problem; nothing is
written when one is found). OUT/megc2019_htnet/import_manifest.json records the sources,
counts and the sha256 of every copied file. Then:
  FEDPSYAU_SHARED_DATA=OUT fedpsyau data summary megc2019_composite
"""


def _add_import_arguments(sub) -> None:
    s = sub.add_parser(
        "import-megc2019",
        help="lay out the public MEGC2019 composite (HTNet + FED-PsyAU clones) as a data root",
        description="Check and copy the public MEGC2019 composite into a data root (FEDPSYAU_SHARED_DATA).",
        epilog=_IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument(
        "--htnet", type=Path, required=True, metavar="DIR", help="clone of github.com/wangzhifengharrison/HTNet"
    )
    s.add_argument(
        "--reference",
        type=Path,
        default=None,
        metavar="DIR",
        help="clone of github.com/MELABIPCAS/FED-PsyAU (its Fed_Framework/data_coding sheets); "
        "without it only flow-only training runs",
    )
    s.add_argument("--out", type=Path, required=True, metavar="DIR", help="data root to create (FEDPSYAU_SHARED_DATA)")
    s.add_argument("--force", action="store_true", help="replace an existing import in OUT")


def records_summary(records, scheme: str | None = None) -> dict[str, str]:
    """The same facts as ``MESamples.summary`` computed from ``ClipRecord``s."""
    from data_pipelines.label_maps import DEFAULT_SCHEME, class_names
    from data_pipelines.readers import onset_equals_apex

    kept = [r for r in records if r.label is not None]
    ds = records[0].dataset if records else ""
    names = class_names(scheme or DEFAULT_SCHEME.get(ds, "megc3"))
    counts = collections.Counter(r.label for r in kept)
    # SMIC has no AU coding: an empty AU set there means "unknown", not "no AU".
    with_au = sum(1 for r in kept if r.aus) if ds != "smic" else 0
    return {
        "samples": str(len(kept)),
        "subjects": str(len({r.subject for r in kept})),
        "classes": "/".join(str(counts.get(i, 0)) for i in range(len(names))),
        "class_names": "/".join(names),
        "with_au_labels": str(with_au),
        "datasets": f"{ds}={len(kept)}",
        "records": str(len(records)),
        "dropped_no_class": str(len(records) - len(kept)),
        "onset_equals_apex": str(len(onset_equals_apex(kept))),
        "with_frames": str(sum(1 for r in kept if r.frame_dir is not None and r.frame_dir.is_dir())),
        "source": "annotation records",
    }


def run_import(args: argparse.Namespace) -> int:
    """``import-megc2019``: every problem on its own line (stderr), then one error line."""
    import sys

    from data_pipelines.megc2019_import import MAX_PROBLEM_LINES, DATA_DIR, MANIFEST, ImportCheckError, import_megc2019

    try:
        m = import_megc2019(args.htnet, args.out, reference=args.reference, force=args.force)
    except ImportCheckError as e:
        for line in e.problems[:MAX_PROBLEM_LINES]:
            print(line, file=sys.stderr)
        more = len(e.problems) - MAX_PROBLEM_LINES
        if more > 0:
            print(f"... and {more} more problem(s)", file=sys.stderr)
        raise UserError(
            f"MEGC2019 import: {len(e.problems)} problem(s) above; nothing was written to {args.out}"
        ) from None
    c = m["counts"]
    print(f"samples: {c['samples']} ({', '.join(f'{k} {v}' for k, v in c['datasets'].items())})")
    print(f"subjects: {c['subjects']}")
    print(f"classes: {'/'.join(map(str, c['classes']))}")
    print(f"files: {c['files']} (sha256 in {args.out / DATA_DIR / MANIFEST})")
    print(f"coding_sheets_missing: {', '.join(m['coding_sheets_missing']) or 'none'}")
    flag = " --allow-missing-au-labels" if m["coding_sheets_missing"] else ""
    print(f"next: FEDPSYAU_SHARED_DATA={args.out.absolute()} fedpsyau data summary megc2019_composite{flag}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "import-megc2019":
        return run_import(args)
    if args.action != "summary":  # argparse enforces this; kept for direct callers
        raise ValueError(f"unknown data action {args.action!r}")
    facts: dict[str, str]
    check_dataset_name(args.name)
    if args.allow_missing_au_labels and args.name != "megc2019_composite":
        raise UserError("--allow-missing-au-labels: only applies to megc2019_composite")
    if args.name in VIDEO_DATASETS:
        if args.root is None:
            raise UserError(f"dataset {args.name!r}: --root is required (the release folder or its label sheet)")
        kw = {"scheme": args.scheme} if args.scheme else {}
        records = read_records(args.name, args.root, **kw)
        kept = [r for r in records if r.label is not None]
        frames_missing = any(r.frame_dir is None or not r.frame_dir.is_dir() for r in kept)
        if args.records_only or frames_missing:
            facts = records_summary(records, args.scheme)
        else:
            facts = load_dataset(args.name, root=args.root, cache_dir=args.cache_dir, **kw).summary()
    else:
        kw = {"allow_missing_au_labels": True} if args.allow_missing_au_labels else {}
        s = load_dataset(args.name, root=args.root, cache_dir=args.cache_dir, **kw)
        facts = s.summary()
        for k in ("face_fallbacks", "landmarks_clamped", "au_unmatched"):
            if k in s.meta:
                facts[k] = str(s.meta[k])
    for k, v in facts.items():
        print(f"{k}: {v}")
    return 0
