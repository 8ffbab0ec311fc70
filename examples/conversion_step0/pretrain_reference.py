#!/usr/bin/env python3
"""Pretrains a small MHA model on the shared corpus with plain PyTorch + transformers, so the
converter has a real (not random) model to be measured on before `gqa train` exists (issue #5
replaces this script). Offline; CPU is enough.

- tokenizer: byte-level BPE with 4096 tokens trained on train.txt (GPT-2 pre-tokenizer), saved as
  tokenizer.json so `gqa` reads it like any Hugging Face folder;
- model: Llama (RoPE) or GPT-2 (learned positions), d 256, 8 heads x 32, 4 layers;
- data: train.txt packed into 128-token sequences, AdamW (lr 1e-3, warmup 100, cosine), batch 32.

usage: pretrain_reference.py CORPUS_DIR OUTDIR --family llama|gpt2 [--steps 1500]
"""
import argparse
import gzip
import json
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import torch  # noqa: E402
import transformers as T  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("corpus")
ap.add_argument("out")
ap.add_argument("--family", default="llama", choices=["llama", "gpt2"])
ap.add_argument("--steps", type=int, default=1500)
ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--batch", type=int, default=32)
args = ap.parse_args()
torch.manual_seed(0)
torch.set_num_threads(os.cpu_count() or 2)

text = gzip.open(os.path.join(args.corpus, "train.txt.gz"), "rt", encoding="utf-8").read()
tok_path = os.path.join(args.out, "tokenizer.json")
os.makedirs(args.out, exist_ok=True)
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator([text[i:i + 100000] for i in range(0, len(text), 100000)],
                        trainers.BpeTrainer(vocab_size=4096, special_tokens=["<|endoftext|>"],
                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
tok.save(tok_path)
eos = tok.token_to_id("<|endoftext|>")
ids = torch.tensor(tok.encode(text).ids, dtype=torch.long)
print(f"corpus: {len(text)} bytes -> {len(ids)} tokens ({len(text) / len(ids):.2f} bytes/token)", flush=True)

common = dict(vocab_size=tok.get_vocab_size(), bos_token_id=eos, eos_token_id=eos)
if args.family == "llama":
    cfg = T.LlamaConfig(hidden_size=256, num_attention_heads=8, num_key_value_heads=8, intermediate_size=688,
                        num_hidden_layers=4, max_position_embeddings=512, tie_word_embeddings=True, **common)
    model = T.LlamaForCausalLM(cfg)
else:
    cfg = T.GPT2Config(n_embd=256, n_head=8, n_layer=4, n_positions=512, n_inner=1024, resid_pdrop=0,
                       embd_pdrop=0, attn_pdrop=0, **common)
    model = T.GPT2LMHeadModel(cfg)
model.train()
n_params = sum(p.numel() for p in model.parameters())
decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.95))
warmup = 100
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
g = torch.Generator().manual_seed(1)
start = time.time()
for step in range(args.steps):
    offs = torch.randint(0, len(ids) - args.seq - 1, (args.batch,), generator=g)
    x = torch.stack([ids[o:o + args.seq] for o in offs])
    loss = model(input_ids=x, labels=x).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    if step % 100 == 0 or step == args.steps - 1:
        el = time.time() - start
        print(f"step {step}/{args.steps} loss {loss.item():.3f} lr {sched.get_last_lr()[0]:.2e} "
              f"{(step + 1) * args.batch * args.seq / el:.0f} tok/s", flush=True)
model.eval()
model.save_pretrained(args.out, safe_serialization=True)
tokens_seen = args.steps * args.batch * args.seq
meta = {"pretrain_tokens": tokens_seen, "steps": args.steps, "batch": args.batch, "seq": args.seq,
        "parameters": n_params, "final_loss": loss.item(), "trainer": "examples/conversion_step0/pretrain_reference.py"}
json.dump(meta, open(os.path.join(args.out, "training.json"), "w"), indent=2)
print(f"saved {args.out}: {n_params:,} parameters, {tokens_seen:,} tokens seen, {time.time() - start:.0f} s")
