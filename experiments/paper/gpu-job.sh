#!/bin/bash
# One GPU job of the reduced reproduction (docs/reproduction.md): trains the runs of the
# reduced paper grid that are not done yet, WORKERS processes at a time on this machine's GPU
# (separate processes: in one process burn's runs share one device stream), until DEADLINE
# seconds after the start; then every running run is interrupted (SIGINT), saves a
# checkpoint and still writes its bundle, which the next job resumes.
#
#   gpu-job.sh BIN OUT DEADLINE_S WORKERS [PREV]
#
# BIN: icl-lab binary. OUT: where bundles/, logs/, status/ and timeline.tsv go (import the
# bundles with `icl-lab import OUT/bundles`). PREV: a folder from earlier jobs with done.txt
# (names of finished runs, skipped here) and bundles/ (interrupted runs, resumed here).
# GRID (folders of sweep files, space-separated; default experiments/paper/reduced) and DEVICE (default cuda:0) may be set to try it
# elsewhere, e.g. GRID=experiments/sweeps DEVICE=cpu. CORES_PER_RUN=N pins worker i's runs to
# cores N*i .. N*i+N-1 (docs/performance.md: a run's process keeps ~2 cores busy, one of them
# spinning, so unpinned processes beyond cores/2.4 steal each other's time). Measured best on
# the 16-core H200 machine: WORKERS=5 with CORES_PER_RUN=3 (137-174 steps/s together; 8 workers
# on 2 cores each made 41). The runs come from `icl-lab sweep "${GRID:-experiments/paper/reduced}"/*.toml --slurm`, which only
# expands and writes the specs here: seed 0 of every cell first, the longest runs first.
set -u
bin=$(realpath "$1"); out=$(realpath -m "$2"); deadline_s=$3; workers=$4; prev=${5:-}
start=$(date +%s)
export DEADLINE=$((start + deadline_s)) BIN=$bin OUT=$out PREV=$prev DEVICE=${DEVICE:-cuda:0}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
mkdir -p "$out/bundles" "$out/logs" "$out/status"
array=$(mktemp -d)/array
files=(); for g in ${GRID:-experiments/paper/reduced}; do files+=("$g"/*.toml); done
"$bin" --store "$(mktemp -d)/s" sweep "${files[@]}" --slurm "$array" > "$out/sweep.log" 2>&1 || { cat "$out/sweep.log"; exit 1; }
export SPECS="$array/specs"

# Cost rank: the longest prompts first, so the last runs to start are the short ones.
rank() {
    case "$1" in
        long-*|*many-outlier*|*sparse-parity*) echo 0 ;;
        *relu-2nn*|*decision-tree*|*orthogonal*) echo 1 ;;
        *) echo 2 ;;
    esac
}
for spec in "$SPECS"/*.toml; do
    name=$(basename "$spec" .toml)
    [ -n "$prev" ] && grep -qx "$name" "$prev/done.txt" 2>/dev/null && continue
    echo "${name##*-s} $(rank "$name") $name"
done | sort -k1,1n -k2,2n -k3 | awk '{print $3}' > "$out/queue.txt"
echo "gpu-job: $(wc -l < "$out/queue.txt") runs queued, $workers workers, deadline ${deadline_s}s"

run_one() {
    name=$1; slot=$2
    left=$((DEADLINE - $(date +%s)))
    [ "$left" -lt 45 ] && return 1   # too late to reach a first checkpoint: leave it queued
    store=$(mktemp -d)
    t0=$(date +%s.%N)
    if [ -n "$PREV" ] && [ -f "$PREV/bundles/$name.bundle" ]; then
        cmd=(resume "$PREV/bundles/$name.bundle")
    else
        cmd=(run "$SPECS/$name.toml")
    fi
    pin=()
    if [ "${CORES_PER_RUN:-0}" -gt 0 ] && command -v taskset > /dev/null; then
        first=$((slot * CORES_PER_RUN))
        pin=(taskset -c "$first-$((first + CORES_PER_RUN - 1))")
    fi
    timeout -s INT -k 90 "$left" "${pin[@]}" "$BIN" --store "$store" "${cmd[@]}" --device "$DEVICE" --json \
        --bundle-out "$OUT/bundles/$name.bundle" --bundle-checkpoints unfinished > "$OUT/logs/$name.json" 2> "$OUT/logs/$name.err"
    rc=$?
    echo "$rc" > "$OUT/status/$name"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${cmd[0]}" "$t0" "$(date +%s.%N)" "$rc" "$slot" >> "$OUT/timeline.tsv"
    rm -rf "$store"
}

# The next queued run, or nothing: a cursor into queue.txt, advanced under a lock.
next_run() {
    exec 9> "$OUT/queue.lock"
    flock 9
    n=$(cat "$OUT/cursor" 2> /dev/null || echo 0)
    name=$(sed -n "$((n + 1))p" "$OUT/queue.txt")
    [ -n "$name" ] && echo $((n + 1)) > "$OUT/cursor"
    flock -u 9
    echo "$name"
}

worker() {
    while name=$(next_run) && [ -n "$name" ]; do
        run_one "$name" "$1" || break
    done
}
rm -f "$out/cursor"
for ((i = 0; i < workers; i++)); do worker "$i" & done
wait
{ [ -n "$prev" ] && cat "$prev/done.txt" 2>/dev/null
  for f in "$out"/status/*; do [ "$(cat "$f")" = 0 ] && basename "$f"; done; } | sort -u > "$out/done.txt"
echo "gpu-job: $(wc -l < "$out/done.txt") runs done, $(($(date +%s) - start))s"
