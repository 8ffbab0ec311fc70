#!/usr/bin/env python3
"""Held-out perplexity of a Hugging Face folder scored by transformers, with the windows `gqa eval
--context C --stride C/2 --max-tokens N` uses (eval/perplexity.cpp): the first N + 1 tokens of the
text, windows of C tokens every C/2, each target scored once, by the first window that holds it
with history. Prints one JSON line like gqa eval --json's.

usage: hf_held_out.py MODEL_DIR TEXT(.gz) N C
"""
import gzip
import json
import math
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import torch  # noqa: E402
import transformers as T  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

model_dir, text_path, n, context = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
stride = context // 2
wanted = n + 1
opener = gzip.open if text_path.endswith(".gz") else open
with opener(text_path, "rb") as f:
    text = f.read(wanted * 8).decode("utf-8", errors="ignore")
ids = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json")).encode(text, add_special_tokens=False).ids[:wanted]
model = T.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
nll, scored, up_to, begin = 0.0, 0, 1, 0
with torch.no_grad():
    while up_to < len(ids):
        window = ids[begin:begin + context]
        first = max(up_to, begin + 1)
        logp = model(input_ids=torch.tensor([window])).logits[0].float().log_softmax(-1)
        targets = torch.tensor(ids[first:begin + len(window)])
        rows = torch.arange(first - begin - 1, len(window) - 1)
        nll -= logp[rows, targets].double().sum().item()
        scored += len(targets)
        up_to = begin + len(window)
        begin += stride
print(json.dumps({"perplexity": math.exp(nll / scored), "tokens": scored, "context": context, "model": model_dir}))
