#!/usr/bin/env bash
# Conversion speed and memory on a >= 500 MB checkpoint, against reading the same files
# sequentially (cat > /dev/null) in the same run. Both are timed with the files in the page cache
# (each read once before), so the ratio is the converter's own cost, not the disk's.
# usage: bench/convert_bench.sh [BUILD_DIR] [SIZE_MB]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
size="${2:-600}"
work="$(mktemp -d "${TMPDIR:-/tmp}/gqa-bench-XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$root/.venv/bin/python" "$root/bench/make_synthetic_llama.py" "$work/mha" "$size"
cat "$work"/mha/*.safetensors > /dev/null  # warm the page cache
now() { date +%s.%N; }
t0=$(now); cat "$work"/mha/*.safetensors > /dev/null; t1=$(now)
read_s=$(echo "$t1 - $t0" | bc -l)
# The floor for writing: copying the files and syncing them to disk, as the converter does.
t0=$(now); mkdir "$work/copy"; cp "$work"/mha/*.safetensors "$work/copy/"; sync; t1=$(now)
copy_s=$(echo "$t1 - $t0" | bc -l); rm -rf "$work/copy"
echo "baselines: cat > /dev/null $(printf '%.2f' "$read_s") s; cp + sync $(printf '%.2f' "$copy_s") s" 
largest=$("$root/.venv/bin/python" -c "import json,sys; from safetensors import safe_open; import glob
m=0
for f in glob.glob(sys.argv[1]+'/*.safetensors'):
  with safe_open(f,'np') as s:
    for k in s.keys(): m=max(m, s.get_slice(k).get_shape()[0]*s.get_slice(k).get_shape()[1] if len(s.get_slice(k).get_shape())==2 else 0)
print(m*4)" "$work/mha")
# What the gqa process holds before converting anything (LibTorch and its CUDA libraries load at
# start-up): the RSS of `gqa inspect` on the same folder.
/usr/bin/time -f "%M" -o "$work/rss0" "$build/cli/gqa" inspect "$work/mha" > /dev/null
base_kb=$(cat "$work/rss0")
echo "process baseline (gqa inspect): peak RSS $(( base_kb / 1024 )) MiB"
for strategy in mean similarity; do
  rm -rf "$work/out"
  t0=$(now)
  /usr/bin/time -f "%M" -o "$work/rss" "$build/cli/gqa" convert "$work/mha" "$work/out" -s $strategy --kv-heads 4 > /dev/null
  t1=$(now)
  conv_s=$(echo "$t1 - $t0" | bc -l)
  rss_kb=$(cat "$work/rss")
  printf '%-10s convert %.2f s = %.1fx cat, %.2fx cp+sync; peak RSS %.0f MiB, %.0f MiB above baseline = %.2fx largest tensor (%.0f MiB)\n' \
    "$strategy" "$conv_s" "$(echo "$conv_s / $read_s" | bc -l)" "$(echo "$conv_s / $copy_s" | bc -l)" "$(echo "$rss_kb / 1024" | bc -l)" \
    "$(echo "($rss_kb - $base_kb) / 1024" | bc -l)" "$(echo "($rss_kb - $base_kb) * 1024 / $largest" | bc -l)" "$(echo "$largest / 1048576" | bc -l)"
done
du -sh "$work/mha" "$work/out"
