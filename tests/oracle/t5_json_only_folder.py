#!/usr/bin/env python3
"""Writes a T5 folder as transformers 5 saves it: a random-init T5ForConditionalGeneration and its
tokenizer as tokenizer.json (Unigram) + tokenizer_config.json, without spiece.model.

Usage: t5_json_only_folder.py OUT_DIR --corpus DIR [--new-tokens N]

The SentencePiece Unigram model is trained here (offline, a few seconds) on a sample of the
corpus, loaded by T5Tokenizer and saved with save_pretrained; the .model file is only a training
by-product and is not kept. The weights are drawn wider than HF's init so that what the model
says depends on its input. Prints, as JSON ({"texts", "generated"}), transformers' greedy
continuation of a few prompts: `gqa generate` must print the same, which it can only do with the
same ids in and the same text out.
"""
import argparse
import gzip
import json
import os
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VOCAB = 384
EXTRA_IDS = 100  # T5's <extra_id_N> sentinels, after the SentencePiece pieces
TEXTS = ["Hello world. The quick brown fox jumps over the lazy dog.",
         "  naïve café, 12½ ﬁles, ＡＢＣ  and\ttabs\n",
         "<extra_id_0> summary: x</s>y",
         "The history of the city begins in the year 1200, when a small market grew by the river."]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--corpus", required=True, help="folder of scripts/make-corpus.sh's output")
    ap.add_argument("--new-tokens", type=int, default=10)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import sentencepiece as spm
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration, T5Tokenizer

    with gzip.open(os.path.join(args.corpus, "valid.txt.gz"), "rt",
                   encoding="utf-8") as f:
        sample = f.read(400_000)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "sample.txt"), "w", encoding="utf-8") as f:
            f.write(sample)
        spm.SentencePieceTrainer.train(
            input=os.path.join(tmp, "sample.txt"), model_prefix=os.path.join(tmp, "spiece"),
            vocab_size=VOCAB - EXTRA_IDS, model_type="unigram", pad_id=0, eos_id=1, unk_id=2,
            bos_id=-1, character_coverage=0.995, minloglevel=2, num_threads=1)
        T5Tokenizer.from_pretrained(tmp, extra_ids=EXTRA_IDS).save_pretrained(args.out_dir)

    torch.manual_seed(23)
    model = T5ForConditionalGeneration(T5Config(
        vocab_size=VOCAB, d_model=64, d_kv=16, num_heads=4, num_layers=2, d_ff=128,
        relative_attention_num_buckets=16, relative_attention_max_distance=32, dropout_rate=0.0,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.5)
    model.save_pretrained(args.out_dir)
    if os.path.exists(os.path.join(args.out_dir, "spiece.model")):
        sys.exit("save_pretrained wrote spiece.model: not the transformers 5 folder this is for")

    tok = AutoTokenizer.from_pretrained(args.out_dir)
    assert len(tok) == VOCAB, len(tok)
    generated = []
    for text in TEXTS:
        with torch.no_grad():
            out = model.generate(**tok([text], return_tensors="pt"), max_new_tokens=args.new_tokens,
                                 do_sample=False, num_beams=1)
        generated.append(tok.decode(out[0], skip_special_tokens=True,
                                    clean_up_tokenization_spaces=False))
    print(json.dumps({"texts": TEXTS, "generated": generated}))


if __name__ == "__main__":
    sys.exit(main())
