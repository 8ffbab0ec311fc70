#!/usr/bin/env python3
"""Writes a synthetic MHA Llama checkpoint with random weights, laid out like transformers' (4.x)
save_pretrained of LlamaForCausalLM (sharded safetensors + model.safetensors.index.json,
config.json, generation_config.json, and the byte-level BPE tokenizer of
examples/assets/bpe4096). No model class is instantiated, so it takes seconds per gigabyte.

Two modes:
  make_synthetic_llama.py OUTDIR [SIZE_MB] [--dtype f32|bf16]
      legacy benchmark model of about SIZE_MB (default 600): hidden 1024, 16 heads,
      intermediate 2816, as many layers as fit; float32 by default; shards of at most 200 MiB.
  make_synthetic_llama.py OUTDIR --shape 124m|1b|7b [--dtype bf16|f32]
      real-shaped model; bfloat16 by default; shards of at most 2 GiB (7b: 7 shards, 12.6 GiB):
        124m  12 layers, hidden  768, 12 heads, intermediate  2048 (134.1 M parameters)
        1b    16 layers, hidden 2048, 16 heads, intermediate  5632 (953.2 M parameters)
        7b    32 layers, hidden 4096, 32 heads, intermediate 11008 (Llama-2-7B, 6.74 B parameters)
  Both: vocab 32000, untied lm_head, rms_norm_eps 1e-5, 4096 positions, rope_theta 10000.
  Options: --seed N (default 0), --max-shard-mib N (override the shard limit).

Weights are N(0, 0.02) from one seeded torch.Generator (torch.randn in float32 per tensor, scaled,
then cast to the output dtype), norm weights are ones. Tensors are listed in state-dict order
(embed_tokens, layer 0 .. layer L-1, norm, lm_head) and cut greedily into shards like
save_pretrained: a shard is closed before a tensor that would take it over the limit, so a layer
may straddle two shards; model.norm is kept with lm_head, so the last shard holds both. Only one
shard is held in memory at a time: it is built, written with safetensors' save_file, freed, and
the next one is built, so the peak RSS is about one shard plus the Python/torch baseline (~0.6 GiB).
Prints the parameter count, bytes, shards, wall time and peak RSS.
"""
import time

T_START = time.time()  # wall time reported at the end includes the torch import

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_DIR = os.path.join(ROOT, "examples", "assets", "bpe4096")
VOCAB = 32000
SHAPES = {"124m": dict(layers=12, hidden=768, heads=12, ffn=2048),
          "1b": dict(layers=16, hidden=2048, heads=16, ffn=5632),
          "7b": dict(layers=32, hidden=4096, heads=32, ffn=11008)}
DTYPES = {"f32": (torch.float32, "float32", 4), "bf16": (torch.bfloat16, "bfloat16", 2)}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir")
    p.add_argument("size_mb", nargs="?", type=int, help="legacy mode: about this many MB (default 600)")
    p.add_argument("--shape", choices=sorted(SHAPES), help="real-shaped preset instead of SIZE_MB")
    p.add_argument("--dtype", choices=sorted(DTYPES), help="default: f32 for SIZE_MB, bf16 for --shape")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-shard-mib", type=int, help="default: 200 for SIZE_MB, 2048 for --shape")
    a = p.parse_args()
    if a.shape and a.size_mb is not None:
        p.error("give either SIZE_MB or --shape, not both")
    return a


def tensor_specs(layers, d, ffn):
    """(name, shape, is_norm) in LlamaForCausalLM state-dict order."""
    specs = [("model.embed_tokens.weight", (VOCAB, d), False)]
    for l in range(layers):
        p = f"model.layers.{l}."
        specs += [(p + f"self_attn.{n}.weight", (d, d), False) for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        specs += [(p + "mlp.gate_proj.weight", (ffn, d), False), (p + "mlp.up_proj.weight", (ffn, d), False),
                  (p + "mlp.down_proj.weight", (d, ffn), False)]
        specs += [(p + "input_layernorm.weight", (d,), True), (p + "post_attention_layernorm.weight", (d,), True)]
    specs += [("model.norm.weight", (d,), True), ("lm_head.weight", (VOCAB, d), False)]
    return specs


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def plan_shards(specs, itemsize, max_bytes):
    """Greedy cut in order; model.norm and lm_head (the last two) stay together in the last shard."""
    units = [[s] for s in specs[:-2]] + [specs[-2:]]
    shards, cur, cur_bytes = [], [], 0
    for unit in units:
        b = sum(numel(s[1]) for s in unit) * itemsize
        if cur and cur_bytes + b > max_bytes:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur += unit
        cur_bytes += b
    if cur:
        shards.append(cur)
    return shards


def special_token_ids():
    """bos/eos ids: the tokenizer_config's bos_token/eos_token looked up in tokenizer.json."""
    tok = json.load(open(os.path.join(TOKENIZER_DIR, "tokenizer.json")))
    cfg = json.load(open(os.path.join(TOKENIZER_DIR, "tokenizer_config.json")))
    ids = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    ids.update({k: v for k, v in tok["model"]["vocab"].items() if k not in ids})
    max_id = max(ids.values())
    if max_id >= VOCAB:
        sys.exit(f"tokenizer id {max_id} does not fit the vocab of {VOCAB}")

    def find(key):
        t = cfg.get(key)
        t = t.get("content") if isinstance(t, dict) else t
        if t is None or t not in ids:
            sys.exit(f"{key} {t!r} of tokenizer_config.json not found in tokenizer.json")
        return ids[t]
    return find("bos_token"), find("eos_token")


def main():
    a = parse_args()
    if a.shape:
        s = SHAPES[a.shape]
        layers, d, heads, ffn = s["layers"], s["hidden"], s["heads"], s["ffn"]
        dtype_name = a.dtype or "bf16"
        max_shard_mib = a.max_shard_mib or 2048
    else:
        size_mb = a.size_mb if a.size_mb is not None else 600
        d, heads, ffn = 1024, 16, 2816
        dtype_name = a.dtype or "f32"
        itemsize = DTYPES[dtype_name][2]
        per_layer = 4 * d * d + 3 * d * ffn + 2 * d
        fixed = 2 * VOCAB * d + d
        layers = max(1, (size_mb * 2**20 // itemsize - fixed) // per_layer)
        max_shard_mib = a.max_shard_mib or 200
    dtype, torch_dtype, itemsize = DTYPES[dtype_name]
    specs = tensor_specs(layers, d, ffn)
    params = sum(numel(sp[1]) for sp in specs)
    shards = plan_shards(specs, itemsize, max_shard_mib * 2**20)
    bos, eos = special_token_ids()
    out = a.outdir
    os.makedirs(out, exist_ok=True)
    # Shards of an earlier run into the same folder would be left over if their count differed.
    for old in glob.glob(os.path.join(out, "model-*-of-*.safetensors")) + glob.glob(os.path.join(out, "model.safetensors")):
        os.remove(old)

    g = torch.Generator().manual_seed(a.seed)
    weight_map, total = {}, 0
    for i, shard_specs in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        shard = {}
        for key, shape, is_norm in shard_specs:
            if is_norm:
                t = torch.ones(shape, dtype=dtype)
            else:
                t = torch.randn(shape, generator=g).mul_(0.02)
                if dtype != torch.float32:
                    t = t.to(dtype)
            shard[key] = t
            weight_map[key] = name
            total += t.numel() * itemsize
        save_file(shard, os.path.join(out, name), metadata={"format": "pt"})
        shard_bytes = sum(t.numel() * itemsize for t in shard.values())
        del shard, t
        print(f"  {name}: {len(shard_specs)} tensors, {shard_bytes / 2**20:.0f} MiB "
              f"({time.time() - T_START:.1f} s)", file=sys.stderr, flush=True)

    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        # As transformers writes it: weight_map sorted by name, sizes in bytes.
        json.dump({"metadata": {"total_parameters": params, "total_size": total},
                   "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
              "hidden_size": d, "intermediate_size": ffn, "num_hidden_layers": layers,
              "num_attention_heads": heads, "num_key_value_heads": heads, "head_dim": d // heads,
              "hidden_act": "silu", "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0, "attention_bias": False, "mlp_bias": False, "initializer_range": 0.02,
              "tie_word_embeddings": False, "use_cache": True, "bos_token_id": bos, "eos_token_id": eos,
              "torch_dtype": torch_dtype}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": bos, "eos_token_id": eos}, f, indent=2)
        f.write("\n")
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(TOKENIZER_DIR, fn), os.path.join(out, fn))

    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    what = f"--shape {a.shape}" if a.shape else f"~{size_mb} MB"
    print(f"synthetic llama ({what}, {torch_dtype}): {layers} layers, hidden {d}, {heads} heads, "
          f"intermediate {ffn}, {params:,} parameters, {total:,} bytes ({total / 2**20:.0f} MiB) "
          f"in {len(shards)} shards at {out}; {time.time() - T_START:.1f} s, peak RSS {rss_mib:.0f} MiB")


if __name__ == "__main__":
    main()
