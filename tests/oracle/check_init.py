#!/usr/bin/env python3
"""Oracle for `gqa train`'s fresh checkpoints (core/init_model.cpp).

usage: check_init.py MODEL_DIR [MODEL_DIR ...]

For each folder: loads it with transformers (T5ForConditionalGeneration or AutoModelForCausalLM),
reports the loading info (missing / unexpected / mismatched keys), num_parameters(), whether a
forward pass gives finite logits, and per stored tensor the mean and std of our values next to
those of the same tensor in a model transformers initialises itself from the same config.json.
Prints one JSON object {dir: report} on its last line.
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers as T  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

torch.set_num_threads(1)


def stats(t):
    t = t.double()
    return {"mean": t.mean().item(), "std": t.std().item() if t.numel() > 1 else 0.0, "numel": t.numel()}


def hf_name(stored):
    """The state-dict name of a stored tensor: transformers 5 renames GPT-NeoX's embed_out on load."""
    return "lm_head." + stored[len("embed_out."):] if stored.startswith("embed_out.") else stored


@torch.no_grad()
def check(d):
    config = T.AutoConfig.from_pretrained(d)
    cls = T.T5ForConditionalGeneration if config.model_type == "t5" else T.AutoModelForCausalLM
    model, info = cls.from_pretrained(d, output_loading_info=True)
    model.eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    if config.model_type == "t5":
        logits = model(input_ids=ids, decoder_input_ids=ids[:, :3], use_cache=False).logits
    else:
        logits = model(input_ids=ids).logits
    torch.manual_seed(0)
    fresh = cls.from_config(config) if cls is T.AutoModelForCausalLM else cls(config)
    hf = fresh.state_dict()
    ours = load_file(os.path.join(d, "model.safetensors"))
    return {
        "missing": sorted(info["missing_keys"]),
        "unexpected": sorted(info["unexpected_keys"]),
        "mismatched": sorted(str(k) for k in info["mismatched_keys"]),
        "num_parameters": model.num_parameters(),
        "logits_finite": bool(torch.isfinite(logits).all()),
        "logits_shape": list(logits.shape),
        "tensors": {n: {"ours": stats(t), "hf": stats(hf[hf_name(n)]) if hf_name(n) in hf else None} for n, t in ours.items()},
    }


def main():
    print(json.dumps({d: check(d) for d in sys.argv[1:]}))


if __name__ == "__main__":
    main()
