#!/usr/bin/env python3
"""Eager PyTorch baseline for bench/train_bench.sh: the same transformers model, batch, optimizer
(AdamW, clipping) and data as `gqa uptrain`, timed per step after warm-up.

usage: train_bench.py MODEL_DIR TOKENS.bin SEQ_LEN BATCH STEPS WARMUP THREADS
prints: tokens_per_s
"""
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers as T  # noqa: E402

model_dir, tokens, seq, batch, steps, warm, threads = sys.argv[1:8]
seq, batch, steps, warm, threads = int(seq), int(batch), int(steps), int(warm), int(threads)
torch.set_num_threads(threads)
ids = torch.from_numpy(np.fromfile(tokens, dtype=np.uint16).astype(np.int64))
n = (len(ids) - 1) // seq
model = T.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="sdpa")
model.train()
params = list(model.parameters())
opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.01},
                         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}], lr=1e-4)
g = torch.Generator().manual_seed(0)
t0 = None
for step in range(steps):
    if step == warm:
        t0 = time.perf_counter()
    idx = torch.randint(0, n, (batch,), generator=g)
    x = torch.stack([ids[i * seq: i * seq + seq + 1] for i in idx.tolist()])
    opt.zero_grad(set_to_none=True)
    logits = model(input_ids=x[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
dt = time.perf_counter() - t0
print(f"{(steps - warm) * batch * seq / dt:.1f}")
