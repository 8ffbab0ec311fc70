#!/usr/bin/env python3
"""The WGQA paper (seed 002), scaled down to this machine: a small T5 pretrained by `gqa train` on
the shared corpus (plain text; for T5 the trainer uses a prefix-LM objective: the encoder reads the
first half of each 128-token window, the decoder predicts the second half), then converted in the
decoder's self- and cross-attention and fine-tuned on the shared summarization pairs (Debian long
description -> synopsis) with the same budget for every variant, MHA included:

  MHA, MQA (mean, 1 KV head), GQA (mean), WGQA (weighted), RandWGQA (random-weighted),
  SimGQA once (similarity grouping at conversion), SimGQA every R1 / R2 steps (weighted blocks
  regrouped by similarity during fine-tuning; the paper's every 200 / 1000 of a longer run,
  scaled to this run's length)

ROUGE-1/2/L F (rouge-score's tokenisation + Porter stemmer, equal to it; see tests/eval) of greedy
summaries of summ-test, and the distribution of the learned WGQA scalars (the paper saw a mode
near 0.2 rather than the 0.5 of mean pooling).

usage: run.py GQA_BINARY CORPUS_DIR WORK_DIR OUT_DIR [PRETRAIN_STEPS] [FINETUNE_STEPS]
writes OUT_DIR/results.md and OUT_DIR/wgqa-scalars.svg
"""
import json
import os
import struct
import sys

gqa, corpus, work, out_dir = sys.argv[1:5]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gqa_cli import Gqa  # noqa: E402
import svg_charts  # noqa: E402

sh = Gqa(gqa)
pretrain_steps = int(sys.argv[5]) if len(sys.argv) > 5 else 600
finetune_steps = int(sys.argv[6]) if len(sys.argv) > 6 else 400
regroup = (finetune_steps // 8, finetune_steps // 2)  # 200 and 1000 of the paper's longer run, scaled
KV = 4  # groups of 2 query heads, as the paper: mean pooling gives each scalar 0.5
os.makedirs(work, exist_ok=True)
os.makedirs(out_dir, exist_ok=True)
here = os.path.dirname(os.path.abspath(__file__))
tokenizer = os.path.join(here, "..", "assets", "bpe4096")
threads = os.environ.get("THREADS", "2")
shape = {"family": "t5", "layers": 2, "encoder_layers": 2, "d_model": 128, "heads": 8, "ffn_dim": 512,
         "vocab_size": 4096}



def done(run):
    return os.path.exists(os.path.join(run, "model", "config.json"))


shape_path = os.path.join(work, "t5.json")
json.dump(shape, open(shape_path, "w"))
pre = os.path.join(work, "pretrain")
if not done(pre):
    _, s = sh("train", pre, "--config", shape_path, "--tokenizer", tokenizer, "--data", os.path.join(corpus, "train.txt.gz"),
              "--valid", os.path.join(corpus, "valid.txt.gz"), "--seq-len", "128", "--batch-size", "16", "--steps",
              str(pretrain_steps), "--lr", "2e-3", "--warmup", "-1", "--decay", "cosine", "--threads", threads, "--quiet", "--force")
    print(f"pretrained in {s:.0f} s", flush=True)
mha = os.path.join(pre, "model")

# (name, convert arguments or None for MHA, extra fine-tuning arguments)
calib = ["--calib", os.path.join(corpus, "valid.txt.gz")]
variants = [
    ("MHA", None, []),
    ("MQA (mean)", ["--strategy", "mean", "--mqa"], []),
    ("GQA (mean)", ["--strategy", "mean", "--kv-heads", str(KV)], []),
    ("WGQA", ["--strategy", "weighted", "--kv-heads", str(KV)], []),
    ("RandWGQA", ["--strategy", "random-weighted", "--kv-heads", str(KV)], []),
    ("SimGQA once", ["--strategy", "similarity", "--kv-heads", str(KV), *calib], []),
    (f"SimGQA every {regroup[0]}", ["--strategy", "weighted", "--kv-heads", str(KV)], ["--regroup-every", str(regroup[0])]),
    (f"SimGQA every {regroup[1]}", ["--strategy", "weighted", "--kv-heads", str(KV)], ["--regroup-every", str(regroup[1])]),
]
finetune = ["--data", os.path.join(corpus, "summ-train.jsonl.gz"), "--valid", os.path.join(corpus, "summ-valid.jsonl.gz"),
            "--max-source-len", "256", "--max-target-len", "48", "--batch-size", "16", "--steps", str(finetune_steps),
            "--lr", "1e-3", "--warmup", "-1", "--decay", "linear", "--eval-every", str(max(1, finetune_steps // 8)),
            "--eval-sequences", "128", "--threads", threads, "--quiet", "--force"]
rows = []
for name, conv, extra in variants:
    tag = name.lower().replace(" ", "-").replace("(", "").replace(")", "")
    start = mha
    if conv:
        start = os.path.join(work, "convert-" + tag)
        if not os.path.exists(os.path.join(start, "config.json")):
            sh("convert", mha, start, "--modules", "decoder-self,decoder-cross", *conv)
    run = os.path.join(work, "ft-" + tag)
    if not done(run):
        _, s = sh("uptrain", start, run, *finetune, *extra)
        print(f"{name}: fine-tuned in {s:.0f} s", flush=True)
    out, _ = sh("eval", os.path.join(run, "model"), "--summaries", os.path.join(corpus, "summ-test.jsonl.gz"),
                "--summary-examples", "200", "--summary-tokens", "48", "--json")
    rouge = [json.loads(l) for l in out.splitlines() if l.startswith("{") and "rouge1" in l][0]
    valid = [json.loads(l) for l in open(os.path.join(run, "train_log.jsonl")) if '"valid"' in l]
    rows.append((name, rouge, valid[-1]["loss"] if valid else float("nan"), run))
    print(name, {k: rouge[k] for k in rouge if k.startswith("rouge")}, flush=True)


def scalars(folder):
    """Every WGQA scalar (gqa_k_scale / gqa_v_scale tensors) of a weighted model folder."""
    values = []
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".safetensors"):
            continue
        data = open(os.path.join(folder, f), "rb").read()
        n = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8:8 + n])
        for name, t in header.items():
            if name != "__metadata__" and "gqa_" in name and "_scale" in name:
                a, b = t["data_offsets"]
                values += list(struct.unpack(f"<{(b - a) // 4}f", data[8 + n + a:8 + n + b]))
    return values


wgqa_scalars = scalars(os.path.join(work, "ft-wgqa", "model-weighted"))
svg_charts.histogram(wgqa_scalars, os.path.join(out_dir, "wgqa-scalars.svg"), "WGQA scalars after fine-tuning (decoder self + cross)",
                     KV / shape["heads"], f"mean pooling ({KV / shape['heads']:g})", xlabel="scalar value")
wgqa_scalars.sort()
n = len(wgqa_scalars)
quant = {q: wgqa_scalars[min(n - 1, int(q * n))] for q in (0.1, 0.25, 0.5, 0.75, 0.9)} if n else {}
bins = {}
for v in wgqa_scalars:
    bins[round(v, 1)] = bins.get(round(v, 1), 0) + 1
mode = max(bins, key=bins.get) if bins else float("nan")

pre_cfg = json.load(open(os.path.join(mha, "config.json")))
with open(os.path.join(out_dir, "results.md.tmp"), "w") as f:
    f.write(f"T5 (2+2 layers, d 128, 8 heads, FFN 512, the project's 4096-token BPE) pretrained by `gqa train` on train.txt "
            f"with the prefix-LM objective for {pretrain_steps} steps ({pre_cfg['gqa_training']['tokens']:,} tokens); every variant "
            f"then fine-tuned on summ-train for {finetune_steps} steps of 16 pairs (source <= 256, summary <= 48 tokens), lr 1e-3, "
            f"5% warmup, linear decay. Converted modules: decoder self- and cross-attention, {KV} KV heads of 8 (MQA: 1). "
            f"ROUGE F-measures (x100) of greedy summaries of the first 200 summ-test records.\n\n")
    f.write("| model | ROUGE-1 | ROUGE-2 | ROUGE-L | final valid loss |\n|---|---|---|---|---|\n")
    for name, r, vl, _ in rows:
        f.write(f"| {name} | {100 * r['rouge1']:.2f} | {100 * r['rouge2']:.2f} | {100 * r['rougeL']:.2f} | {vl:.3f} |\n")
    f.write(f"\nWGQA scalars after fine-tuning: {n} values (one per query head per converted block, K and V); "
            f"deciles 10/25/50/75/90%: " + ", ".join(f"{quant[q]:.3f}" for q in sorted(quant)) +
            f"; most common 0.1-bin: {mode}. Histogram: wgqa-scalars.svg.\n")
os.replace(os.path.join(out_dir, "results.md.tmp"), os.path.join(out_dir, "results.md"))
print(open(os.path.join(out_dir, "results.md")).read())
