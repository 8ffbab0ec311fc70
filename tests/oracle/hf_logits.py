#!/usr/bin/env python3
"""Loads a model folder with vanilla transformers (offline) and writes its logits for the inputs of
a parity reference file: the check that converted folders load in transformers unchanged.

usage: hf_logits.py MODEL_DIR REFERENCE.safetensors OUT.safetensors
"""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import torch  # noqa: E402
import transformers as T  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

model_dir, ref_path, out_path = sys.argv[1:4]
ref = load_file(ref_path)
cfg = T.AutoConfig.from_pretrained(model_dir)
with torch.no_grad():
    if cfg.model_type == "t5":
        m = T.T5ForConditionalGeneration.from_pretrained(model_dir).eval()
        logits = m(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"],
                   decoder_input_ids=ref["decoder_input_ids"]).logits
    else:
        m = T.AutoModelForCausalLM.from_pretrained(model_dir).eval()
        logits = m(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"],
                   position_ids=ref["position_ids"]).logits
save_file({"logits": logits.float().contiguous()}, out_path)
