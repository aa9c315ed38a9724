#!/usr/bin/env bash
# A real Flower deployment of FED-PsyAU on one machine, loopback only (docs/flower.md,
# way 2): one flower-superlink and one flower-supernode per
# site, each its own process with its own port and node config; the run is submitted
# with `flwr run`, waited for, its per-site results printed; then exactly the processes
# this script started are stopped (also on error or Ctrl-C).
#
#   scripts/flower_local_deployment.sh [--sites 3] [--rounds 2] [--algorithm fedavg]
#       [--port 18000] [--workdir DIR] [--timeout 1200] [--run-config "key=value ..."]
#       [--min-nodes N] [--kill-site K --at-round R [--restart-after S]] [--secagg]
#
# --port P: the SuperLink's HTTP API (Fleet, Control and Runtime APIs) on 127.0.0.1:P;
#   SuperNode k serves its ClientApp API on 127.0.0.1:P+1+k.
# --run-config: extra Flower run-config overrides (keys: fedpsyau_jax/federated/flower/
#   settings.py), e.g. "use-au-branch=false batch-size=4", or the training config
#   "config='/abs/configs/fl_megc2019_recipe.py' config-overrides='fl.local_epochs=2'".
# --min-nodes: fewest valid replies a round may aggregate (default: all sites).
# --secagg: secure aggregation (Flower SecAgg+, run config secagg=true; needs >= 3 sites);
#   DP instead: --run-config "dp=true dp-clip-norm=1.0 dp-noise-multiplier=1.0".
# --kill-site K --at-round R: fault drill — once the ServerApp starts round R, SuperNode K
#   (and its ClientApp) is killed; with --restart-after S it is started again S seconds
#   later with the same node config (it resumes from its state file in site<K>/).
# --workdir: logs (logs/), per-site folders (site<k>/, JAX compilation caches) and
#   results/flower_results.json; default a new temporary folder (kept, printed).
# Offline-safe: the SuperLink never installs app dependencies at run time; every process
# uses the fedpsyau-jax of this checkout's environment (FLWR_BIN, default .venv/bin).
# Every wait is bounded (--timeout for the run, 60 s for start-up, 15 s for shutdown).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${FLWR_BIN:-$ROOT/.venv/bin}"
SITES=3 ROUNDS=2 ALGORITHM=fedavg PORT=18000 WORK="" TIMEOUT=1200 EXTRA=""
MIN_NODES="" KILL_SITE="" AT_ROUND="" RESTART_AFTER="" SECAGG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sites) SITES="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --algorithm) ALGORITHM="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --workdir) WORK="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --run-config) EXTRA="$2"; shift 2 ;;
    --min-nodes) MIN_NODES="$2"; shift 2 ;;
    --kill-site) KILL_SITE="$2"; shift 2 ;;
    --at-round) AT_ROUND="$2"; shift 2 ;;
    --restart-after) RESTART_AFTER="$2"; shift 2 ;;
    --secagg) SECAGG="secagg=true"; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "flower_local_deployment: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for exe in flower-superlink flower-supernode flwr; do
  [ -x "$BIN/$exe" ] || { echo "flower_local_deployment: $BIN/$exe not found (bash scripts/setup.sh installs the flower extra)" >&2; exit 2; }
done
[ -n "$WORK" ] || WORK="$(mktemp -d "${TMPDIR:-/tmp}/fedpsyau_flower.XXXXXX")"
mkdir -p "$WORK/logs" "$WORK/results" "$WORK/flwr_home"
WORK="$(cd "$WORK" && pwd)"
echo "flower_local_deployment: workdir $WORK" >&2

PIDS=()
stop_all() {
  local pid t
  for pid in "${PIDS[@]}"; do          # each was started as its own process group
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for t in $(seq 1 30); do             # bounded: 15 s
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  for pid in "${PIDS[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  PIDS=()
}
trap 'stop_all' EXIT
trap 'exit 130' INT TERM

start() {   # start <log> <cmd...>: own session/process group, pid appended to PIDS
  local log="$1"; shift
  if command -v setsid >/dev/null 2>&1; then
    setsid "$@" >"$log" 2>&1 < /dev/null &
  else
    "$@" >"$log" 2>&1 < /dev/null &
  fi
  PIDS+=("$!")
}

wait_http() {   # wait_http <url> <seconds> <pid>: 0 once the URL answers 200
  "$BIN/python" - "$1" "$2" "$3" <<'EOF'
import os, sys, time, urllib.request
url, limit, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)                      # the process died: do not wait out the limit
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        time.sleep(0.5)
sys.exit(1)
EOF
}

export FLWR_DISABLE_UPDATE_CHECK=1
export PATH="$BIN:$PATH"     # the SuperLink and SuperNodes start flower-superexec / flwr-* from PATH
# the SuperLink (and the ServerApp it starts)
FLWR_HOME="$WORK/flwr_home/superlink" start "$WORK/logs/superlink.log" \
  "$BIN/flower-superlink" --insecure --disable-runtime-dependency-installation \
  --host 127.0.0.1 --port "$PORT"
if ! wait_http "http://127.0.0.1:$PORT/health" 60 "${PIDS[0]}"; then
  echo "flower_local_deployment: the SuperLink did not come up on 127.0.0.1:$PORT in 60 s; log:" >&2
  tail -n 30 "$WORK/logs/superlink.log" >&2
  exit 1
fi
# the SuperLink starts its SuperExec detached (a new session): track it by parent pid
for c in $(ps -o pid= --ppid "${PIDS[0]}" 2>/dev/null); do PIDS+=("$c"); done
echo "${PIDS[@]}" > "$WORK/pids"      # what this script started (stopped on exit)
# one SuperNode per site
declare -A SITE_PID
start_site() {   # start_site <k> <log suffix>
  local k="$1"
  mkdir -p "$WORK/site$k"
  FLWR_HOME="$WORK/flwr_home/site$k" start "$WORK/logs/supernode$k$2.log" \
    "$BIN/flower-supernode" --insecure --superlink "127.0.0.1:$PORT" \
    --host 127.0.0.1 --port $((PORT + 1 + k)) --max-wait-time 120 \
    --node-config "partition-id=$k num-partitions=$SITES site-dir=\"$WORK/site$k\""
  SITE_PID[$k]="${PIDS[-1]}"
}
for k in $(seq 0 $((SITES - 1))); do start_site "$k" ""; done
echo "${PIDS[@]}" > "$WORK/pids"
# submit the run (a temporary Flower configuration names this SuperLink) and wait
cat > "$WORK/flwr_home/config.toml" <<EOF
[superlink]
default = "localdep"

[superlink.localdep]
address = "127.0.0.1:$PORT"
insecure = true
EOF
RUN_CONFIG="algorithm=\"$ALGORITHM\" num-server-rounds=$ROUNDS min-nodes=${MIN_NODES:-$SITES} results-dir=\"$WORK/results\" $SECAGG $EXTRA"
# (in the background + wait, so that a TERM/INT to this script is handled at once)
FLWR_HOME="$WORK/flwr_home" timeout --kill-after=10 "$TIMEOUT" \
  "$BIN/flwr" run "$ROOT" localdep --stream --run-config "$RUN_CONFIG" >"$WORK/logs/run.log" 2>&1 < /dev/null &
PIDS+=("$!")
echo "${PIDS[@]}" > "$WORK/pids"
RUN_PID="$!"
if [ -n "$KILL_SITE" ]; then   # fault drill (bounded by the run's own timeout)
  killed="" restart_at=""
  while kill -0 "$RUN_PID" 2>/dev/null; do
    if [ -z "$killed" ] && grep -q "\[ROUND $AT_ROUND/" "$WORK/logs/run.log" 2>/dev/null; then
      sleep 2
      echo "flower_local_deployment: killing SuperNode $KILL_SITE (pid ${SITE_PID[$KILL_SITE]}) in round $AT_ROUND" >&2
      kill -KILL -- "-${SITE_PID[$KILL_SITE]}" 2>/dev/null || kill -KILL "${SITE_PID[$KILL_SITE]}" || true
      killed=1
      [ -n "$RESTART_AFTER" ] && restart_at=$(( $(date +%s) + RESTART_AFTER ))
    fi
    if [ -n "$restart_at" ] && [ "$(date +%s)" -ge "$restart_at" ]; then
      echo "flower_local_deployment: restarting SuperNode $KILL_SITE" >&2
      start_site "$KILL_SITE" ".restarted"
      echo "${PIDS[@]}" > "$WORK/pids"
      restart_at=""
    fi
    sleep 1
  done
fi
set +e
wait "$RUN_PID"
rc=$?
set -e
RES="$WORK/results/flower_results.json"
if [ "$rc" -ne 0 ] || [ ! -f "$RES" ]; then
  [ "$rc" -eq 124 ] && echo "flower_local_deployment: the run did not finish within $TIMEOUT s" >&2
  echo "flower_local_deployment: run failed (flwr exit $rc); last lines of $WORK/logs/run.log:" >&2
  tail -n 40 "$WORK/logs/run.log" >&2
  exit 1
fi
grep -E "FED-PsyAU on Flower|  site |  new site |  DP: " "$WORK/logs/run.log" || true
echo "results: $RES"
