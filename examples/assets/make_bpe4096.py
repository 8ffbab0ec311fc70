#!/usr/bin/env python3
"""Trains the project's small byte-level BPE tokenizer (4096 tokens, GPT-2 pre-tokenizer,
<|endoftext|> as EOS) on the shared corpus's train split, so the example models have an embedding
table sized for a CPU. Deterministic for a given corpus; the result is checked in as
examples/assets/bpe4096/tokenizer.json.

usage: make_bpe4096.py CORPUS_DIR OUT_DIR
"""
import gzip
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

corpus, out = sys.argv[1], sys.argv[2]
text = gzip.open(os.path.join(corpus, "train.txt.gz"), "rt", encoding="utf-8").read()
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator([text[i:i + 100000] for i in range(0, len(text), 100000)],
                        trainers.BpeTrainer(vocab_size=4096, special_tokens=["<|endoftext|>"],
                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
os.makedirs(out, exist_ok=True)
tok.save(os.path.join(out, "tokenizer.json"))
with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>",
               "bos_token": "<|endoftext|>", "model_max_length": 1024}, f, indent=2)
print(f"{out}: {tok.get_vocab_size()} tokens")
