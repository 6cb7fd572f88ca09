#!/usr/bin/env bash
# Wall time of `uv run datasynth demo`: a first run into a fresh run directory (cold-ish), then a
# rerun of the same directory, which should hit every cache (generation, preprocessing, training,
# evaluation, SHAP) and only rebuild the report.
#
# Both runs use a fresh PREFECT_HOME of their own (shared by the two runs, so the rerun sees the
# first run's cached results; the ephemeral Prefect server's database is created in the first
# run). The demo's generator is shipped in the repo (models/tiny-fruits): nothing is built or
# fitted first. Timed with GNU time (/usr/bin/time -v): the whole process, `uv run` start-up
# included.
#
#     bash bench/bench_demo.sh [WORKDIR]     # WORKDIR defaults to a new temporary folder
#     OMP_NUM_THREADS=1 bash bench/bench_demo.sh   # torch on one thread (see docs/BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_S=180   # the demo should finish in under 3 minutes on 2 cores
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
out="$work/demo"
export PREFECT_HOME="$work/prefect-home"
rm -rf "$out" "$PREFECT_HOME"

seconds() {  # GNU time's "h:mm:ss" or "m:ss.ss" -> seconds
    awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }'
}

declare -A wall rss rc
for run in first rerun; do
    log="$work/$run.log"
    timing="$work/$run.time"
    set +e
    /usr/bin/time -v -o "$timing" uv run datasynth demo --out "$out" >"$log" 2>&1
    rc[$run]=$?
    set -e
    wall[$run]=$(grep "Elapsed (wall clock)" "$timing" | awk '{print $NF}' | seconds)
    rss[$run]=$(grep "Maximum resident set size" "$timing" | awk '{printf "%.0f", $NF / 1024}')
    echo "$run: ${wall[$run]} s, exit ${rc[$run]} (log: $log)"
done

cached=$(grep -c "Cached" "$work/rerun.log" || true)
report="missing"
[ -f "$out/report.html" ] && report="$out/report.html"
echo
# getconf, not nproc: nproc reports OMP_NUM_THREADS instead of the cores when it is set
echo "demo wall time, $(getconf _NPROCESSORS_ONLN) cores," \
    "OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | wall s | peak RSS MiB (largest process) | exit |"
echo "|---|---:|---:|---:|"
echo "| first (fresh run dir, fresh PREFECT_HOME) | ${wall[first]} | ${rss[first]} | ${rc[first]} |"
echo "| rerun (same run dir: caches) | ${wall[rerun]} | ${rss[rerun]} | ${rc[rerun]} |"
echo
verdict=$(awk -v a="${wall[first]}" -v b="${wall[rerun]}" -v t="$TARGET_S" \
    'BEGIN { print (a < t && b < t) ? "met" : "MISSED" }')
echo "RESULT demo wall time: first ${wall[first]} s, rerun ${wall[rerun]} s" \
    "(target < ${TARGET_S} s: $verdict); rerun log lines with 'Cached': $cached; report: $report"
