#!/usr/bin/env python3
"""Training oracle: the same full-batch AdamW run as `gqa uptrain` in plain PyTorch + transformers.

usage: train_oracle.py MODEL_DIR TOKENS.bin SEQ_LEN STEPS LR WEIGHT_DECAY WARMUP CLIP OUT.safetensors

Every step uses every window of TOKENS.bin (uint16, windows of SEQ_LEN + 1 ids, stride SEQ_LEN),
so the batch order of the C++ run does not matter. AdamW is torch.optim.AdamW with decay on
matrices only, the lr follows linear warmup then linear decay to 0, gradients are clipped by
global norm. Writes the final weights under transformers' state_dict names.
"""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers as T  # noqa: E402
from safetensors.torch import save_file  # noqa: E402


def main(model_dir, tokens_path, seq_len, steps, lr, wd, warmup, clip, out):
    seq_len, steps, warmup = int(seq_len), int(steps), int(warmup)
    lr, wd, clip = float(lr), float(wd), float(clip)
    torch.set_num_threads(1)
    ids = torch.from_numpy(np.fromfile(tokens_path, dtype=np.uint16).astype(np.int64))
    n = (len(ids) - 1) // seq_len
    windows = torch.stack([ids[i * seq_len: i * seq_len + seq_len + 1] for i in range(n)])
    model = T.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.train()
    params = [p for p in model.parameters()]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": wd},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)

    def lr_at(step):  # 1-based, as uptrain/optimizer.cpp Schedule::at
        if warmup > 0 and step <= warmup:
            return lr * step / warmup
        progress = min(1.0, max(0.0, (step - 1 - warmup) / max(1, steps - warmup)))
        return lr * (1.0 - progress)

    losses = []
    for step in range(1, steps + 1):
        opt.zero_grad()
        logits = model(input_ids=windows[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), windows[:, 1:].reshape(-1))
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.step()
        losses.append(loss.item())
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.model_type == "gpt_neox" and "lm_head.weight" in state:  # save_pretrained's name
        state["embed_out.weight"] = state.pop("lm_head.weight")
    # Tied weights: keep one copy, as save_pretrained does.
    if getattr(model.config, "tie_word_embeddings", False) and "lm_head.weight" in state:
        del state["lm_head.weight"]
    save_file(state, out)
    print("losses: " + " ".join(f"{x:.9g}" for x in losses))


if __name__ == "__main__":
    main(*sys.argv[1:])
