#!/usr/bin/env python3
"""Builds the demo's embedded default checkpoint offline: a small random-init Llama-style model with
grouped KV heads (8 query heads, 2 KV heads) and the vendored GPT-2 tokenizer, saved with
transformers' save_pretrained. (Later versions of the demo train a real MHA model on the shared
corpus; this one only exercises loading, inspection and cached generation.)

usage: make_random_model.py OUTDIR
"""
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import torch  # noqa: E402
import transformers as T  # noqa: E402

out = sys.argv[1]
assets = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "gpt2")
torch.manual_seed(0)
cfg = T.LlamaConfig(vocab_size=50257, hidden_size=256, num_attention_heads=8, num_key_value_heads=2,
                    intermediate_size=688, num_hidden_layers=4, max_position_embeddings=1024,
                    bos_token_id=50256, eos_token_id=50256, tie_word_embeddings=True)
model = T.LlamaForCausalLM(cfg).eval()
tmp = out + ".tmp"
shutil.rmtree(tmp, ignore_errors=True)
model.save_pretrained(tmp, safe_serialization=True)
for f in ("vocab.json", "merges.txt"):
    shutil.copy(os.path.join(assets, f), tmp)
os.replace(tmp, out)
print(f"demo: wrote {out} ({sum(p.numel() for p in model.parameters()):,} parameters)")
