#!/usr/bin/env python3
"""Writes what Google's rouge-score package gives, for tests/eval/test_rouge.cpp to reproduce.

Usage: rouge_oracle.py OUT.json --corpus DIR --part pairs|stems|tokenizer

Everything is computed with the objects rouge-score itself builds (RougeScorer and the stemmer of
its default tokenizer), so the C++ side is checked against the package, not against a reading of
it. Predictions are built here (first sentence, shuffle, ...) and written out, so the C++ test
only has to score the same strings.

OUT.json holds the keys of the part asked for (one part per test, so each runs only its own):
  pairs:      [{"target", "prediction", "stem": {"rouge1": [p, r, f], "rouge2": ..., "rougeL": ...},
                "nostem": {...}}]: every summary of summ-test.jsonl.gz against several predictions
  tokens:     [{"text", "stem": [...], "nostem": [...]}]: tokenizer outputs for edge cases
  stems:      {word: stem}: every distinct token of valid.txt.gz and summ-test.jsonl.gz plus
              tricky words, through the stemmer rouge-score uses
  codepoints: {"<code point>": [tokens]}: for every code point c outside the surrogates, the
              tokens of "a" + chr(c) + "b" whenever they are not ["a", "b"]
"""
import argparse
import functools
import gzip
import json
import os
import random
import re

from rouge_score import rouge_scorer

ROUGE_TYPES = ["rouge1", "rouge2", "rougeL"]

# Words that take every branch of the NLTK_EXTENSIONS Porter stemmer: the examples of Porter's
# paper step by step, NLTK's irregular forms and extra rules, and degenerate strings.
TRICKY_WORDS = """
caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled sized
hopping tanned falling hissing fizzed failing filing happy sky relational conditional rational
valenci hesitanci digitizer conformabli radicalli differentli vileli analogousli vietnamization
predication operator feudalism decisiveness hopefulness callousness formaliti sensitiviti
sensibiliti triplicate formative formalize electriciti electrical hopeful goodness revival
allowance inference airliner gyroscopic adjustable defensible irritant replacement adjustment
dependent adoption homologou communism activate angulariti homologous effective bowdlerize
probate rate cease controll roll generalization oscillators
sky skies dying lying tying news innings inning outings outing cannings canning howe proceed
exceed succeed dies died flies spied spy fly try enjoy enjoyment generalli beautifulli
carefulli logi geology theology archaeology apology analogies ology
y yy yyy yyyy ys yes syzygy toy toys ay ays eeds bies ied ies sses ss s ing ed eed ying lli alli
fulli ational ee e a i by bye eyed ayed yyed yying ying xing wing owing ion tion sion ation
1990s 123ing 4ever 0ed 2s mp3s h264 x86 aaaa zzzz bbbbing hopeful fullness
""".split() + ["", "y" * 60, "ya" * 30, "ay" * 30, "e" * 20, "l" * 12, "s" * 9]

EDGE_TEXTS = [
    "", " ", "\n\t", "...", "a", "A", "The", "running", "RUNNING Runs ran", "it's 3.14 and 1,000",
    "don't stop-believing", "  leading and trailing  ", "under_score camelCase x86_64",
    "é ß 中文 🤖 e\u0301 n\u0303o", "naïve café résumé Ångström", "İstanbul İİ aİb",
    "\u212aelvin 5\u212a K\u212a", "Ωmega ΣΊΣΥΦΟΣ ﬁle ﬀ", "١٢٣ ４５６ ⁷⁸",
    "\u00a0nbsp\u2009thin\u3000x",
    "zero\u200bwidth\ufeffbom", "emoji: 🤖👍🏽👨‍👩‍👧", "tab\tnew\nline\r\nend",
]


def first_sentence(document):
    return re.split(r"(?<=[.!?])\s+", document.strip())[0]


def predictions_for(index, record):
    """The predictions each summary is scored against, (target, prediction) pairs."""
    summary, document = record["summary"], record["document"]
    words = summary.split()
    random.Random(index).shuffle(words)
    return [
        (summary, summary),
        (summary, first_sentence(document)),
        (summary, " ".join(document.split()[:12])),
        (summary, " ".join(words)),
        (summary, ""),
        (summary, document),
        (document, summary),
        ("", summary),
    ]


def scores(scorer, target, prediction):
    result = scorer.score(target, prediction)
    return {t: [result[t].precision, result[t].recall, result[t].fmeasure] for t in ROUGE_TYPES}


def pairs_part(records, stemming, plain):
    pairs = []
    for index, record in enumerate(records):
        for target, prediction in predictions_for(index, record):
            pairs.append({"target": target, "prediction": prediction,
                          "stem": scores(stemming, target, prediction),
                          "nostem": scores(plain, target, prediction)})
    return {"pairs": pairs}


def stems_part(records, corpus, stemming, plain):
    words = set(TRICKY_WORDS)
    with gzip.open(os.path.join(corpus, "valid.txt.gz"), "rt", encoding="utf-8") as f:
        words.update(plain._tokenizer.tokenize(f.read()))
    for record in records:
        words.update(plain._tokenizer.tokenize(record["document"] + " " + record["summary"]))
    stemmer = stemming._tokenizer._stemmer  # the very object rouge-score stems with
    return {"stems": {w: stemmer.stem(w) for w in sorted(words)}}


def tokenizer_part(stemming, plain):
    tokens = [{"text": t, "stem": stemming._tokenizer.tokenize(t), "nostem": plain._tokenizer.tokenize(t)}
              for t in EDGE_TEXTS]
    # One tokenize call per block of code points; only blocks where something is not plain
    # "a", "b" are redone one code point at a time.
    codepoints = {}
    block = 4096
    for start in range(0, 0x110000, block):
        chars = [chr(c) for c in range(start, start + block) if not 0xD800 <= c <= 0xDFFF]
        if stemming._tokenizer.tokenize(" ".join("a" + ch + "b" for ch in chars)) == ["a", "b"] * len(chars):
            continue
        for ch in chars:
            got = stemming._tokenizer.tokenize("a" + ch + "b")
            if got != ["a", "b"]:
                codepoints[str(ord(ch))] = got
    return {"tokens": tokens, "codepoints": codepoints}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--corpus", required=True, help="folder of scripts/make-corpus.sh's output")
    parser.add_argument("--part", choices=["pairs", "stems", "tokenizer"], required=True)
    args = parser.parse_args()
    corpus = args.corpus

    stemming = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True)
    plain = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=False)
    # stem() is a pure function of the word; memoising it only saves time (most of the run).
    stemmer = stemming._tokenizer._stemmer
    stemmer.stem = functools.lru_cache(maxsize=None)(stemmer.stem)

    with gzip.open(os.path.join(corpus, "summ-test.jsonl.gz"), "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    if args.part == "pairs":
        result = pairs_part(records, stemming, plain)
    elif args.part == "stems":
        result = stems_part(records, corpus, stemming, plain)
    else:
        result = tokenizer_part(stemming, plain)

    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
