#!/usr/bin/env python3
"""Issue #21's study: GQA against multi-head latent attention (MLA) at equal KV bytes, on the
project's pretrained Llama (examples/uptrain_recovery, the 3-epoch `llama-d192.json` model).

For each KV budget (1/4 and 1/8 of MHA's KV bytes per token: the cache of 2 and of 1 of 8 KV heads):
1. GQA: `gqa convert --strategy svd --kv-heads K --calib valid.txt` (the best GQA recipe of
   examples/uptrain_recovery);
2. MLA: `gqa convert --target mla --kv-rank R --rope-dims D --calib valid.txt` with R + D = the
   same dims per token, D = one head's rotary dims (the deepseek_v3 layout);
3. held-out perplexity at step 0, after 5% uptraining (lr 5e-4, batch 32 x 128, as
   uptrain_recovery) and after the same 5% with distillation from the MHA model (weight 0.5, T 2);
4. the MLA folders exported to deepseek_v3 (`gqa export`, anchor and plain latent norm) and scored
   by transformers on the same windows (scripts beside this one), which measures what DeepSeek's
   latent RMSNorm costs when it is not made linear;
5. CPU decode time per token at batch 1, 16, 64 and context 1024 (`gqa bench decode`, each model
   with the MHA model in the same run, and MLA with GQA in the same run).

usage: run.py GQA_BINARY MHA_MODEL_DIR CORPUS_DIR WORK_DIR OUT_MD
6. the same bytes split otherwise between latent and rotary key (ROPE_SPLITS, default "2:12,2:48,1:12":
   KV heads matched : D), step 0 and distilled.

environment: THREADS (default 2), FRACTION (default 0.05), ROPE_SPLITS, SKIP_SPEED=1, SKIP_HF=1
"""
import json
import os
import shutil
import subprocess
import sys

gqa, mha, corpus, work, out_md = sys.argv[1:6]
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
from gqa_cli import Gqa  # noqa: E402
from svg_charts import lines  # noqa: E402

sh = Gqa(gqa)
threads = os.environ.get("THREADS", "2")
fraction = float(os.environ.get("FRACTION", "0.05"))
os.makedirs(work, exist_ok=True)
train, valid, test = (os.path.join(corpus, f"{n}.txt.gz") for n in ("train", "valid", "test"))
cfg = json.load(open(os.path.join(mha, "config.json")))
heads, d = cfg["num_attention_heads"], cfg["hidden_size"]
head_dim = cfg.get("head_dim") or d // heads
pretrain_tokens = cfg["gqa_training"]["tokens"]
results = {}
results_path = os.path.join(work, "results.json")
if os.path.exists(results_path):
    results = json.load(open(results_path))


def remember(key, value):
    results[key] = value
    json.dump(results, open(results_path, "w"), indent=1)
    return value


def held_out(key, model):
    if key not in results:
        remember(key, sh.held_out(model, test))
        print(f"{key}: perplexity {results[key]['perplexity']:.2f}", flush=True)
    return results[key]


def uptrain(model, out, teacher):
    if not os.path.exists(os.path.join(out, "model", "config.json")):
        extra = ["--teacher", mha, "--distill-weight", "0.5", "--temperature", "2"] if teacher else []
        sh("uptrain", model, out, "--data", train, "--valid", valid, "--fraction", str(fraction), "--seq-len", "128",
           "--batch-size", "32", "--lr", "5e-4", "--warmup", "-1", "--eval-every", "16", "--eval-sequences", "64",
           "--threads", threads, "--quiet", "--force", *extra)
    return os.path.join(out, "model")


def convert(out, *args):
    if not os.path.exists(os.path.join(out, "config.json")):
        stdout, seconds = sh("convert", mha, out, "--calib", valid, "--force", *args)
        remember(os.path.basename(out) + "/convert", {"seconds": seconds, "log": stdout.splitlines()[-4:]})
    return out


held_out("mha", mha)
points = []  # (budget name, kv heads, gqa dir, mla dir, rank, rope)
for kv, budget in ((2, "1/4"), (1, "1/8")):
    dims = kv * 2 * head_dim  # K and V of kv heads per token and layer
    rope = head_dim           # Llama turns whole heads: one head's rotary dims
    rank = dims - rope
    g = convert(os.path.join(work, f"gqa-svd-kv{kv}"), "--strategy", "svd", "--kv-heads", str(kv))
    m = convert(os.path.join(work, f"mla-kv{kv}"), "--target", "mla", "--kv-rank", str(rank), "--rope-dims", str(rope))
    points.append((budget, kv, g, m, rank, rope))
    for name, model in ((f"gqa-svd-kv{kv}", g), (f"mla-kv{kv}", m)):
        held_out(name + "/step0", model)
        held_out(name + "/uptrain", uptrain(model, os.path.join(work, "up-" + name), False))
        held_out(name + "/distill", uptrain(model, os.path.join(work, "up-" + name + "-distill"), True))

# How the same bytes split between the latent and the rotary key: other D at each budget
# (ROPE_SPLITS, "kv:D,..."), step 0 and distilled only.
splits = [tuple(int(v) for v in item.split(":")) for item in os.environ.get("ROPE_SPLITS", "2:12,2:48,1:12").split(",")
          if item]
for kv, rope in splits:
    name = f"mla-kv{kv}-rope{rope}"
    m = convert(os.path.join(work, name), "--target", "mla", "--kv-rank", str(kv * 2 * head_dim - rope),
                "--rope-dims", str(rope))
    held_out(name + "/step0", m)
    held_out(name + "/distill", uptrain(m, os.path.join(work, "up-" + name + "-distill"), True))

# deepseek_v3 exports of the MLA models (step 0 and after distilled uptraining), scored by
# transformers on the windows gqa eval uses; the gqa-side figure of the same model is beside it.
if os.environ.get("SKIP_HF") != "1":
    python = os.path.join(os.path.dirname(os.path.dirname(here)), ".venv", "bin", "python")
    for budget, kv, _, m, rank, rope in points:
        for stage, model in (("step0", m), ("distill", os.path.join(work, f"up-mla-kv{kv}-distill", "model"))):
            for norm in ("anchor", "plain"):
                key = f"mla-kv{kv}/{stage}/deepseek_v3-{norm}"
                if key in results:
                    continue
                out = os.path.join(work, f"ds-kv{kv}-{stage}-{norm}")
                sh("export", model, out, "--format", "deepseek_v3", "--latent-norm", norm, "--calib", valid, "--force")
                r = subprocess.run([python, os.path.join(here, "hf_held_out.py"), out, test, "65536", "128"],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit(r.stdout + r.stderr)
                remember(key, json.loads(r.stdout.splitlines()[-1]))
                print(f"{key}: perplexity {results[key]['perplexity']:.2f}", flush=True)


def bench(model, baseline, key):
    """gqa bench decode at batch 1, 16, 64 and context 1024, on copies whose config allows 1024
    positions (the models were trained at 128; the time per token does not depend on the weights)."""
    if key in results:
        return results[key]
    copies = []
    for src in (model, baseline):
        dst = os.path.join(work, "speed", os.path.basename(os.path.normpath(src)) + "-1024")
        if not os.path.exists(dst):
            shutil.copytree(src, dst)
            c = json.load(open(os.path.join(dst, "config.json")))
            c["max_position_embeddings"] = 1024
            json.dump(c, open(os.path.join(dst, "config.json"), "w"), indent=1)
        copies.append(dst)
    out, _ = sh("bench", "decode", copies[0], "--baseline", copies[1], "--batch", "1,16,64", "--context", "1024",
                "--new-tokens", "64", "--repeats", "3", "--threads", threads, "--json")
    return remember(key, [json.loads(line) for line in out.splitlines() if line.startswith("{")])


if os.environ.get("SKIP_SPEED") != "1":
    for budget, kv, g, m, rank, rope in points:
        bench(m, mha, f"speed/mla-kv{kv}-vs-mha")
        bench(g, mha, f"speed/gqa-kv{kv}-vs-mha")
        bench(m, g, f"speed/mla-kv{kv}-vs-gqa-kv{kv}")

# --- the report ---
base = results["mha"]["perplexity"]


def pct(p):
    return f"{100 * (p / base - 1):+.2f}%"


report = [f"Held-out perplexity on test.txt (The War of the Worlds, {results['mha']['tokens']} tokens, windows of "
         f"{results['mha']['context']}, stride {results['mha']['context'] // 2}) of the {heads}-head Llama (d {d}, "
         f"head dim {head_dim}) pretrained by `gqa train` on {pretrain_tokens} tokens; uptraining: {fraction:.0%} of "
         f"those tokens ({int(fraction * pretrain_tokens)}), lr 5e-4, batch 32 x 128; distillation: the MHA model as "
         f"teacher, weight 0.5, T 2. MHA: perplexity {base:.2f}.", "",
         f"| KV bytes vs MHA | model | cached dims per token and layer | step 0 | + {fraction:.0%} | "
         f"+ {fraction:.0%} distilled |",
         "|---|---|---|---|---|---|"]
for budget, kv, g, m, rank, rope in points:
    for name, label, dims in ((f"gqa-svd-kv{kv}", f"GQA svd, {kv} KV head{'s' if kv > 1 else ''}",
                               f"{kv} x (K {head_dim} + V {head_dim}) = {kv * 2 * head_dim}"),
                              (f"mla-kv{kv}", f"MLA, rank {rank} + rotary {rope}", f"{rank} + {rope} = {rank + rope}")):
        cells = [f"{results[name + '/' + s]['perplexity']:.2f} ({pct(results[name + '/' + s]['perplexity'])})"
                 for s in ("step0", "uptrain", "distill")]
        report.append(f"| {budget} | {label} | {dims} | " + " | ".join(cells) + " |")
if splits:
    report += ["", "The same bytes split otherwise between the latent (R) and the rotary key (D), distilled only:", "",
               f"| KV bytes vs MHA | R + D | step 0 | + {fraction:.0%} distilled |", "|---|---|---|---|"]
    for kv in sorted({kv for kv, _ in splits} | {kv for _, kv, *_ in points}, reverse=True):
        budget = next(b for b, k, *_ in points if k == kv)
        ropes = sorted({rope for k, rope in splits if k == kv} | {head_dim})
        for rope in ropes:
            name = f"mla-kv{kv}" if rope == head_dim else f"mla-kv{kv}-rope{rope}"
            cells = [f"{results[name + '/' + st]['perplexity']:.2f} ({pct(results[name + '/' + st]['perplexity'])})"
                     for st in ("step0", "distill")]
            report.append(f"| {budget} | {kv * 2 * head_dim - rope} + {rope} | " + " | ".join(cells) + " |")
if any("deepseek_v3" in k for k in results):
    report += ["", "The MLA models written as deepseek_v3 folders and scored by transformers (same windows):", "",
              "| model | gqa (own format) | deepseek_v3, anchor (kv_lora_rank R + 1) | deepseek_v3, plain (kv_lora_rank R) |",
              "|---|---|---|---|"]
    for budget, kv, g, m, rank, rope in points:
        for stage, label in (("step0", "step 0"), ("distill", f"+ {fraction:.0%} distilled")):
            own = results[f"mla-kv{kv}/{stage}"]["perplexity"]
            a = results.get(f"mla-kv{kv}/{stage}/deepseek_v3-anchor", {}).get("perplexity")
            p = results.get(f"mla-kv{kv}/{stage}/deepseek_v3-plain", {}).get("perplexity")
            fmt = lambda v: "—" if v is None else f"{v:.2f} ({100 * (v / own - 1):+.2f}% vs own)"  # noqa: E731
            report.append(f"| MLA {budget}, {label} | {own:.2f} | {fmt(a)} | {fmt(p)} |")
speed = {k: v for k, v in results.items() if k.startswith("speed/")}
if speed:
    report += ["", "CPU decode time per token (ms per decode step, fastest of 3 repeats; context 1024 = 960-token "
              "prompt + 64 decode steps; each pair measured in the same run):", "",
              "| pair | batch | model ms/step | baseline ms/step | speedup | KV bytes/token model : baseline |",
              "|---|---|---|---|---|---|"]
    for key, rows in speed.items():
        for r in rows:
            report.append(f"| {key[len('speed/'):]} | {r['batch']} | {r['ms_per_step_min']:.3f} | "
                         f"{r['baseline_ms_per_step_min']:.3f} | {r['baseline_ms_per_step_min'] / r['ms_per_step_min']:.2f}x | "
                         f"{r['kv_bytes_per_token']} : {r['baseline_kv_bytes_per_token']} |")
# The chart: perplexity after uptraining against KV bytes per token (fraction of MHA's), both
# targets, with and without distillation; MHA at 1.
chart = os.path.join(os.path.dirname(os.path.abspath(out_md)), "quality_vs_kv_bytes.svg")
series = []
for target, label in (("gqa-svd", "GQA svd"), ("mla", "MLA")):
    for stage, suffix in (("uptrain", f"+ {fraction:.0%}"), ("distill", f"+ {fraction:.0%} distilled")):
        pts = sorted((kv / heads, results[f"{target}-kv{kv}/{stage}"]["perplexity"]) for _, kv, *_ in points)
        series.append((f"{label} {suffix}", pts + [(1.0, base)]))
lines(series, chart, "Held-out perplexity vs KV cache bytes (MHA at 1.0)", "KV bytes per token / MHA's",
      "perplexity (test.txt)", xfmt=".2f")
report.append(f"\n![perplexity vs KV bytes]({os.path.basename(chart)})")
open(out_md, "w").write("\n".join(report) + "\n")
print(open(out_md).read())
