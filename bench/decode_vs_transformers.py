#!/usr/bin/env python3
"""transformers' generate on the same model, batch and lengths as `gqa eval --speed`, for
bench/decode_bench.sh: time per decode step = (time for N new tokens - time for 1) / (N - 1),
median of repeats after a warm-up, greedy, KV cache (static cache when supported).

usage: decode_vs_transformers.py MODEL_DIR BATCHES PROMPT_LEN NEW_TOKENS REPEATS THREADS DEVICE
prints one JSON object per batch size: {"batch": B, "ms_per_step": ms}
"""
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import torch  # noqa: E402
import transformers as T  # noqa: E402

model_dir, batches, prompt_len, new_tokens, repeats, threads, device = sys.argv[1:8]
prompt_len, new_tokens, repeats = int(prompt_len), int(new_tokens), int(repeats)
torch.set_num_threads(int(threads))
model = T.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).to(device).eval()
vocab = model.config.vocab_size
g = torch.Generator().manual_seed(0)


def timed(ids, n, cache):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
    if cache:
        kw["cache_implementation"] = cache
    with torch.no_grad():
        model.generate(ids, attention_mask=torch.ones_like(ids), **kw)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


for b in [int(x) for x in batches.split(",")]:
    ids = torch.randint(0, vocab, (b, prompt_len), generator=g).to(device)
    cache = "static"
    try:
        timed(ids, 2, cache)
    except Exception:  # a model without static-cache support: the default dynamic cache
        cache = None
        timed(ids, 2, cache)
    steps = []
    for _ in range(repeats):
        steps.append((timed(ids, new_tokens, cache) - timed(ids, 1, cache)) / (new_tokens - 1) * 1e3)
    print(json.dumps({"batch": b, "ms_per_step": statistics.median(steps), "cache": cache or "dynamic"}), flush=True)
