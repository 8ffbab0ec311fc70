#!/usr/bin/env python3
"""The seed poster (000), scaled down: GPT-Neo-style models trained from scratch on the shared
corpus with fewer KV heads (group proportions 0.75/0.5/0.25/0.125 of the 8 query heads: 6, 4, 2, 1
KV heads; 6 needs uneven groups, the poster's "modified GQA"), with smaller K/Q/V head dims (the
same proportions of the 16-dim heads: "KQV"), and both together ("combined"). Every variant's FFN
width is set by `gqa train --match-params` so its parameter count equals the MHA model's. Quality:
held-out perplexity on test.txt and minimal-pair accuracy (examples/assets/minimal_pairs); speed:
decode time per token at batch 16 and 512 against the MHA model in the same `gqa eval` run.

usage: run.py GQA_BINARY CORPUS_DIR WORK_DIR OUT_MD [STEPS]
"""
import json
import os
import sys

gqa, corpus, work, out_md = sys.argv[1:5]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gqa_cli import Gqa  # noqa: E402

sh = Gqa(gqa)
steps = int(sys.argv[5]) if len(sys.argv) > 5 else 400
os.makedirs(work, exist_ok=True)
here = os.path.dirname(os.path.abspath(__file__))
assets = os.path.join(here, "..", "assets")
train, valid, test = (os.path.join(corpus, f"{n}.txt.gz") for n in ("train", "valid", "test"))
pairs = os.path.join(assets, "minimal_pairs", "english.jsonl")
threads = os.environ.get("THREADS", "2")
HEADS, HEAD_DIM = 8, 16
base = {"family": "gpt_neo", "layers": 4, "d_model": HEADS * HEAD_DIM, "heads": HEADS, "ffn_dim": 512,
        "vocab_size": 4096, "max_positions": 256}


def group_map(n_kv):
    """Query head -> KV head, as even as possible (6 KV heads for 8 queries: sizes 2,2,1,1,1,1)."""
    sizes = [HEADS // n_kv + (1 if g < HEADS % n_kv else 0) for g in range(n_kv)]
    return [g for g, n in enumerate(sizes) for _ in range(n)]


variants = [("MHA", {})]
for p in (0.75, 0.5, 0.25, 0.125):
    kv = round(HEADS * p)
    dim = round(HEAD_DIM * p)
    variants.append((f"GQA {p}", {"group_map": group_map(kv)}))
    variants.append((f"KQV {p}", {"qk_head_dim": dim, "v_head_dim": dim}))
    variants.append((f"combined {p}", {"group_map": group_map(kv), "qk_head_dim": dim, "v_head_dim": dim}))



mha_shape = os.path.join(work, "MHA.json")
json.dump(base, open(mha_shape, "w"))
rows = []
for name, change in variants:
    tag = name.replace(" ", "-")
    shape = os.path.join(work, tag + ".json")
    json.dump({**base, **change}, open(shape, "w"))
    run = os.path.join(work, tag)
    if not os.path.exists(os.path.join(run, "model", "config.json")):
        match = [] if name == "MHA" else ["--match-params", mha_shape]
        _, secs = sh("train", run, "--config", shape, "--tokenizer", os.path.join(assets, "bpe4096"), "--data", train,
                     "--valid", valid, "--seq-len", "128", "--batch-size", "16", "--steps", str(steps), "--lr", "2e-3",
                     "--warmup", "-1", "--decay", "cosine", "--threads", threads, "--quiet", "--force", *match)
        print(f"{name}: trained in {secs:.0f} s", flush=True)
    model = os.path.join(run, "model")
    cfg = json.load(open(os.path.join(model, "config.json")))
    out, _ = sh("eval", model, "--text", test, "--max-tokens", "32768", "--context", "128", "--pairs", pairs, "--json")
    quality = {json.loads(l)["metric"]: json.loads(l) for l in out.splitlines() if l.startswith("{")}
    rows.append({"name": name, "model": model, "config": cfg, "quality": quality})

# Speed: each variant against the MHA model in the same run (same process, same machine state).
mha_model = rows[0]["model"]
for r in rows[1:]:
    out, _ = sh("eval", r["model"], "--speed", "--baseline", mha_model, "--batch-sizes", "16,512", "--prompt-len", "64",
                "--new-tokens", "16", "--repeats", "3", "--threads", threads, "--json")
    r["speed"] = [json.loads(l) for l in out.splitlines() if l.startswith("{") and json.loads(l).get("metric") == "decode"]
    print(r["name"], "speed done", flush=True)


with open(out_md + ".tmp", "w") as f:
    f.write(f"GPT-Neo, 4 layers, d 128, 8 heads of 16, trained from scratch for {steps} steps of 16 x 128 tokens "
            f"({steps * 16 * 128:,} tokens) on train.txt; held-out: 32,768 tokens of test.txt (context 128); minimal "
            f"pairs: examples/assets/minimal_pairs (60 pairs). Decode: prompt 64, 16 new tokens, median of 3, "
            f"time per decode step of each model and of the MHA model measured in the same run just before or after it (speedup > 1: faster than MHA); {threads} thread(s).\n\n")
    f.write("| model | KV heads | K/Q/V head dim | FFN | perplexity | pairs acc. | KV bytes vs MHA | ms/step b16 | MHA ms/step b16 "
            "| speedup b16 | ms/step b512 | MHA ms/step b512 | speedup b512 |\n")
    f.write("|---" * 13 + "|\n")
    for r in rows:
        c = r["config"]
        q = r["quality"]
        ppl = next((v["perplexity"] for k, v in q.items() if "perplexity" in v), float("nan"))
        acc = next((v["accuracy"] for k, v in q.items() if "accuracy" in v), float("nan"))
        kv = c.get("num_key_value_heads", HEADS)
        gm = c.get("gqa_group_map")
        kv_heads = len(set(gm)) if gm else kv
        dim = c.get("gqa_qk_head_dim", HEAD_DIM)
        cells = []
        # KV bytes per token relative to MHA, from the shapes: heads x (K dim + V dim).
        kv_ratio = kv_heads * (dim + c.get("gqa_v_head_dim", HEAD_DIM)) / (HEADS * 2 * HEAD_DIM)
        for b in (16, 512):
            mine = [m for m in r.get("speed", []) if m["batch"] == b]
            if mine:
                # `gqa eval --baseline` puts the MHA model's figures from the same run on each line.
                m = mine[0]
                cells += [f"{m['ms_per_step']:.2f}", f"{m['baseline_ms_per_step']:.2f}", f"{m['speedup']:.2f}x"]
                measured = m["kv_cache_bytes"] / m["baseline_kv_cache_bytes"]
                assert abs(measured - kv_ratio) < 1e-9, (r["name"], measured, kv_ratio)
            else:
                cells += ["—", "—", "—"]
        f.write(f"| {r['name']} | {kv_heads} | {dim} | {c.get('intermediate_size', c.get('ffn_dim', ''))} | {ppl:.2f} | {acc:.3f} | "
                f"{kv_ratio:.3f} | " + " | ".join(cells) + " |\n")
os.replace(out_md + ".tmp", out_md)
print(open(out_md).read())
# The chart beside the table: quality vs decode speed at batch 512.
import subprocess  # noqa: E402
subprocess.run([sys.executable, os.path.join(here, "chart.py"), out_md,
                os.path.join(os.path.dirname(os.path.abspath(out_md)), "quality-vs-speed.svg")], check=True)
