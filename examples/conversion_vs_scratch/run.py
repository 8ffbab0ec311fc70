#!/usr/bin/env python3
"""The GQA paper's central claim, scaled down: the same GQA shape reached by converting a
pretrained MHA model and uptraining it with 5% of the pretraining tokens, against training that
GQA shape from scratch with the same 5% (and, as a ceiling, with the same 100% the MHA model got,
when WORK_DIR/scratch-100 exists from an earlier run; it costs a full pretraining).

usage: run.py GQA_BINARY MHA_MODEL_DIR SHAPE_JSON CORPUS_DIR WORK_DIR OUT_MD [FRACTION]
SHAPE_JSON: the MHA model's `gqa train` shape; the GQA shape is it with kv_heads = heads / 4.
The converted + uptrained model is WORK_DIR/convert-uptrain (mean pooling, lr 5e-4, warmup 5%,
linear decay: the recipe of examples/uptrain_recovery); from scratch uses the pretraining recipe
(lr 1.5e-3, warmup 5%, cosine), since a fresh model needs a pretraining learning rate.
"""
import json
import os
import sys

gqa, mha, shape_path, corpus, work, out_md = sys.argv[1:7]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gqa_cli import Gqa  # noqa: E402
import svg_charts  # noqa: E402

sh = Gqa(gqa)
fraction = float(sys.argv[7]) if len(sys.argv) > 7 else 0.05
os.makedirs(work, exist_ok=True)
train, valid, test = (os.path.join(corpus, f"{n}.txt.gz") for n in ("train", "valid", "test"))
cfg = json.load(open(os.path.join(mha, "config.json")))
pretrain_tokens = cfg["gqa_training"]["tokens"]
shape = json.load(open(shape_path))
shape["kv_heads"] = shape["heads"] // 4
gqa_shape = os.path.join(work, "gqa-shape.json")
json.dump(shape, open(gqa_shape, "w"), indent=1)
tokenizer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "bpe4096")
common = ["--data", train, "--valid", valid, "--seq-len", "128", "--batch-size", "32", "--warmup", "-1",
          "--eval-every", "20", "--eval-sequences", "64", "--threads", os.environ.get("THREADS", "2"), "--quiet", "--force"]



def held_out(model):
    return sh.held_out(model, test)["perplexity"]


def curve(run):
    rows = [json.loads(l) for l in open(os.path.join(run, "train_log.jsonl"))]
    return [(r["step"], r["loss"]) for r in rows if r["kind"] == "valid"]


rows = [("MHA, pretrained (100% of the tokens)", pretrain_tokens, held_out(mha), None)]
converted = os.path.join(work, "mean-kv")
if not os.path.exists(converted):
    sh("convert", mha, converted, "--strategy", "mean", "--kv-heads", str(shape["kv_heads"]))
rows.append(("GQA by conversion, step 0", 0, held_out(converted), None))
up = os.path.join(work, "convert-uptrain")
if not os.path.exists(os.path.join(up, "model", "config.json")):
    sh("uptrain", converted, up, "--fraction", str(fraction), "--lr", "5e-4", *common)
rows.append((f"GQA by conversion + uptraining ({fraction:.0%})", int(fraction * pretrain_tokens),
             held_out(os.path.join(up, "model")), curve(up)))
scratch = os.path.join(work, f"scratch-{round(fraction * 100)}")
if not os.path.exists(os.path.join(scratch, "model", "config.json")):
    sh("train", scratch, "--config", gqa_shape, "--tokenizer", tokenizer, "--tokens", str(int(fraction * pretrain_tokens)),
       "--lr", "1.5e-3", "--decay", "cosine", *common)
rows.append((f"GQA from scratch ({fraction:.0%})", int(fraction * pretrain_tokens), held_out(os.path.join(scratch, "model")),
             curve(scratch)))
full = os.path.join(work, "scratch-100", "model")
if os.path.exists(os.path.join(full, "config.json")):
    rows.append(("GQA from scratch (100%, ceiling)", pretrain_tokens, held_out(full), None))

base = rows[0][2]
with open(out_md + ".tmp", "w") as f:
    f.write(f"Held-out perplexity on test.txt (65,536 tokens, windows of 128, stride 64). Pretraining: {pretrain_tokens} "
            f"tokens; GQA shape: {shape['heads']} query heads, {shape['kv_heads']} KV heads.\n\n")
    f.write("| model | training tokens | perplexity | vs MHA |\n|---|---|---|---|\n")
    for name, tokens, ppl, _ in rows:
        f.write(f"| {name} | {tokens:,} | {ppl:.2f} | {100 * (ppl / base - 1):+.1f}% |\n")
    f.write("\nValidation loss (valid.txt) during training:\n\n")
    for name, _, _, c in rows:
        if c:
            f.write(f"- {name}: " + ", ".join(f"{s}: {l:.3f}" for s, l in c) + "\n")
    f.write("\nChart: valid-loss.svg.\n")
os.replace(out_md + ".tmp", out_md)
tokens_per_step = 32 * 128
svg_charts.lines([(name, [(s * tokens_per_step / 1e3, l) for s, l in c]) for name, _, _, c in rows if c],
                 os.path.join(os.path.dirname(os.path.abspath(out_md)), "valid-loss.svg"),
                 "Same GQA shape, same tokens: converted + uptrained vs from scratch",
                 "training tokens (thousands)", "validation loss (valid.txt)")
print(open(out_md).read())
