#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of tests/fuzz (see docs/robustness.md, "Fuzzing").
#
#   tests/fuzz/run.sh build DIR                  configure DIR with clang (GQA_FUZZ=ON) and build
#   tests/fuzz/run.sh run DIR SECONDS [RUNS] [TARGET...]
#       runs each target (all by default) one after the other for SECONDS, or until RUNS
#       executions when RUNS > 0, and prints executions, exec/s and peak RSS per target. Exit 1 when
#       any target finds something (crash, sanitizer report, leak, timeout of 10 s per input,
#       more than 2048 MB); the input is kept in DIR/fuzz-artifacts/<target>/ and the log in
#       DIR/fuzz-logs/<target>.log. SIGINT to a fuzzer (Ctrl-C) ends the run there: its count
#       is printed, the remaining targets are skipped, exit 130.
#
# Seeds: tests/fuzz/corpus/<target>/ (checked in). What a run discovers goes to
# DIR/fuzz-corpus/<target>/, so later runs start from it. Runs are niced and one at a time.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
targets_all=(safetensors config tokenizer_json vocab_merges jsonl jsonl_records cli_values)

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 2; }  # the comment block at the top

cmd="${1:-}"
dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || usage
case "$dir" in /*) ;; *) dir="$root/$dir" ;; esac

build() {
  if [ ! -f "$dir/build.ninja" ]; then
    mkdir -p "$dir"
    cmake -S "$root" -B "$dir" -G Ninja -DGQA_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ > "$dir/configure.log" 2>&1 \
      || { cat "$dir/configure.log"; rm -f "$dir/build.ninja"; exit 1; }
  fi
  nice -n 10 cmake --build "$dir" -j "${JOBS:-$(nproc)}"
}

run() {
  local seconds="$1" runs="${2:-0}"
  shift 2 || shift $#
  local targets=("$@")
  [ ${#targets[@]} -gt 0 ] || targets=("${targets_all[@]}")
  local failed=() t interrupted=0
  # Ctrl-C reaches the whole process group; this script stays alive to report the fuzzer's count.
  trap '' INT
  mkdir -p "$dir/fuzz-logs"
  printf '%-16s %12s %9s %8s  %s\n' target executions exec/s rss_mb result
  for t in "${targets[@]}"; do
    local bin="$dir/tests/fuzz/fuzz_$t" work="$dir/fuzz-corpus/$t" art="$dir/fuzz-artifacts/$t/"
    local log="$dir/fuzz-logs/$t.log"
    [ -x "$bin" ] || { echo "run.sh: $bin is not built (tests/fuzz/run.sh build $dir)"; exit 2; }
    mkdir -p "$work" "$art"
    local start end rc=0
    start=$(date +%s.%N)
    # Not under `set -e`: a finding is reported below, after the scratch folder is removed.
    nice -n 10 "$bin" "$work" "$root/tests/fuzz/corpus/$t" -max_total_time="$seconds" -runs="$(( runs > 0 ? runs : -1 ))" \
      -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$art" > "$log" 2>&1 &
    local pid=$!
    wait "$pid" || rc=$?
    end=$(date +%s.%N)
    rm -rf /dev/shm/gqa-fuzz-"$pid"-* "${TMPDIR:-/tmp}"/gqa-fuzz-"$pid"-* 2>/dev/null || true
    local n rss
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    local result=ok
    if [ "$rc" -eq 72 ] && grep -q 'libFuzzer: run interrupted' "$log"; then
      # SIGINT (Ctrl-C, or `kill -INT` to stop a long run): libFuzzer prints its final stats and
      # exits 72. The count above is real; nothing was found.
      result="interrupted (no finding)"
      interrupted=1
    elif [ "$rc" -ne 0 ]; then
      result="FAILED (exit $rc): $(grep -m1 -E '^fuzz|ERROR: |SUMMARY: ' "$log" || true)"
      failed+=("$t")
    fi
    printf '%-16s %12s %9s %8s  %s\n' "$t" "${n:-?}" \
      "$(awk -v n="${n:-0}" -v a="$start" -v b="$end" 'BEGIN { printf "%d", n / (b - a) }')" "${rss:-?}" "$result"
    [ "$interrupted" -eq 0 ] || break
  done
  if [ ${#failed[@]} -gt 0 ]; then
    echo "run.sh: findings in: ${failed[*]} (inputs in $dir/fuzz-artifacts/, logs in $dir/fuzz-logs/)"
    exit 1
  fi
  [ "$interrupted" -eq 0 ] || exit 130
}

case "$cmd" in
  build) build ;;
  run) shift 2; run "${1:?SECONDS}" "${2:-0}" "${@:3}" ;;
  *) usage ;;
esac
