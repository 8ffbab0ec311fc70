"""Reference token stream for test_data: the documents of a text file (plain or .gz), split as
uptrain/data.h defines them, each encoded whole by transformers' GPT-2 tokenizer and followed by
EOS. Written as little-endian uint32, the layout of the C++ token cache.

usage: tokenize_oracle.py TOKENIZER_DIR TEXT_FILE OUT_FILE
"""
import gzip
import re
import sys
from array import array

from transformers import GPT2Tokenizer


def documents(text):
    # A line that is exactly <|endoftext|> separates documents; newlines around them are dropped.
    for piece in re.split(r"(?m)^<\|endoftext\|>$", text):
        doc = piece.strip("\r\n")
        if doc:
            yield doc


def main():
    tokenizer_dir, text_path, out_path = sys.argv[1:4]
    # A folder with vocab.json + merges.txt, as HF ships GPT-2.
    tokenizer = GPT2Tokenizer.from_pretrained(tokenizer_dir, model_max_length=1 << 40)
    opener = gzip.open if text_path.endswith(".gz") else open
    with opener(text_path, "rb") as f:
        text = f.read().decode("utf-8")
    ids = array("I")
    for doc in documents(text):
        ids.extend(tokenizer(doc, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    if sys.byteorder != "little":
        ids.byteswap()
    with open(out_path, "wb") as f:
        ids.tofile(f)


if __name__ == "__main__":
    main()
