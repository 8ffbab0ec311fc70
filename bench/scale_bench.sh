#!/usr/bin/env bash
# How the cost of the gqa verbs grows with model size: wall seconds and peak RSS (GNU time) of
# inspect, convert (mean; svd at several calibration sizes), eval and generate on ONE existing
# checkpoint folder, so each size can be run on its own, e.g. on folders written by
#   .venv/bin/python bench/make_synthetic_llama.py /work/runs/scale/llama-7b --shape 7b
# The KV heads are num_attention_heads / 4 (the largest divisor of the head count not above it).
# Outputs go to a mktemp work folder (under $TMPDIR, default /tmp) that is removed on exit.
# Before the first command every shard is read once (cat > /dev/null) when the model is smaller
# than half of MemAvailable, so the first command does not pay for the disk; the output says
# whether that happened. A failing command is reported with its exit code and last stderr line
# and the script goes on.
#
# usage: bench/scale_bench.sh BUILD_DIR MODEL_DIR TEXT [OUT_TSV]
#   BUILD_DIR  the CMake build folder (runs BUILD_DIR/cli/gqa)
#   TEXT       text file for svd calibration and for eval
#   OUT_TSV    rows appended: model command seconds peak_rss_mib exit_code [calibration line]
#              (a header line is written first when the file is new or empty)
# environment:
#   COMMANDS           subset of "inspect mean svd eval generate" (default: all, in that order)
#   CALIB_TOKENS       calibration sizes for svd (default "1024 4096 16384")
#   GQA_ARGS_EVAL      extra arguments for gqa eval, e.g. "--dtype bf16"
#   GQA_ARGS_GENERATE  extra arguments for gqa generate
#   TIMEOUT_S          if set, each command is stopped after this many seconds (exit 124)
set -euo pipefail
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  sed -n 's/^# \{0,1\}//; /^usage:/,/^set -euo/p' "$0" | sed '$d' >&2
  exit 2
fi
build="$1" model="${2%/}" text="$3" out_tsv="${4:-}"
gqa="$build/cli/gqa"
commands="${COMMANDS:-inspect mean svd eval generate}"
calib_tokens="${CALIB_TOKENS:-1024 4096 16384}"
read -r -a eval_args <<< "${GQA_ARGS_EVAL:-}"
read -r -a gen_args <<< "${GQA_ARGS_GENERATE:-}"
prompt="It is a truth universally acknowledged"

die() { echo "scale_bench: $*" >&2; exit 1; }
if [ ! -x /usr/bin/time ] || ! /usr/bin/time --version 2>&1 | grep -q GNU; then
  die "GNU time is needed at /usr/bin/time (Debian/Ubuntu package 'time'); not found, nothing measured"
fi
[ -x "$gqa" ] || echo "warning: $gqa is missing or not executable; every command will fail" >&2
[ -f "$model/config.json" ] || die "$model/config.json not found"
[ -f "$text" ] || die "text file $text not found"
for c in $commands; do
  case "$c" in inspect|mean|svd|eval|generate) ;; *) die "unknown command '$c' in COMMANDS (inspect mean svd eval generate)";; esac
done
for n in $calib_tokens; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "CALIB_TOKENS: '$n' is not a positive integer"
done
timeout_cmd=()
if [ -n "${TIMEOUT_S:-}" ]; then timeout_cmd=(timeout "$TIMEOUT_S"); fi

# num_attention_heads without jq/python: the first integer after the key in config.json.
heads=$(tr -d '\n' < "$model/config.json" | grep -o '"num_attention_heads"[[:space:]]*:[[:space:]]*[0-9]*' \
  | head -n 1 | grep -o '[0-9]*$' || true)
[[ "$heads" =~ ^[1-9][0-9]*$ ]] || die "num_attention_heads not found in $model/config.json"
kv=$(( heads / 4 > 0 ? heads / 4 : 1 ))
while (( heads % kv != 0 )); do kv=$(( kv - 1 )); done
name="$(basename "$(cd "$model" && pwd)")"

shopt -s nullglob
shards=("$model"/*.safetensors)
shopt -u nullglob
(( ${#shards[@]} > 0 )) || die "no *.safetensors in $model"
model_bytes=$(stat -c %s "${shards[@]}" | awk '{s += $1} END {printf "%.0f", s}')
mem_total_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
mem_avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
gib() { awk -v b="$1" 'BEGIN {printf "%.2f GiB", b / 1073741824}'; }

echo "machine: $(nproc) cores, MemTotal $(gib $(( mem_total_kb * 1024 ))), MemAvailable $(gib $(( mem_avail_kb * 1024 ))); $(date '+%Y-%m-%d %H:%M:%S %Z')"
echo "gqa: $gqa"
echo "model: $model ($name): ${#shards[@]} shards, $(gib "$model_bytes"), $heads heads -> --kv-heads $kv"
echo "text: $text; commands: $commands; calib tokens: $calib_tokens${TIMEOUT_S:+; timeout ${TIMEOUT_S} s}"

work="$(mktemp -d "${TMPDIR:-/tmp}/gqa-scale-XXXXXX")"
trap 'rm -rf "$work"' EXIT

if (( model_bytes * 2 < mem_avail_kb * 1024 )); then
  t0=$(date +%s.%N); cat "${shards[@]}" > /dev/null; t1=$(date +%s.%N)
  echo "page cache: warmed (read the shards once in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s)"
else
  echo "page cache: NOT warmed (model $(gib "$model_bytes") >= half of MemAvailable); timings include disk reads"
fi

if [ -n "$out_tsv" ] && [ ! -s "$out_tsv" ]; then
  printf 'model\tcommand\tseconds\tpeak_rss_mib\texit_code\tcalibration\n' > "$out_tsv"
fi

# measure LABEL CMD...: runs CMD under GNU time, prints one line, appends one TSV row.
measure() {
  local label="$1"; shift
  local out="$work/$label.out" err="$work/$label.err" tf="$work/$label.time"
  local rc=0 secs rss_kb rss_mib calib="" msg=""
  /usr/bin/time -f '%e %M' -o "$tf" ${timeout_cmd[@]+"${timeout_cmd[@]}"} "$@" > "$out" 2> "$err" || rc=$?
  # GNU time puts "Command exited with non-zero status N" before the format line on failure.
  read -r secs rss_kb < <(tail -n 1 "$tf") || true
  [[ "${secs:-}" =~ ^[0-9.]+$ ]] || secs=NA
  if [[ "${rss_kb:-}" =~ ^[0-9]+$ ]]; then rss_mib=$(( (rss_kb + 512) / 1024 )); else rss_mib=NA; fi
  calib=$(grep -h -m 1 '^calibration:' "$out" "$err" 2> /dev/null | head -n 1 | tr '\t' ' ' || true)
  if (( rc != 0 )); then
    msg=$(grep -v '^[[:space:]]*$' "$err" | tail -n 1 || true)
    [ -n "$msg" ] || msg=$(grep -v '^[[:space:]]*$' "$out" | tail -n 1 || true)
    (( rc == 124 )) && [ -n "${TIMEOUT_S:-}" ] && msg="timed out after ${TIMEOUT_S} s${msg:+; $msg}"
  fi
  printf '%-18s %9s s  peak RSS %7s MiB  exit %d' "$label" "$secs" "$rss_mib" "$rc"
  [ -n "$calib" ] && printf '  | %s' "$calib"
  (( rc != 0 )) && printf '  | FAILED: %s' "${msg:-(no output)}"
  printf '\n'
  if [ -n "$out_tsv" ]; then
    if [ -n "$calib" ]; then
      printf '%s\t%s\t%s\t%s\t%d\t%s\n' "$name" "$label" "$secs" "$rss_mib" "$rc" "$calib" >> "$out_tsv"
    else
      printf '%s\t%s\t%s\t%s\t%d\n' "$name" "$label" "$secs" "$rss_mib" "$rc" >> "$out_tsv"
    fi
  fi
  return 0
}

echo "--- command            seconds     peak RSS        exit"
for c in $commands; do
  case "$c" in
    inspect) measure inspect "$gqa" inspect "$model" ;;
    mean)
      rm -rf "$work/out"
      measure convert-mean "$gqa" convert "$model" "$work/out" --strategy mean --kv-heads "$kv"
      rm -rf "$work/out" ;;
    svd)
      for n in $calib_tokens; do
        rm -rf "$work/out"
        measure "convert-svd-$n" "$gqa" convert "$model" "$work/out" --strategy svd --kv-heads "$kv" \
          --calib "$text" --calib-tokens "$n"
        rm -rf "$work/out"
      done ;;
    eval) measure eval "$gqa" eval "$model" --text "$text" --max-tokens 512 ${eval_args[@]+"${eval_args[@]}"} ;;
    generate) measure generate "$gqa" generate "$model" --prompt "$prompt" -n 32 ${gen_args[@]+"${gen_args[@]}"} ;;
  esac
done
[ -z "$out_tsv" ] || echo "rows appended to $out_tsv"
