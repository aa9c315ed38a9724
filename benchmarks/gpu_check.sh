#!/usr/bin/env bash
# One short check of the accelerator path. On a machine with a GPU (installed with
# `pip install -e ".[cuda12]"`), prints the devices, the jitted step time at batch 32
# and 256, fold-vmapped LOSO epoch timings, client-vmapped federated round timings,
# and runs the sharded-clients and sharded-folds tests on all visible devices. On a
# CPU-only machine it says "no GPU" and runs the same checks small, on the CPU.
#   bash benchmarks/gpu_check.sh            (from the repository root; ~5 min on CPU)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" - <<'PYEOF'
import jax
devs = jax.devices()
kinds = sorted({d.platform for d in devs})
print(f"jax {jax.__version__}; {len(devs)} device(s): {', '.join(str(d) for d in devs)}")
if "gpu" not in kinds and "cuda" not in kinds:
    print("no GPU: running the checks on the CPU (small sizes)")
PYEOF
gpu=$("$PY" -c 'import jax; print(int(any(d.platform in ("gpu", "cuda") for d in jax.devices())))')
rc=0
if [ "$gpu" = 1 ]; then
  "$PY" benchmarks/step_time.py --batch 32 256 --repeats 20 || rc=1
  "$PY" benchmarks/loso_speed.py --chunks 1 8 32 --folds 32 || rc=1
  "$PY" benchmarks/fl_round_speed.py --ks 2 8 32 --loop-k 8 || rc=1
else
  "$PY" benchmarks/step_time.py --batch 32 --repeats 3 || rc=1
  "$PY" benchmarks/loso_speed.py --dataset synthetic --chunks 1 2 --folds 2 --batch 8 --no-au-branch || rc=1
  "$PY" benchmarks/fl_round_speed.py --ks 2 4 --loop-k 2 --repeats 1 --flow-only || rc=1
fi
# The sharded tests force 4 host devices on a CPU; on a GPU machine they run as well
# (their subprocess sees the host platform), and the multi-device path of the real
# accelerator is exercised by the vmapped-folds/clients timings above.
"$PY" -m pytest -q -p no:cacheprovider tests/test_federated_training.py::test_sharded_clients_equal_unsharded \
    tests/test_fold_sharding.py || rc=1
exit $rc
