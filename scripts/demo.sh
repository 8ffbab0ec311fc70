#!/usr/bin/env bash
# make demo: the main job on an embedded default. For now: build a small grouped-KV checkpoint
# (random init, GPT-2 tokenizer), inspect it, generate from it with the KV cache, and convert it
# further to MQA (the pretrained MHA default and `gqa compare` arrive with issues #5 and #6).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
gqa="$root/$build/cli/gqa"
model="$root/$build/demo/llama-gqa-random"
mkdir -p "$root/$build/demo"
if [ ! -f "$model/config.json" ]; then
  "$root/.venv/bin/python" "$root/examples/demo/make_random_model.py" "$model"
fi
echo
echo "== gqa inspect $model"
"$gqa" inspect "$model" --context 1024 --batch 16
echo
echo "== gqa generate (greedy, KV cache; random weights, so expect word salad)"
"$gqa" generate "$model" --prompt "It is a truth universally acknowledged" --prompt "The Martians" -n 16
echo
echo "== gqa generate (sampling, top-k 40, seed 1)"
"$gqa" generate "$model" --prompt "It is a truth universally acknowledged" -n 16 --sample --top-k 40 --seed 1
echo
echo "== gqa convert --mqa (mean pooling of the 2 KV heads) and the KV cache it saves"
"$gqa" convert "$model" "$model-mqa" --mqa --force
"$gqa" inspect "$model-mqa" --context 1024 --batch 16 | grep -E "attention|kv cache"
