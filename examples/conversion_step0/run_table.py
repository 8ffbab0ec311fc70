#!/usr/bin/env python3
"""Step-0 quality of every conversion strategy (no uptraining): held-out perplexity of the
converted model at 1/2, 1/4 and 1/8 of the KV heads, with `gqa convert` then `gqa eval`.

usage: run_table.py GQA_BINARY MODEL_DIR CORPUS_DIR OUT_MD
Calibration text: valid.txt (Persuasion); held-out text: the first 16,384 tokens of test.txt (The
War of the Worlds), scored in windows of the model's training length (gqa_training.seq_len in its
config.json, else 512) with half-window strides.
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

gqa, model, corpus, out_md = sys.argv[1:5]
work = tempfile.mkdtemp(prefix="gqa-step0-")
for name in ("valid", "test"):
    with gzip.open(os.path.join(corpus, f"{name}.txt.gz"), "rt", encoding="utf-8") as f, \
            open(os.path.join(work, f"{name}.txt"), "w", encoding="utf-8") as g:
        g.write(f.read())
cfg = json.load(open(os.path.join(model, "config.json")))
context = cfg.get("gqa_training", {}).get("seq_len", 512)


def held_out(folder):
    r = subprocess.run([gqa, "eval", folder, "--text", os.path.join(work, "test.txt"), "--max-tokens", "16384",
                        "--context", str(context), "--stride", str(context // 2), "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"eval {folder}: {r.stderr}")
    j = json.loads(r.stdout.splitlines()[-1])
    return j["perplexity"], j["bits_per_byte"]


mha = held_out(model)
heads = cfg.get("num_attention_heads") or cfg.get("n_head")
variants = [("mean", []), ("first", []), ("random", ["--seed", "1"]), ("similarity (weights)", []),
            ("similarity (activations)", ["--calib", os.path.join(work, "valid.txt")]),
            ("svd (weights)", []), ("svd (activations)", ["--calib", os.path.join(work, "valid.txt")])]
kv_list = [heads // 2, heads // 4, heads // 8]
rows = []
for label, extra in variants:
    strategy = label.split(" ")[0]
    cells = []
    for kv in kv_list:
        out = os.path.join(work, f"{strategy}-{kv}")
        t0 = time.time()
        r = subprocess.run([gqa, "convert", model, out, "-s", strategy, "--kv-heads", str(kv),
                            "--calib-tokens", "32768", "--force"] + extra, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{label} kv={kv}: {r.stderr}")
        cells.append(held_out(out))
        print(f"{label:26s} kv={kv}: ppl {mha[0]:.1f} -> {cells[-1][0]:.1f} ({time.time() - t0:.0f} s)", flush=True)
        subprocess.run(["rm", "-rf", out])
    rows.append((label, cells))
with open(out_md, "w") as f:
    f.write(f"Held-out perplexity (bits/byte) at step 0, no uptraining, windows of {context} tokens. MHA ({heads} KV heads): "
            f"{mha[0]:.1f} ({mha[1]:.3f}).\n\n")
    f.write("| strategy | " + " | ".join(f"{kv} KV heads (1/{heads // kv})" for kv in kv_list) + " |\n")
    f.write("|---|" + "---|" * len(kv_list) + "\n")
    for label, cells in rows:
        f.write(f"| {label} | " + " | ".join(f"{p:.1f} ({b:.3f})" for p, b in cells) + " |\n")
print(open(out_md).read())
