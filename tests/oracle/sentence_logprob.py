#!/usr/bin/env python3
"""Oracle for minimal-pair scoring: builds a small random-init transformers model with the
project's BPE tokenizer, saves it (with the tokenizer files) to OUT_DIR, and prints the total
log-probability of each sentence given one context token (BOS/EOS), as JSON.

usage: sentence_logprob.py FAMILY TOKENIZER_DIR OUT_DIR SENTENCES.json
"""
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import torch  # noqa: E402
import transformers as T  # noqa: E402

family, tok_dir, out, sentences_path = sys.argv[1:5]
torch.manual_seed(3)
tok = T.PreTrainedTokenizerFast(tokenizer_file=os.path.join(tok_dir, "tokenizer.json"))
eos = tok.convert_tokens_to_ids("<|endoftext|>")
common = dict(vocab_size=4096, bos_token_id=eos, eos_token_id=eos)
if family == "gpt2":
    model = T.GPT2LMHeadModel(T.GPT2Config(n_embd=64, n_head=4, n_layer=2, n_positions=128, resid_pdrop=0, embd_pdrop=0,
                                           attn_pdrop=0, **common))
else:
    model = T.LlamaForCausalLM(T.LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                                             intermediate_size=128, num_hidden_layers=2, max_position_embeddings=128, **common))
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0, 0.2) if p.dim() > 1 else None
model.eval()
model.save_pretrained(out)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(tok_dir, f), os.path.join(out, f))
result = []
with torch.no_grad():
    for s in json.load(open(sentences_path)):
        ids = tok(s, add_special_tokens=False)["input_ids"]
        x = torch.tensor([[eos] + ids])
        logp = torch.log_softmax(model(x).logits[0, :-1].double(), -1)
        result.append(sum(logp[i, t].item() for i, t in enumerate(ids)))
print(json.dumps(result))
