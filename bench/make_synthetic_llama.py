#!/usr/bin/env python3
"""Writes a synthetic MHA Llama checkpoint of about SIZE_MB (float32, random weights, sharded like
transformers' save_pretrained) for the conversion benchmark. No model class is instantiated, so
it takes seconds even for gigabytes.

usage: make_synthetic_llama.py OUTDIR [SIZE_MB]
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

out = sys.argv[1]
size_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 600
d, heads, ffn, vocab = 1024, 16, 2816, 32000
per_layer = 4 * d * d + 3 * d * ffn + 2 * d
fixed = 2 * vocab * d + d
layers = max(1, (size_mb * 2**20 // 4 - fixed) // per_layer)
os.makedirs(out, exist_ok=True)
g = torch.Generator().manual_seed(0)
tensors = {"model.embed_tokens.weight": torch.randn(vocab, d, generator=g) * 0.02,
           "lm_head.weight": torch.randn(vocab, d, generator=g) * 0.02,
           "model.norm.weight": torch.ones(d)}
shard, shards, weight_map, total = {}, [], {}, 0


def flush():
    global shard
    if shard:
        shards.append(shard)
        shard = {}


for l in range(layers):
    p = f"model.layers.{l}."
    layer = {p + "input_layernorm.weight": torch.ones(d), p + "post_attention_layernorm.weight": torch.ones(d)}
    for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
        layer[p + f"self_attn.{n}.weight"] = torch.randn(d, d, generator=g) * 0.02
    layer[p + "mlp.gate_proj.weight"] = torch.randn(ffn, d, generator=g) * 0.02
    layer[p + "mlp.up_proj.weight"] = torch.randn(ffn, d, generator=g) * 0.02
    layer[p + "mlp.down_proj.weight"] = torch.randn(d, ffn, generator=g) * 0.02
    shard.update(layer)
    if sum(t.numel() for t in shard.values()) * 4 > 200 * 2**20:
        flush()
shard.update(tensors)
flush()
for i, s in enumerate(shards):
    name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    save_file(s, os.path.join(out, name), metadata={"format": "pt"})
    for k, t in s.items():
        weight_map[k] = name
        total += t.numel() * 4
json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
          open(os.path.join(out, "model.safetensors.index.json"), "w"), indent=2)
json.dump({"model_type": "llama", "vocab_size": vocab, "hidden_size": d, "num_attention_heads": heads,
           "num_key_value_heads": heads, "intermediate_size": ffn, "num_hidden_layers": layers,
           "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "tie_word_embeddings": False},
          open(os.path.join(out, "config.json"), "w"), indent=2)
print(f"synthetic llama: {layers} layers, {total / 2**20:.0f} MiB in {len(shards)} shards at {out}")
