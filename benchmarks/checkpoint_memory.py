"""Peak memory of writing one checkpoint: in one piece vs. by part.

    python benchmarks/checkpoint_memory.py --gb 4 --parts 4

Each way runs in a fresh process that builds a dict of ``--parts`` float32 arrays of
``--gb`` GiB together (like the DP simulator's per-person state: models with Adam
state, anchors, reference, contributions), then saves it with
``training.checkpoints.save_checkpoint``; it prints the process's peak resident memory
before and after the save and the difference. Uses a temporary folder on the disk of
``--dir`` (default: the system's temporary folder), removed afterwards.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
import numpy as np
from fedpsyau_jax.training.checkpoints import save_checkpoint
gb, parts, by_part, where = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
n = int(gb * 2**30 / 4 / parts)
tree = {f"p{i}": {"w": np.full(n, i + 1, np.float32)} for i in range(parts)}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
t = time.perf_counter()
save_checkpoint(where, "ck", tree, {"note": "benchmark"}, by_part=by_part)
sec = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"before_gib": before, "peak_gib": after, "seconds": sec}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=4.0, help="total size of the arrays (GiB)")
    ap.add_argument("--parts", type=int, default=4, help="number of top-level entries")
    ap.add_argument("--dir", default=None, help="where the temporary checkpoints go")
    args = ap.parse_args(argv)
    print(f"{args.gb:g} GiB in {args.parts} entries; python {sys.version.split()[0]}")
    for by_part in (False, True):
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.gb), str(args.parts),
                                  "1" if by_part else "0", d], capture_output=True, text=True)
            if out.returncode:
                print(out.stderr[-2000:], file=sys.stderr)
                return out.returncode
            r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{'by part' if by_part else 'one piece':>9}: peak RSS {r['before_gib']:.2f} -> "
              f"{r['peak_gib']:.2f} GiB (+{r['peak_gib'] - r['before_gib']:.2f}), {r['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
