#!/usr/bin/env python3
"""Builds tokenizer folders offline and writes the ids Hugging Face produces for them.

Usage: tokenizer_oracle.py OUTDIR --corpus DIR [--gpt2 DIR] [--full-corpus]

The C++ tests (tests/tokenizers/test_tokenizers.cpp) load every folder written here with
gqa::load_tokenizer and must reproduce these ids exactly. Nothing is downloaded: the GPT-2 files
come from examples/assets/gpt2, the other models are trained here in a few seconds on a sample of
the corpus (scripts/make-corpus.sh; the expected ids are always computed from the files written in this run).

Layout of OUTDIR:
  texts.json                 {"texts": [...]}: corpus chunks, random unicode strings, edge cases
  corpus_train.txt           the uncompressed train corpus (for the C++ timing test)
  corpus_train_gpt2_ids.json with --full-corpus: HF's GPT-2 ids of the whole corpus_train.txt
  <case>/...                 a model folder as a user would have it
  <case>/expected.json       {"ids", "ids_special", "decoded", "bos_id", "eos_id", "pad_id",
                              "vocab_size", "class", ["hf_quirk"]}: what transformers 5 gives for
                             each text (add_special_tokens False / True; decode with
                             skip_special_tokens=True, clean_up_tokenization_spaces=False)
  t5_json_only/...           T5 as transformers 5 saves it: tokenizer.json (Unigram), no spiece.model
"""
import argparse
import gzip
import json
import os
import random
import re
import shutil
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

EDGE_CASES = [
    "", " ", "  ", "   ", "\n", "\n\n\n", "\t", "\t\tx", " \t \n ", "a\tb", "a\r\nb", "\r\r\n",
    "Hello world", " Hello world", "Hello  world  ", "trailing ", "  two  spaces  ",
    "12345678", "3.14159 and 1,000,000 and 2024-01-01", "x1y22z333w4444",
    "don't won't they're I'll we've", "DON'T I'M YOU'LL", "'s 're 'd",
    "é ß 中文 🤖 e\u0301 n\u0303o", "naïve café résumé Ångström", "日本語のテキスト、句読点。",
    "emoji: 🤖👍🏽👨‍👩‍👧 🇫🇷", "\u00a0nbsp\u00a0and\u2009thin\u3000ideographic",
    "\u2028line\u2029para\u0085nel",
    "zero\u200bwidth\ufeffbom", "Ελληνικά Русский العربية हिन्दी", "a \u2581b\u2581\u2581c \u2581",
    "<|endoftext|>", "a<|endoftext|>b", "a <|endoftext|> b", "<|endoftext|><|endoftext|>",
    "text<|endoftext|>\n\nmore", "<|endoftext", "<|begin_of_text|>hi", "x <|eot_id|> y",
    "<s>", "<s>hi", "<s> hi", "x</s>y", "x <s> y", "x<s>  y", "<unk>", "<pad>x", "<extra_id_0> hi",
    "a <|mask|> b", "a<|mask|>b", "gqa_custom here", "xgqa_custom",
    "int main() { return 0; }\n\tif (x != y) {\n\t\ty++;\n\t}",
    "$ sudo apt-get install --no-install-recommends foo=1.2.3-4~bpo12+1",
    "https://example.org/path?q=1&r=two#frag", "~/.bashrc && echo $PATH || exit 1",
    "----====****____", "....!!!???", "\"quoted\" 'single' `back`", "(a) [b] {c} <d>",
    "A" * 300, " " * 100, "\n" * 40, "ab" * 200 + " " + "9" * 50,
]

# Characters for random strings: they stress the regex classes (\s, \p{L}, \p{N}), the
# byte-level table and the added-token splitting.
RANDOM_POOL = (list("abcXYZ019 .,;:'\"!?-_()[]{}<>|/\\@#$%^&*+=~`") +
               [" ", " ", "  ", "\n", "\n", "\t", "\r", "\u00a0", "\u2009", "\u3000", "\u0085",
                "\u2028", "\u000b", "\u000c", "é", "ß", "Ω", "ж", "中", "文", "の", "ا", "ह",
                "\u0301", "\u0308", "\u200d", "\ufeff", "🤖", "👍🏽", "🇫🇷", "²", "½", "٣", "Ⅻ",
                "\u2581", "'s", "'LL", "<|endoftext|>", "<s>", "</s>", "<|mask|>", "gqa_custom"])


def read_gz(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read()


def chunks_of(text, rng, count, max_chars):
    """`count` runs of whole paragraphs (up to max_chars) from random places in `text`."""
    paras = text.split("\n\n")
    out = []
    for _ in range(count):
        i = rng.randrange(len(paras))
        piece = paras[i]
        while len(piece) < max_chars and i + 1 < len(paras):
            i += 1
            piece += "\n\n" + paras[i]
        out.append(piece[:max_chars * 2])
    return out


def build_texts(corpus):
    rng = random.Random(20240611)
    valid = read_gz(os.path.join(corpus, "valid.txt.gz"))
    test = read_gz(os.path.join(corpus, "test.txt.gz"))
    train = read_gz(os.path.join(corpus, "train.txt.gz"))
    docs = train.split("\n\n<|endoftext|>\n\n")
    texts = list(EDGE_CASES)
    texts += chunks_of(valid, rng, 25, 3000)
    texts += chunks_of(test, rng, 25, 3000)
    for doc in docs:  # every train document, a bit of each
        texts += chunks_of(doc, rng, 1, 2000)
    # The Jargon File and the Debian Handbook: unusual punctuation, digits, code, markup.
    texts += chunks_of(docs[-2], rng, 40, 3000)
    texts += chunks_of(docs[-1], rng, 40, 3000)
    # A chunk that crosses a document boundary, so <|endoftext|> appears inside running text.
    cut = train.index("\n\n<|endoftext|>\n\n")
    texts.append(train[cut - 500:cut + 500])
    texts += rng.sample(valid.split("\n"), 60)
    for _ in range(300):
        texts.append("".join(rng.choice(RANDOM_POOL) for _ in range(rng.randrange(0, 60))))
    return texts, train, docs


def training_sample(docs, rng):
    """About 1.5 MB of train paragraphs across all documents, for the trainers."""
    lines = []
    for doc in docs:
        paras = doc.split("\n\n")
        for _ in range(max(20, len(paras) // 20)):
            lines.append(paras[rng.randrange(len(paras))])
    return lines


def normalization_quirks(tok, sp, texts):
    """Texts where HF's Precompiled normalizer and sentencepiece's disagree.

    HF applies the charsmap per grapheme cluster and, when only a prefix of the cluster is in the
    map, drops the rest: "\u00bd\u0301" (vulgar half + combining acute) becomes "1\u20442" in
    HF but "1\u20442\u0301" in sentencepiece. Our T5 path normalizes with libsentencepiece, so
    for these texts (mapped character + combining mark, absent from the corpus) ids differ.
    """
    # Rust's char::is_whitespace, where HF's WhitespaceSplit cuts; the C++ side turns those that
    # survive sentencepiece's normalizer into spaces before normalizing.
    rust_ws = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + \
        "".join(map(chr, range(0x2000, 0x200b)))
    surviving = {ord(w): " " for w in rust_ws if w in sp.normalize("a" + w + "a")}
    split_re = re.compile("[" + rust_ws + "\u2581]+")
    out = []
    for i, t in enumerate(texts):
        hf_norm = tok.backend_tokenizer.normalizer.normalize_str(t)
        hf_words = [w for w in split_re.split(hf_norm) if w]
        sp_words = [w for w in sp.normalize(t.translate(surviving)).split("\u2581") if w]
        if hf_words != sp_words:
            out.append(i)
    return out


def write_json(path, obj):
    # json.dumps (C encoder) is several times faster than json.dump (pure Python) on big lists.
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, ensure_ascii=False))


def write_expected(tok, texts, folder, extra=None):
    enc = tok(texts, add_special_tokens=False)["input_ids"]
    enc_sp = tok(texts, add_special_tokens=True)["input_ids"]
    decoded = tok.batch_decode(enc, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    out = {
        "class": type(tok).__name__,
        "ids": enc,
        "ids_special": enc_sp,
        "decoded": decoded,
        "bos_id": tok.bos_token_id,
        "eos_id": tok.eos_token_id,
        "pad_id": tok.pad_token_id,
        "vocab_size": len(tok),
    }
    out.update(extra or {})
    write_json(os.path.join(folder, "expected.json"), out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--corpus", required=True, help="folder of scripts/make-corpus.sh's output")
    ap.add_argument("--gpt2", default=os.path.join(REPO, "examples", "assets", "gpt2"))
    ap.add_argument("--full-corpus", action="store_true",
                    help="also write GPT-2 ids of the whole train corpus (a few seconds more)")
    args = ap.parse_args()

    t0 = time.time()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import sentencepiece as spm
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers,
                            processors, trainers)
    from transformers import AutoTokenizer, GPT2Tokenizer, PreTrainedTokenizerFast

    out = args.outdir
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    texts, train, docs = build_texts(args.corpus)
    write_json(os.path.join(out, "texts.json"), {"texts": texts})
    with open(os.path.join(out, "corpus_train.txt"), "w", encoding="utf-8") as f:
        f.write(train)

    def folder(name):
        p = os.path.join(out, name)
        os.makedirs(p, exist_ok=True)
        return p

    # --- GPT-2 from vocab.json + merges.txt, and the same saved as tokenizer.json -----------
    gpt2_files = folder("gpt2_files")
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(args.gpt2, name), os.path.join(gpt2_files, name))
    gpt2 = GPT2Tokenizer.from_pretrained(gpt2_files)
    write_expected(gpt2, texts, gpt2_files)
    if args.full_corpus:
        # Documents are separated by <|endoftext|>, which HF splits out before the regex, so
        # encoding them one by one gives the ids of the whole file.
        encs = gpt2.backend_tokenizer.encode_batch(train.split("<|endoftext|>"),
                                                   add_special_tokens=False)
        ids = []
        for i, e in enumerate(encs):
            if i:
                ids.append(50256)
            ids += e.ids
        write_json(os.path.join(out, "corpus_train_gpt2_ids.json"), ids)

    gpt2_json = folder("gpt2_json")
    gpt2.save_pretrained(gpt2_json)
    write_expected(AutoTokenizer.from_pretrained(gpt2_json), texts, gpt2_json)

    # Merges as "a b" strings (the older tokenizer.json format) instead of [a, b] pairs.
    gpt2_strmerges = folder("gpt2_json_strmerges")
    with open(os.path.join(gpt2_json, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    tj["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                             for m in tj["model"]["merges"]]
    write_json(os.path.join(gpt2_strmerges, "tokenizer.json"), tj)
    shutil.copy(os.path.join(gpt2_json, "tokenizer_config.json"), gpt2_strmerges)
    write_expected(AutoTokenizer.from_pretrained(gpt2_strmerges), texts, gpt2_strmerges)

    gpt2_prefix = folder("gpt2_prefix_json")
    GPT2Tokenizer.from_pretrained(gpt2_files, add_prefix_space=True).save_pretrained(gpt2_prefix)
    write_expected(AutoTokenizer.from_pretrained(gpt2_prefix), texts, gpt2_prefix)

    # --- Llama-3 style: Split(regex) + ByteLevel(use_regex=False), BOS by TemplateProcessing --
    rng = random.Random(7)
    sample = training_sample(docs, rng)
    sample_path = os.path.join(out, "train_sample.txt")
    with open(sample_path, "w", encoding="utf-8") as f:
        f.write("\n".join(sample))
    tk = Tokenizer(models.BPE(ignore_merges=True))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(sample, trainers.BpeTrainer(
        vocab_size=2000, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                "<|reserved_special_token_1|>", "<|eot_id|>"]
    tk.add_special_tokens(specials)
    # RoBERTa-like mask (eats the space on its left) and a plain added word (single_word).
    tk.add_special_tokens([AddedToken("<|mask|>", lstrip=True, special=True, normalized=False)])
    tk.add_tokens([AddedToken("gqa_custom", single_word=True, normalized=False)])
    bos = tk.token_to_id("<|begin_of_text|>")
    tk.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    llama3 = folder("llama3_bpe")
    PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|begin_of_text|>",
                            eos_token="<|end_of_text|>").save_pretrained(llama3)
    with open(os.path.join(llama3, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "bos_token_id": bos,
                   "eos_token_id": tk.token_to_id("<|end_of_text|>")}, f)
    write_expected(AutoTokenizer.from_pretrained(llama3), texts, llama3)

    # --- SentencePiece: T5-like unigram, Llama-2-like BPE with byte fallback ----------------
    t5 = folder("t5_spm")
    spm.SentencePieceTrainer.train(
        input=sample_path, model_prefix=os.path.join(t5, "spiece"), vocab_size=1000,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
        num_threads=2)
    os.remove(os.path.join(t5, "spiece.vocab"))
    with open(os.path.join(t5, "config.json"), "w") as f:
        json.dump({"model_type": "t5", "vocab_size": 1100}, f)
    t5_tok = AutoTokenizer.from_pretrained(t5)
    t5_sp = spm.SentencePieceProcessor(model_file=os.path.join(t5, "spiece.model"))
    quirks = {"hf_quirk": normalization_quirks(t5_tok, t5_sp, texts)}
    write_expected(t5_tok, texts, t5, quirks)

    # T5 folder as save_pretrained writes it: spiece.model beside a Unigram tokenizer.json.
    t5_json = folder("t5_spm_json")
    t5_tok.save_pretrained(t5_json)
    shutil.copy(os.path.join(t5, "spiece.model"), t5_json)
    shutil.copy(os.path.join(t5, "config.json"), t5_json)
    write_expected(AutoTokenizer.from_pretrained(t5_json), texts, t5_json, quirks)

    # T5 as transformers 5 saves it: a Unigram tokenizer.json and no spiece.model. T5Tokenizer
    # rebuilds its pipeline, taking from the file only the pieces, the charsmap and added tokens.
    t5_only = folder("t5_json_only")
    AutoTokenizer.from_pretrained(t5).save_pretrained(t5_only)
    shutil.copy(os.path.join(t5, "config.json"), t5_only)
    assert not os.path.exists(os.path.join(t5_only, "spiece.model"))
    write_expected(AutoTokenizer.from_pretrained(t5_only), texts, t5_only, quirks)

    # The same file under transformers' generic class, which runs it as written (as it does for
    # the class names transformers 5 no longer has, e.g. MT5Tokenizer).
    t5_backend = folder("t5_json_only_backend")
    shutil.copy(os.path.join(t5_only, "tokenizer.json"), t5_backend)
    with open(os.path.join(t5_only, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    write_json(os.path.join(t5_backend, "tokenizer_config.json"),
               dict(cfg, tokenizer_class="PreTrainedTokenizerFast"))
    write_expected(AutoTokenizer.from_pretrained(t5_backend), texts, t5_backend, quirks)

    # Normalizer steps beside Precompiled (Strip, Replace) and another pre-tokenizer (Metaspace
    # alone), as other SentencePiece converters of transformers write them: T5Tokenizer drops them,
    # so the ids are those of the charsmap alone.
    t5_extra = folder("t5_json_only_extra_steps")
    with open(os.path.join(t5_only, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    tj["normalizer"] = {"type": "Sequence", "normalizers": [
        tj["normalizer"], {"type": "Strip", "strip_left": False, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"}]}
    tj["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                           "split": True}
    write_json(os.path.join(t5_extra, "tokenizer.json"), tj)
    for name in ("tokenizer_config.json", "config.json"):
        shutil.copy(os.path.join(t5_only, name), t5_extra)
    write_expected(AutoTokenizer.from_pretrained(t5_extra), texts, t5_extra, quirks)

    llama2 = folder("llama2_spm")
    spm.SentencePieceTrainer.train(
        input=sample_path, model_prefix=os.path.join(llama2, "tokenizer"), vocab_size=1000,
        model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
        allow_whitespace_only_pieces=True, minloglevel=2, num_threads=2)
    os.remove(os.path.join(llama2, "tokenizer.vocab"))
    with open(os.path.join(llama2, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "bos_token_id": 1, "eos_token_id": 2}, f)
    llama2_cfg = {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True,
                  "add_eos_token": False, "legacy": False, "bos_token": "<s>",
                  "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None}
    with open(os.path.join(llama2, "tokenizer_config.json"), "w") as f:
        json.dump(llama2_cfg, f)
    write_expected(AutoTokenizer.from_pretrained(llama2), texts, llama2)

    # legacy=True: text after a special token gets the "▁" prefix as well.
    llama2_legacy = folder("llama2_spm_legacy")
    shutil.copy(os.path.join(llama2, "tokenizer.model"), llama2_legacy)
    shutil.copy(os.path.join(llama2, "config.json"), llama2_legacy)
    with open(os.path.join(llama2_legacy, "tokenizer_config.json"), "w") as f:
        json.dump(dict(llama2_cfg, legacy=True, add_eos_token=True), f)
    write_expected(AutoTokenizer.from_pretrained(llama2_legacy), texts, llama2_legacy)

    # Llama-2 folders as the hub has them: tokenizer.model beside a tokenizer.json. With
    # tokenizer_class LlamaTokenizer transformers 5 rebuilds the pipeline from the class (the
    # json's pre-tokenizer does not matter); with another class it runs the json as written,
    # here the older Prepend("▁") + Replace(" ", "▁") normalizer form.
    llama2_json = folder("llama2_spm_json")
    llama2_tok = AutoTokenizer.from_pretrained(llama2)
    llama2_tok.save_pretrained(llama2_json)
    shutil.copy(os.path.join(llama2, "tokenizer.model"), llama2_json)
    shutil.copy(os.path.join(llama2, "config.json"), llama2_json)
    write_json(os.path.join(llama2_json, "tokenizer_config.json"), llama2_cfg)
    write_expected(AutoTokenizer.from_pretrained(llama2_json), texts, llama2_json)

    llama2_prepend = folder("llama2_spm_json_prepend")
    with open(os.path.join(llama2_json, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    tj["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    tj["pre_tokenizer"] = None
    write_json(os.path.join(llama2_prepend, "tokenizer.json"), tj)
    shutil.copy(os.path.join(llama2, "tokenizer.model"), llama2_prepend)
    write_json(os.path.join(llama2_prepend, "tokenizer_config.json"),
               dict(llama2_cfg, tokenizer_class="PreTrainedTokenizerFast"))
    write_expected(AutoTokenizer.from_pretrained(llama2_prepend), texts, llama2_prepend)

    os.remove(sample_path)
    print(f"tokenizer_oracle: {len(texts)} texts, {sum(len(t) for t in texts)} chars, "
          f"{time.time() - t0:.1f} s -> {out}")


if __name__ == "__main__":
    sys.exit(main())
