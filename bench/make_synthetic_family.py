#!/usr/bin/env python3
"""Writes a real-shaped MHA checkpoint of a family beyond Llama with random weights, as
transformers' save_pretrained names and shapes it (bfloat16, sharded safetensors + index,
config.json). The tensor list comes from the transformers class itself, built on the meta device
(no memory, no init), so names and shapes are exactly the library's; weights are N(0, 0.02), norm
weights ones, biases zero; one shard is held in memory at a time. For real-size benchmarks of
gqa on these families (docs/benchmarks.md); bench/make_synthetic_llama.py does Llama.

usage: make_synthetic_family.py OUTDIR --shape pythia-1.4b|opt-1.3b|opt-350m|qwen1.5-1.8b [--seed N]
Prints the parameter count, bytes, shards, wall time and peak RSS.
"""
import time

T_START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402

import torch  # noqa: E402
import transformers as T  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

# The published shapes (config.json of EleutherAI/pythia-1.4b, facebook/opt-1.3b, facebook/opt-350m,
# Qwen/Qwen1.5-1.8B), MHA all.
SHAPES = {
    "pythia-1.4b": (T.GPTNeoXConfig, dict(vocab_size=50304, hidden_size=2048, num_hidden_layers=24, num_attention_heads=16,
                                          intermediate_size=8192, max_position_embeddings=2048, rotary_pct=0.25,
                                          use_parallel_residual=True, tie_word_embeddings=False)),
    "opt-1.3b": (T.OPTConfig, dict(vocab_size=50272, hidden_size=2048, num_hidden_layers=24, num_attention_heads=32,
                                   ffn_dim=8192, max_position_embeddings=2048, word_embed_proj_dim=2048,
                                   do_layer_norm_before=True)),
    "opt-350m": (T.OPTConfig, dict(vocab_size=50272, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                   ffn_dim=4096, max_position_embeddings=2048, word_embed_proj_dim=512,
                                   do_layer_norm_before=False)),
    "qwen1.5-1.8b": (T.Qwen2Config, dict(vocab_size=151936, hidden_size=2048, num_hidden_layers=24, num_attention_heads=16,
                                         num_key_value_heads=16, intermediate_size=5504, max_position_embeddings=32768,
                                         rope_theta=1000000.0, tie_word_embeddings=False)),
}
SAVED_NAMES = {"lm_head.weight": {"gpt_neox": "embed_out.weight"}}  # save_pretrained's names where they differ
MAX_SHARD = 2 << 30


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("outdir")
    p.add_argument("--shape", choices=sorted(SHAPES), required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    cls, fields = SHAPES[a.shape]
    config = cls(**fields)
    config.dtype = "bfloat16"
    with torch.device("meta"):
        model = T.AutoModelForCausalLM.from_config(config)
    specs = []
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        specs.append((SAVED_NAMES.get(name, {}).get(config.model_type, name), tuple(t.shape)))
    if os.path.exists(a.outdir):
        shutil.rmtree(a.outdir)
    os.makedirs(a.outdir)
    shards, cur, cur_bytes = [], [], 0
    for s in specs:
        b = 2 * int(torch.Size(s[1]).numel())
        if cur and cur_bytes + b > MAX_SHARD:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append(s)
        cur_bytes += b
    shards.append(cur)
    g = torch.Generator().manual_seed(a.seed)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name, shape in shard:
            if len(shape) == 1:
                is_norm = "norm" in name
                tensors[name] = (torch.ones(shape) if is_norm else torch.zeros(shape)).to(torch.bfloat16)
            else:
                tensors[name] = (torch.randn(shape, generator=g) * 0.02).to(torch.bfloat16)
            weight_map[name] = fname
            total += tensors[name].numel()
        save_file(tensors, os.path.join(a.outdir, fname), metadata={"format": "pt"})
        del tensors
    with open(os.path.join(a.outdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 2 * total}, "weight_map": weight_map}, f, indent=2)
    config.save_pretrained(a.outdir)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{a.shape}: {total / 1e9:.3f} B parameters, {2 * total / 2**30:.2f} GiB bf16 in {len(shards)} shards, "
          f"{time.time() - T_START:.1f} s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
