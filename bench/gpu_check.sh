#!/usr/bin/env bash
# The prepared GPU checks: the first thing to run whenever an H100 is at hand (docs/benchmarks.md,
# "GPU checks"). At most about 9 minutes. Every step also runs with --device cpu (smaller sizes),
# so its logic is tested where no GPU is (tests/cli/test_gpu_check.cpp runs it that way).
#
# usage: bench/gpu_check.sh [--device cuda|cpu] [--build DIR] [--out DIR] [--oracle DIR]
#   cuda: runs .devkit/setup-device.sh when present (copy ../shared/device to .devkit and carry it),
#         configures and builds DIR (default build-gpu) against the torch of $GQA_PYTHON
#         (default /opt/torch/.venv/bin/python), and uses nvidia-smi for peak memory.
#   cpu:  uses an existing build (default build); peak memory from GNU time.
#   --oracle: the parity oracle's folders (default BUILD/oracle; carry build/oracle to the device
#         when its python has no transformers). Without it the parity step is skipped, and says so.
# Steps:
#   1. build (cuda) - 2. CUDA test cases: f32/bf16 parity, decode kernel (cpu: the cpu cases)
#   3. gqa bench decode at batch 1..512 (cpu: 1,4) of a GQA model against its MHA source, and (3b) of a
#      latent-attention (MLA) model caching the same bytes
#   4. uptraining of a >= 100 M-parameter GPT-2-shaped model in bf16: plain, --checkpoint-activations,
#      --shard-optimizer, both; tokens/s, MFU (6 x parameters x tokens/s over the device's bf16
#      peak: 989 TFLOP/s for an H100 SXM, GQA_PEAK_TFLOPS to override) and peak memory beside --plan.
# Results: OUT/summary.tsv and the logs of each step, in OUT (default $OUT or gpu-check-out).
# Exit code: 0 when every step is ok (or skipped), 1 otherwise.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
device=cuda build="" out="${OUT:-$root/gpu-check-out}" oracle=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --oracle) oracle="$2"; shift 2 ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$device" == cuda || "$device" == cpu ]] || { echo "gpu_check.sh: --device must be cuda or cpu" >&2; exit 2; }
mkdir -p "$out"
summary="$out/summary.tsv"
printf "step\tresult\tdetail\n" >"$summary"
started=$(date +%s)
failed=0
note() {
  printf "%s\t%s\t%s\n" "$1" "$2" "$3" | tee -a "$summary"
  [[ "$2" == FAILED ]] && failed=1
  return 0
}
elapsed() { echo $(( $(date +%s) - started )); }

# 1. Build.
if [[ "$device" == cuda ]]; then
  build="${build:-$root/build-gpu}"
  [[ -f "$root/.devkit/setup-device.sh" ]] && bash "$root/.devkit/setup-device.sh" >"$out/setup.log" 2>&1
  py="${GQA_PYTHON:-/opt/torch/.venv/bin/python}"
  if cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGQA_PYTHON="$py" >"$out/configure.log" 2>&1 &&
     cmake --build "$build" -j "$(nproc)" --target gqa test_parity test_decode_attention >"$out/build.log" 2>&1; then
    note build ok "$(elapsed) s"
  else
    note build FAILED "see $out/build.log"; exit 1
  fi
else
  build="${build:-$root/build}"
  [[ -x "$build/cli/gqa" ]] || { note build FAILED "no $build/cli/gqa: build first (make build)"; exit 1; }
  note build ok "existing $build"
fi
gqa="$build/cli/gqa"
oracle="${oracle:-$build/oracle}"

# 2. Test cases of the device: parity (f32, bf16) and the decode kernel.
if [[ -d "$oracle" ]]; then
  if GQA_ORACLE_DIR="$oracle" "$build/tests/model/test_parity" --gtest_filter="*${device}_*" >"$out/parity.log" 2>&1; then
    note parity ok "$(grep -c '^\[       OK' "$out/parity.log") cases (${device}_f32, ${device}_bf16 ...)"
  else
    note parity FAILED "see $out/parity.log"
  fi
else
  note parity skipped "no oracle folders at $oracle (carry build/oracle)"
fi
if "$build/tests/kernels/test_decode_attention" >"$out/kernels.log" 2>&1; then
  note kernels ok "$(grep -c '^\[       OK' "$out/kernels.log") cases"
else
  note kernels FAILED "see $out/kernels.log"
fi

# Models: a GPT-2-small-shaped MHA model (124 M parameters, vocab 50257) made by gqa train from
# random tokens (one step, so no Python is needed), and its 4-KV-head conversion.
models="$out/models"
mkdir -p "$models"
if [[ "$device" == cuda ]]; then shape='{"family": "gpt2", "vocab_size": 50257, "layers": 12, "d_model": 768, "heads": 12}'
else shape='{"family": "gpt2", "vocab_size": 50257, "layers": 2, "d_model": 256, "heads": 4}'; fi
echo "$shape" >"$models/shape.json"
python3 -c "import array, random, sys; random.seed(0); array.array('H', (random.randrange(50257) for _ in range(2000000))).tofile(open(sys.argv[1], 'wb'))" \
  "$models/tokens.bin"
"$gqa" train "$models/mha-run" --config "$models/shape.json" --tokenizer "$root/examples/assets/bpe4096" \
  --data "$models/tokens.bin" --steps 1 --seq-len 64 \
  --batch-size 2 --device "$device" --quiet --force >"$out/models.log" 2>&1 &&
  "$gqa" convert "$models/mha-run/model" "$models/gqa" --strategy mean --kv-heads 4 --force >>"$out/models.log" 2>&1 ||
  { note models FAILED "see $out/models.log"; exit 1; }
mha="$models/mha-run/model"

# 3. Decode speed against the MHA source, in the same run.
if [[ "$device" == cuda ]]; then batches=1,16,64,512 context=2048 new=128; else batches=1,4 context=128 new=16; fi
if "$gqa" bench decode "$models/gqa" --baseline "$mha" --batch "$batches" --context "$context" --new-tokens "$new" \
     --device "$device" --dtype bf16 >"$out/decode.log" 2>&1; then
  note decode ok "batch $batches: see $out/decode.log"
else
  note decode FAILED "see $out/decode.log"
fi

# 3b. Latent attention (issue #21) caching what the GQA model caches (GPT-2 has no RoPE: all of it
# latent, 4 KV heads x (K + V) 64 dims = rank 512; cpu: 1 head's 128), against the same MHA source.
if [[ "$device" == cuda ]]; then rank=512; else rank=128; fi
if "$gqa" convert "$mha" "$models/mla" --target mla --kv-rank "$rank" --force >>"$out/models.log" 2>&1 &&
   "$gqa" bench decode "$models/mla" --baseline "$mha" --batch "$batches" --context "$context" --new-tokens "$new" \
     --device "$device" --dtype bf16 >"$out/decode-mla.log" 2>&1; then
  note decode-mla ok "rank $rank, batch $batches: see $out/decode-mla.log"
else
  note decode-mla FAILED "see $out/models.log and $out/decode-mla.log"
fi

# 4. Uptraining in bf16: each mode against the plain one, with --plan beside the measured peak.
if [[ "$device" == cuda ]]; then batch=8 seq=1024 steps=30; else batch=2 seq=64 steps=4; fi
peak_tflops="${GQA_PEAK_TFLOPS:-989}"
params=$("$gqa" uptrain "$models/gqa" --plan --device-memory 1TiB --batch-size "$batch" --seq-len "$seq" | sed -n '1s/.*(\([0-9,]*\) parameters).*/\1/p' | tr -d ,)
plain_tps=""
# GNU time for the CPU's peak RSS (the GPU image may lack it; nvidia-smi gives the GPU's peak).
timer=""
[[ -x /usr/bin/time ]] && timer="/usr/bin/time -f %M -o"
for mode in "plain|" "checkpointing|--checkpoint-activations" "sharded|--shard-optimizer" \
            "sharded+checkpointing|--shard-optimizer --checkpoint-activations"; do
  IFS='|' read -r name flags <<<"$mode"
  run_dir="$out/uptrain-${name//+/-}"
  # shellcheck disable=SC2086
  plan=$("$gqa" uptrain "$models/gqa" --plan --device "$device" --dtype bf16 --batch-size "$batch" --seq-len "$seq" $flags \
           --device-memory 1TiB | awk '$1=="peak"{print $2, $3}')
  if [[ "$device" == cuda ]]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$run_dir.smi" 2>/dev/null &
    smi=$!
  fi
  # shellcheck disable=SC2086
  $timer ${timer:+"$run_dir.rss"} "$gqa" uptrain "$models/gqa" "$run_dir" --data "$models/tokens.bin" --steps "$steps" \
    --batch-size "$batch" --seq-len "$seq" --warmup 0 --device "$device" --dtype bf16 --quiet --force $flags >"$run_dir.log" 2>&1
  code=$?
  if [[ "$device" == cuda ]]; then
    kill "$smi" 2>/dev/null
    peak="$(sort -n "$run_dir.smi" | tail -n 1) MiB (nvidia-smi)"
  else
    peak="$( [[ -f "$run_dir.rss" ]] && echo "$(( $(tail -n 1 "$run_dir.rss") / 1024 )) MiB (RSS)" || echo "unmeasured (no /usr/bin/time)")"
  fi
  if [[ $code -ne 0 ]]; then note "uptrain $name" FAILED "see $run_dir.log"; continue; fi
  tps=$(awk -F'"tokens":' '/"kind":"train"/{split($2, a, /[,}]/); t[++n]=a[1]; match($0, /"elapsed_s":[0-9.e+-]+/); e[n]=substr($0, RSTART+12, RLENGTH-12)}
        END{if (n > 1) printf "%.1f", (t[n]-t[1])/(e[n]-e[1]); else print 0}' "$run_dir/train_log.jsonl")
  [[ -z "$plain_tps" ]] && plain_tps="$tps"
  mfu=$(awk -v t="$tps" -v p="$params" -v f="$peak_tflops" 'BEGIN{printf "%.1f%%", 100 * 6 * p * t / (f * 1e12)}')
  ratio=$(awk -v t="$tps" -v b="$plain_tps" 'BEGIN{printf "%.2f", (b > 0) ? t / b : 0}')
  note "uptrain $name" ok "$tps tokens/s (${ratio}x plain), MFU $mfu, peak $peak, plan $plan"
done
note total "$([[ $failed == 0 ]] && echo ok || echo 'with failures')" "$(elapsed) s"
exit "$failed"
