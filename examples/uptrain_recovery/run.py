#!/usr/bin/env python3
"""Issue #5's acceptance experiment: does `gqa uptrain` recover MHA quality with 5% of the
pretraining tokens?

1. an MHA Llama pretrained by `gqa train` on the shared corpus (see README.md for the command);
2. `gqa convert --strategy mean --kv-heads H/4`;
3. `gqa uptrain --fraction F` for F in FRACTIONS, on the same training text, lr 5e-4 with 10%
   warmup then linear decay;
4. the control: the MHA model itself uptrained with the same budget (more training helps any
   undertrained model, so the GQA model is also compared with MHA given the same extra tokens);
5. held-out perplexity of everything on test.txt (The War of the Worlds) with `gqa eval`, in
   windows of the training length (128 tokens, stride 64).

usage: run.py GQA_BINARY MHA_MODEL_DIR CORPUS_DIR WORK_DIR OUT_MD [FRACTIONS]
environment: UPTRAIN_LR (default 5e-4), UPTRAIN_ARGS (more `gqa uptrain` options, e.g. a teacher),
CONTROL_FRACTIONS (fractions that also get the MHA control run; default: all), THREADS (default 2)
"""
import json
import os
import sys

gqa, mha, corpus, work, out_md = sys.argv[1:6]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gqa_cli import Gqa  # noqa: E402

sh = Gqa(gqa)
fractions = [float(x) for x in (sys.argv[6] if len(sys.argv) > 6 else "0.01,0.02,0.05,0.1").split(",")]
os.makedirs(work, exist_ok=True)
train, valid, test = (os.path.join(corpus, f"{n}.txt.gz") for n in ("train", "valid", "test"))
cfg = json.load(open(os.path.join(mha, "config.json")))
heads = cfg["num_attention_heads"]
kv = heads // 4
pretrain_tokens = cfg["gqa_training"]["tokens"]
lr = os.environ.get("UPTRAIN_LR", "5e-4")
extra = os.environ.get("UPTRAIN_ARGS", "").split()
control = [float(x) for x in os.environ.get("CONTROL_FRACTIONS", ",".join(map(str, fractions))).split(",") if x]
threads = os.environ.get("THREADS", "2")



def held_out(model):
    return sh.held_out(model, test)


def uptrain(model, out, fraction):
    if not os.path.exists(os.path.join(out, "model", "config.json")):
        sh("uptrain", model, out, "--data", train, "--valid", valid, "--fraction", str(fraction), "--seq-len", "128",
           "--batch-size", "32", "--lr", lr, "--warmup", "-1", "--eval-every", "10", "--eval-sequences", "64",
           "--threads", threads, "--quiet", "--force", *extra)
    curve = [json.loads(l) for l in open(os.path.join(out, "train_log.jsonl"))]
    return os.path.join(out, "model"), [(r["step"], r["loss"]) for r in curve if r["kind"] == "valid"]


converted = os.path.join(work, f"mean-kv{kv}")
if not os.path.exists(converted):
    sh("convert", mha, converted, "--strategy", "mean", "--kv-heads", str(kv))
rows = [("MHA (pretrained)", 0.0, held_out(mha), None), (f"mean {kv} KV heads, step 0", 0.0, held_out(converted), None)]
for f in fractions:
    model, curve = uptrain(converted, os.path.join(work, f"up-gqa-{f}"), f)
    rows.append((f"mean {kv} KV heads + uptrain", f, held_out(model), curve))
    print(f"fraction {f}: GQA {rows[-1][2]['perplexity']:.2f}", flush=True)
    if f in control:
        model, curve = uptrain(mha, os.path.join(work, f"up-mha-{f}"), f)
        rows.append(("MHA + same uptrain (control)", f, held_out(model), curve))
        print(f"fraction {f}: MHA control {rows[-1][2]['perplexity']:.2f}", flush=True)

base = rows[0][2]["perplexity"]
with open(out_md, "w") as fmd:
    fmd.write(f"Held-out perplexity on test.txt (The War of the Worlds, {rows[0][2]['tokens']} tokens, context "
              f"{rows[0][2]['context']}) of a {heads}-head Llama pretrained by `gqa train` on {pretrain_tokens} tokens, "
              f"converted to {kv} KV heads with mean pooling and uptrained with a fraction of those tokens "
              f"(lr {lr}{', ' + ' '.join(extra) if extra else ''}).\n\n")
    fmd.write("| model | uptraining tokens | perplexity | bits/byte | vs pretrained MHA |\n|---|---|---|---|---|\n")
    for name, f, r, _ in rows:
        fmd.write(f"| {name} | {f:.0%} ({int(f * pretrain_tokens)}) | {r['perplexity']:.2f} | {r['bits_per_byte']:.4f} | "
                  f"{100 * (r['perplexity'] / base - 1):+.2f}% |\n")
    fmd.write("\nValidation loss during uptraining (valid.txt, every 10 steps):\n\n")
    for name, f, _, curve in rows:
        if curve:
            fmd.write(f"- {name}, {f:.0%}: " + ", ".join(f"{s}: {l:.3f}" for s, l in curve) + "\n")
print(open(out_md).read())
