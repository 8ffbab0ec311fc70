#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/) from real files.

Usage: .venv/bin/python tests/fuzz/make_corpus.py [--build build] [--corpus ~/.cache/gqa/corpus]

The seeds are checked in (under 1 MB together); this script says where each came from and
rebuilds them. Sources:
  config          config.json files written by transformers for every family (the parity oracle's
                  folders in BUILD/oracle, made by tests/oracle/make_models.py), folders converted by
                  BUILD/cli/gqa (gqa_group_map, gqa_layers, gqa_modules, gqa_weighted, KQV head
                  dims), and the shape JSONs of `gqa train --config` in examples/
  safetensors     files written by transformers (save_pretrained of the tiny GPT-2 that
                  fuzz_safetensors.cpp configures, F32/F16/BF16) and by safetensors.numpy (every
                  dtype, scalars, empty tensors, metadata)
  tokenizer_json  real tokenizer.json files (examples/assets/bpe4096, BUILD/tokenizer_oracle's GPT-2
                  and Llama-3 style ones) cut down to their first ids and the merges among them,
                  joined with their tokenizer_config.json and a text by NUL bytes
  vocab_merges    GPT-2's vocab.json + merges.txt (SHARED/data/gpt2) cut down the same way
  jsonl           (and jsonl_records, a link to it) records of SHARED/data/corpus (summ-*.jsonl.gz pairs, paragraphs of test.txt.gz
                  as {"text": ...})
  cli_values      the option values the README shows
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def compact(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def text_samples(corpus):
    """Short real paragraphs of the held-out corpus."""
    with gzip.open(os.path.join(corpus, "test.txt.gz"), "rt", encoding="utf-8") as f:
        paras = [p.strip() for p in f.read().split("\n\n") if len(p.strip()) > 40]
    return [p[:300] for p in paras[100:1000:150]]


# ------------------------------------------------------------------------------------------------
def configs(build):
    oracle = os.path.join(build, "oracle")
    names = sorted(os.listdir(oracle)) if os.path.isdir(oracle) else []
    for n in names:
        p = os.path.join(oracle, n, "config.json")
        if os.path.isfile(p):
            put("config", "hf-" + n + ".json", open(p, "rb").read())
    gqa = os.path.join(build, "cli", "gqa")
    if os.path.exists(gqa) and names:
        runs = {
            "gqa-t5-modules-layers": ("t5_v10", ["--kv-heads", "2", "--modules", "decoder-self,encoder-self", "--layers", "0"]),
            "gqa-llama-weighted": ("llama_mha", ["--strategy", "weighted", "--kv-heads", "2"]),
            "gqa-llama-kqv": ("llama_mha", ["--kv-heads", "2", "--qk-head-dim", "8", "--v-head-dim", "8"]),
            "gqa-gpt2-groupmap-layers": ("gpt2_h6", ["--group-map", "0,0,0,1,1,2", "--layers", "1"]),
            "gqa-gpt-neo-mqa": ("gpt_neo_h4", ["--mqa"]),
        }
        with tempfile.TemporaryDirectory() as tmp:
            for name, (src, args) in runs.items():
                out = os.path.join(tmp, name)
                r = subprocess.run([gqa, "convert", os.path.join(oracle, src), out] + args,
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    print("make_corpus: gqa convert", src, args, "failed:", r.stderr.strip(), file=sys.stderr)
                    continue
                put("config", name + ".json", open(os.path.join(out, "config.json"), "rb").read())
    else:
        print("make_corpus: no", oracle, "or", gqa, "(build first): only shape seeds for config", file=sys.stderr)
    for rel in ["examples/demo/gpt-mha.json", "examples/uptrain_recovery/llama-mha.json",
                "examples/uptrain_recovery/llama-d192.json"]:
        p = os.path.join(REPO, rel)
        if os.path.isfile(p):
            put("config", "shape-" + os.path.basename(p), open(p, "rb").read())
    # Shapes the README documents, one per family and grouping kind.
    shapes = {
        "shape-t5-groupmap.json": {"family": "t5", "layers": 2, "encoder_layers": 3, "d_model": 64, "heads": 4,
                                   "group_map": [0, 0, 1, 1], "ffn_dim": 128, "vocab_size": 4096,
                                   "activation": "gated-gelu", "pad_token_id": 0, "eos_token_id": 1},
        "shape-gpt-neo-window.json": {"family": "gpt_neo", "layers": 3, "d_model": 64, "heads": 4, "kv_heads": 2,
                                      "window_size": 16, "max_positions": 128, "vocab_size": 4096},
        "shape-llama-kqv.json": {"family": "llama", "layers": 2, "d_model": 96, "heads": 6, "kv_heads": 3,
                                 "head_dim": 16, "qk_head_dim": 8, "v_head_dim": 12, "vocab_size": 4096,
                                 "bos_token_id": 0, "eos_token_id": 0},
        "shape-gpt2-mqa.json": {"family": "gpt2", "layers": 1, "d_model": 32, "heads": 4, "kv_heads": 1,
                                "vocab_size": 300, "max_positions": 64, "activation": "gelu"},
    }
    for name, s in shapes.items():
        put("config", name, json.dumps(s, indent=1))


# ------------------------------------------------------------------------------------------------
def safetensors_seeds():
    import numpy as np
    import torch
    import transformers as T
    from safetensors.numpy import save_file
    # The folder fuzz_safetensors.cpp builds around its input: vocab 16, d 8, 2 heads, 1 layer.
    cfg = T.GPT2Config(vocab_size=16, n_embd=8, n_head=2, n_layer=1, n_positions=8, n_inner=16)
    torch.manual_seed(0)
    model = T.GPT2LMHeadModel(cfg)
    for dtype, tag in [(torch.float32, "f32"), (torch.float16, "f16"), (torch.bfloat16, "bf16")]:
        with tempfile.TemporaryDirectory() as tmp:
            model.to(dtype).save_pretrained(tmp)
            put("safetensors", "gpt2-tiny-" + tag + ".safetensors",
                open(os.path.join(tmp, "model.safetensors"), "rb").read())
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "x.safetensors")
        rng = np.random.default_rng(0)
        tensors = {
            "f64": rng.standard_normal((2, 3)), "f32": rng.standard_normal((3,)).astype(np.float32),
            "f16": rng.standard_normal((2, 2)).astype(np.float16), "i64": np.arange(3, dtype=np.int64),
            "i32": np.array([-1, 7], dtype=np.int32), "i16": np.array([5], dtype=np.int16),
            "i8": np.array([-3, 3], dtype=np.int8), "u8": np.array([255], dtype=np.uint8),
            "bool": np.array([True, False]), "scalar": np.array(1.5, dtype=np.float32),
            "empty": np.zeros((0, 4), dtype=np.float32),
        }
        save_file(tensors, p, metadata={"format": "pt", "note": "fuzz seed"})
        put("safetensors", "all-dtypes.safetensors", open(p, "rb").read())
        save_file({}, p)
        put("safetensors", "empty.safetensors", open(p, "rb").read())


# ------------------------------------------------------------------------------------------------
def trim_bpe(vocab, merges, keep):
    """The first `keep` ids of a BPE vocabulary and the merges whose parts and result stay."""
    v = {t: i for t, i in vocab.items() if i < keep}
    out = []
    for m in merges:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in v and b in v and (a + b) in v:
            out.append(m)
    return v, out


def tokenizer_seeds(build, texts):
    sources = [("bpe4096", os.path.join(REPO, "examples/assets/bpe4096"), 400)]
    for case in ["llama3_bpe", "gpt2_json_strmerges", "gpt2_prefix_json"]:
        d = os.path.join(build, "tokenizer_oracle", case)
        if os.path.isdir(d):
            sources.append((case, d, 350))
        else:
            print("make_corpus: no", d, "(build and run ctest -R tokenizer first)", file=sys.stderr)
    for name, d, keep in sources:
        tj = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
        vocab, merges = trim_bpe(tj["model"]["vocab"], tj["model"]["merges"], keep)
        tj["model"]["vocab"], tj["model"]["merges"] = vocab, merges
        tj["added_tokens"] = tj.get("added_tokens") or []
        tc_path = os.path.join(d, "tokenizer_config.json")
        tc = compact(json.load(open(tc_path, encoding="utf-8"))) if os.path.isfile(tc_path) else ""
        body = compact(tj)
        put("tokenizer_json", name + ".json", body)
        put("tokenizer_json", name + "+config.bin", body + "\0" + tc)
        for i, t in enumerate(texts[:2]):
            put("tokenizer_json", "%s+text%d.bin" % (name, i), body + "\0" + tc + "\0" + t)

    vocab = json.load(open(os.path.join(REPO, "examples/assets/gpt2/vocab.json"), encoding="utf-8"))
    lines = open(os.path.join(REPO, "examples/assets/gpt2/merges.txt"), encoding="utf-8").read().split("\n")
    header, merges = lines[0], [l for l in lines[1:] if l]
    v, m = trim_bpe(vocab, merges, 600)
    v["<|endoftext|>"] = len(v)  # GPT-2 keeps it as the last id
    vj, mt = compact(v), "\n".join([header] + m) + "\n"
    put("vocab_merges", "gpt2.bin", vj + "\0" + mt)
    put("vocab_merges", "gpt2+config.bin", vj + "\0" + mt.replace("\n", "\r\n") + "\0" + compact({
        "add_prefix_space": True, "eos_token": "<|endoftext|>", "pad_token": None,
        "added_tokens_decoder": {str(len(v) - 1): {"content": "<|endoftext|>", "special": True}}}))
    for i, t in enumerate(texts[:2]):
        put("vocab_merges", "gpt2+text%d.bin" % i, vj + "\0" + mt + "\0\0" + t)


# ------------------------------------------------------------------------------------------------
def jsonl_seeds(corpus, texts):
    for split in ["test", "valid"]:
        with gzip.open(os.path.join(corpus, "summ-%s.jsonl.gz" % split), "rt", encoding="utf-8") as f:
            records = [json.loads(l) for l in f.read().splitlines()[:40]]
        for i in range(0, 6, 2):
            lines = []
            for r in records[i * 5:i * 5 + 3]:
                lines.append(json.dumps({"id": r["id"], "document": r["document"][:400],
                                         "summary": r["summary"][:120]}, ensure_ascii=i % 4 == 0))
            put("jsonl", "summ-%s-%d.jsonl" % (split, i), "\n".join(lines) + "\n")
    put("jsonl", "text.jsonl", "\n".join(json.dumps({"text": t}) for t in texts[:3]) + "\n")
    put("jsonl", "text-blank-lines.jsonl", "\n\n" + json.dumps({"text": texts[3]}) + "\r\n  \n" +
        json.dumps({"text": "<|endoftext|>", "document": "a", "summary": "b"}))


def cli_seeds():
    seeds = {
        "group-map": (8, "0,0,0,1,1,1,2,2"), "layers": (6, "0-5,8"), "layers-single": (12, "0-3,6"),
        "modules": (1, "decoder-self,decoder-cross,encoder-self"), "modules-underscore": (1, "decoder_self"),
        "batch-sizes": (1, "1,16,512"), "kv-heads": (8, "8,4,2,1"),
        "strategies": (1, "mean,first,weighted,random-weighted,similarity,svd"),
    }
    for name, (n, text) in seeds.items():
        put("cli_values", name, bytes([n - 1]) + text.encode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    cache = os.environ.get("GQA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gqa")
    ap.add_argument("--corpus", default=os.path.join(cache, "corpus"), help="scripts/make-corpus.sh's output")
    a = ap.parse_args()
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    texts = text_samples(a.corpus)
    configs(a.build)
    safetensors_seeds()
    tokenizer_seeds(a.build, texts)
    jsonl_seeds(a.corpus, texts)
    cli_seeds()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print("make_corpus: %d bytes in %s" % (total, OUT))


if __name__ == "__main__":
    main()
