"""``fedpsyau preprocess``: video / frame folder / dataset → cached model inputs.

    fedpsyau preprocess --video clip.mp4 [--onset N --apex M] --out DIR
    fedpsyau preprocess --dataset casme2 --root /data/CASME2 --out DIR [--scheme megc3]

Single clip: ``--video`` is a video file (frames numbered from 0) or a folder of
frame images (numbered by the trailing integer of the names). Without ``--apex`` the
apex is spotted as the frame of largest motion. The result is one .npz in DIR.
Dataset: one cached .npz per sample in DIR/cache, the skipped-samples manifest
DIR/skipped_samples.json (name → reason) and all samples in DIR/<dataset>_samples.npz.
Reruns reuse finished samples (cache keys include the input files' path, size,
mtime and content hash). Skipped samples are listed on the console with their reason.
Exit status 1 only when nothing could be processed; bad input (missing video, no
face, onset == apex, --out naming a file ...) prints one error line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", type=Path, help="a video file or a folder of frame images")
    src.add_argument("--dataset", help="a reader-backed dataset name (casme2, samm, casme3, dfme, smic, ckplus)")
    parser.add_argument("--root", type=Path, help="dataset root folder (with --dataset)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--onset", type=int, default=None, help="onset frame number (default: first frame)")
    parser.add_argument("--apex", type=int, default=None, help="apex frame number (default: spotted)")
    parser.add_argument("--name", default=None, help="sample name for --video (default: file/folder name)")
    parser.add_argument(
        "--scheme",
        default=None,
        choices=("megc3", "emotion7"),
        help="class scheme with --dataset (default: the dataset's)",
    )
    parser.add_argument(
        "--no-align", action="store_true", help="do not similarity-align the apex face to the onset face"
    )
    parser.add_argument("--apex-window", action="store_true", help="average the flows onset→apex-1, apex, apex+1")
    parser.add_argument(
        "--exactly-one-face", action="store_true", help="skip frames with several faces instead of taking the best one"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from fedpsyau_jax.core.errors import UserError, check_output_dir

    if args.video is not None:
        if args.root is not None or args.scheme is not None:
            raise UserError("--root/--scheme: only apply to --dataset, not to --video")
    else:
        if args.onset is not None or args.apex is not None or args.name is not None:
            raise UserError("--onset/--apex/--name: only apply to --video, not to --dataset")
        if args.root is None:
            raise UserError(f"--dataset {args.dataset}: needs --root (the dataset's root folder or its label sheet)")
    # Checked before any decoding, detection or flow: a bad --out fails at once.
    check_output_dir(args.out, what="--out")
    from data_pipelines.video_pipeline import PipelineParams

    params = PipelineParams(
        align=not args.no_align, apex_window=args.apex_window, exactly_one_face=args.exactly_one_face
    )
    if args.video is not None:
        return _run_video(args, params)
    return _run_dataset(args, params)


def _run_video(args, params) -> int:
    from data_pipelines.video_pipeline import cached_video_sample

    name = args.name or args.video.stem
    # A SampleError (missing/unreadable video, no face, onset == apex ...) is a UserError:
    # the CLI prints it as one line and exits with code 2.
    arrays, path, cached = cached_video_sample(
        args.video, args.out, onset=args.onset, apex=args.apex, params=params, name=name
    )
    print(f"done: {0 if cached else 1}  skipped: 0  cached: {1 if cached else 0}")
    print(f"sample: {path}")
    faceless = int(arrays["faceless_leading"])
    print(
        f"onset: {int(arrays['onset'])}  apex: {int(arrays['apex'])}"
        f"{'  (onset replaced by first frame: onset == apex)' if bool(arrays['onset_replaced']) else ''}"
        f"{f'  (onset = first frame with a face; {faceless} frame(s) before it have none)' if faceless else ''}"
        f"  clamped landmarks: {int(arrays['clamped'])}"
    )
    return 0


def _run_dataset(args, params) -> int:
    from data_pipelines.datasets import check_dataset_name, read_records
    from data_pipelines.label_maps import DEFAULT_SCHEME, class_names
    from data_pipelines.video_pipeline import MANIFEST_NAME, records_to_samples
    from fedpsyau_jax.core.atomic_files import save_npz_atomic
    from fedpsyau_jax.core.errors import UserError

    check_dataset_name(args.dataset)
    scheme = args.scheme or DEFAULT_SCHEME.get(args.dataset, "megc3")
    records = read_records(args.dataset, args.root, scheme=scheme)
    if records and all(r.frame_dir is None and not r.frame_paths for r in records):
        raise UserError(
            f"--root {args.root}: only a label sheet, no frame folders found for "
            f"{args.dataset}; pass the dataset's root folder"
        )
    out = Path(args.out)
    samples = records_to_samples(
        records,
        cache_dir=out / "cache",
        progress=not args.no_progress,
        class_names=class_names(scheme),
        params=params,
        manifest_path=out / MANIFEST_NAME,
    )
    counts = samples.meta["counts"]
    print(
        f"records: {len(records)}  done: {counts['computed']}  cached: {counts['cached']}  skipped: {counts['skipped']}"
    )
    for name, reason in samples.meta["skipped"].items():
        print(f"skipped {name}: {reason}")
    print(f"manifest: {samples.meta['manifest']}")
    if not len(samples):
        print("fedpsyau preprocess: no sample could be processed (reasons above and in the manifest)", file=sys.stderr)
        return 1
    target = out / f"{args.dataset}_samples.npz"
    arrays = {
        f: getattr(samples, f)
        for f in ("flow128", "flow28", "landmarks", "label", "au", "au_mask", "subject", "name", "dataset")
    }
    arrays["class_names"] = np.array(samples.class_names, dtype=str)
    arrays["meta_json"] = np.array(json.dumps(samples.meta, sort_keys=True, default=str))
    save_npz_atomic(target, arrays)
    print(f"samples: {target}")
    return 0
