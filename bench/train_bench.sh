#!/usr/bin/env bash
# Training throughput of `gqa uptrain` against an eager PyTorch loop over the same transformers
# model (AdamW, clipping, same batch and sequence length), measured in the same run on this
# machine; prints tokens/s of both and the ratio (target >= 1.0 on CPU).
# usage: bench/train_bench.sh [BUILD_DIR] [FAMILY gpt2|llama] [THREADS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
family="${2:-llama}"
threads="${3:-$(nproc)}"
py="$root/.venv/bin/python"
work="$(mktemp -d "${TMPDIR:-/tmp}/gqa-train-bench-XXXXXX")"
trap 'rm -rf "$work"' EXIT
seq=256 batch=8 steps=30 warm=5
# A 4-layer d=512 model with the project's 4096-token vocabulary, and corpus-like token ids.
"$py" - "$work/model" "$work/tokens.bin" "$family" <<'PY'
import sys, numpy as np, torch, transformers as T
out, tokens, family = sys.argv[1:4]
torch.manual_seed(0)
if family == "llama":
    cfg = T.LlamaConfig(vocab_size=4096, hidden_size=512, num_attention_heads=8, num_key_value_heads=8,
                        intermediate_size=1376, num_hidden_layers=4, max_position_embeddings=1024, tie_word_embeddings=True)
    m = T.LlamaForCausalLM(cfg)
else:
    cfg = T.GPT2Config(vocab_size=4096, n_embd=512, n_head=8, n_layer=4, n_positions=1024, bos_token_id=0, eos_token_id=0,
                       resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    m = T.GPT2LMHeadModel(cfg)
m.save_pretrained(out)
np.random.default_rng(0).integers(0, 4096, 400_000, dtype=np.uint16).tofile(tokens)
params = sum(p.numel() for p in m.parameters())
print(f"model: {family}, {params / 1e6:.1f} M parameters, batch {8} x {256} tokens")
PY
"$build/cli/gqa" uptrain "$work/model" "$work/out" --data "$work/tokens.bin" --seq-len $seq --batch-size $batch \
  --steps $steps --lr 1e-4 --warmup 0 --threads "$threads" --quiet > /dev/null
ours=$("$py" - "$work/out/train_log.jsonl" $warm <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"train"' in l]
warm = int(sys.argv[2])
a, b = rows[warm - 1], rows[-1]
print(f"{(b['tokens'] - a['tokens']) / (b['elapsed_s'] - a['elapsed_s']):.1f}")
PY
)
theirs=$("$py" "$root/bench/train_bench.py" "$work/model" "$work/tokens.bin" $seq $batch $steps $warm "$threads")
echo "gqa uptrain:          $ours tokens/s"
echo "PyTorch eager (HF):   $theirs tokens/s"
echo "ratio gqa / PyTorch:  $("$py" -c "print(f'{$ours / $theirs:.2f}')")  ($threads threads, $(nproc) cores)"
