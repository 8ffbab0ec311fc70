#!/usr/bin/env python3
"""The catalogue of bad inputs (issue #8): crafts each one from a small real model folder, runs
`gqa` on it, and checks the contract every one must meet: exit code 2, exactly one line on stderr
naming the file or option at fault, no traceback or signal, nothing left in the output folder.
Writes the table of what gqa said to a markdown file (docs/robustness.md embeds it).

usage: catalogue.py GQA_BINARY ORACLE_DIR OUT_MD
(ORACLE_DIR: the folders tests/oracle/make_models.py writes; llama_mha and t5_v11 are used.)
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

gqa, oracle, out_md = sys.argv[1:4]
work = tempfile.mkdtemp(prefix="gqa-catalogue-")
SRC = os.path.join(oracle, "llama_mha")


def model(name, edit_config=None, edit_file=None, drop=()):
    """A copy of llama_mha with config.json or model.safetensors changed."""
    d = os.path.join(work, name)
    os.makedirs(d)
    for f in ("config.json", "model.safetensors", "generation_config.json"):
        if f not in drop and os.path.exists(os.path.join(SRC, f)):
            shutil.copy(os.path.join(SRC, f), d)
    if edit_config:
        cfg = json.load(open(os.path.join(d, "config.json")))
        edit_config(cfg)
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    if edit_file:
        path = os.path.join(d, "model.safetensors")
        data = bytearray(open(path, "rb").read())
        data = edit_file(data)
        open(path, "wb").write(bytes(data))
    return d


def header(data):
    n = struct.unpack("<Q", bytes(data[:8]))[0]
    return json.loads(bytes(data[8:8 + n])), n


def with_header(data, h):
    """Re-encode the header (padded to 8 bytes) in front of the same tensor bytes."""
    _, n = header(data)
    raw = json.dumps(h).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    return bytearray(struct.pack("<Q", len(raw)) + raw + bytes(data[8 + n:]))


def edit_tensor(name, fn):
    def edit(data):
        h, _ = header(data)
        fn(h[name])
        return with_header(data, h)
    return edit


def text(name, content, binary=False):
    path = os.path.join(work, name)
    open(path, "wb" if binary else "w").write(content)
    return path


def nan_weight(data):
    h, n = header(data)
    start = 8 + n + h["model.layers.1.self_attn.k_proj.weight"]["data_offsets"][0]
    data[start + 4 * 7:start + 4 * 8] = struct.pack("<f", float("nan"))
    return data


K = "model.layers.0.self_attn.k_proj.weight"
BPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "assets", "bpe4096")
SHAPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "demo", "gpt-mha.json")
TRAIN = ["train", os.path.join(work, "out"), "--config", SHAPE, "--tokenizer", BPE, "--steps", "2", "--data"]
cfgjunk = model("cfgjunk")
open(os.path.join(cfgjunk, "config.json"), "w").write('{"model_type": "llama", "hidden_size": ')
deepcfg = model("deepcfg")
open(os.path.join(deepcfg, "config.json"), "w").write("[" * 100000 + "]" * 100000)
out = os.path.join(work, "out")
tokens_bin = text("ids.bin", struct.pack("<4H", 1, 2, 3, 400) * 200, binary=True)
good_bin = text("good.bin", struct.pack("<4H", 1, 2, 3, 4) * 400, binary=True)
empty = text("empty.txt", "")
no_field = text("nofield.jsonl", '{"text": "fine"}\n{"body": "no text field"}\n')
not_json = text("notjson.jsonl", '{"text": "fine"}\n{"text": \n')
tok_dir = os.path.join(work, "badtok")
os.makedirs(tok_dir)
shutil.copy(os.path.join(SRC, "config.json"), tok_dir)
shutil.copy(os.path.join(SRC, "model.safetensors"), tok_dir)
open(os.path.join(tok_dir, "tokenizer.json"), "w").write('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b c d"]}')
unigram_dir = os.path.join(work, "unigramtok")  # tokenizer.json (Unigram) without spiece.model, run as written
os.makedirs(unigram_dir)
shutil.copy(os.path.join(SRC, "config.json"), unigram_dir)
shutil.copy(os.path.join(SRC, "model.safetensors"), unigram_dir)
json.dump({"normalizer": {"type": "Lowercase"},
           "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["\u2581hi", -1.0]]}},
          open(os.path.join(unigram_dir, "tokenizer.json"), "w"))
json.dump({"tokenizer_class": "PreTrainedTokenizerFast"}, open(os.path.join(unigram_dir, "tokenizer_config.json"), "w"))
resumable = os.path.join(work, "resumable")
subprocess.run([gqa, "uptrain", SRC, resumable, "--data", good_bin, "--seq-len", "16", "--batch-size", "2",
                "--steps", "2", "--threads", "1", "--quiet"], check=True, capture_output=True)

# (what is wrong, argv, words the one line must contain, gtest that also checks it)
CASES = [
    ("model folder missing", ["inspect", os.path.join(work, "nowhere")], ["nowhere"], "cli.BadInput.MissingFolderAndFile"),
    ("no config.json", ["inspect", model("noconfig", drop=("config.json",))], ["config.json"], "io.CheckpointBad.FolderAndConfig"),
    ("config.json is not JSON", ["inspect", cfgjunk], ["config.json"], "io.CheckpointBad.FolderAndConfig"),
    ("unknown model_type", ["inspect", model("mt", lambda c: c.update(model_type="mamba"))], ["model_type", "mamba"], "cli.BadInput.ConfigFields"),
    ("heads do not divide the width", ["inspect", model("heads", lambda c: c.update(num_attention_heads=5))], ["num_attention_heads"], "cli.BadInput.ConfigFields"),
    ("negative layer count", ["inspect", model("layers", lambda c: c.update(num_hidden_layers=-2))], ["num_hidden_layers"], "io.Config.*"),
    ("config.json nested 100,000 deep", ["inspect", deepcfg], ["config.json"], "fuzz_config"),
    ("truncated safetensors", ["inspect", model("trunc", edit_file=lambda d: d[:len(d) // 2])], ["model.safetensors"], "cli.BadInput.TruncatedSafetensors"),
    ("header length larger than the file", ["inspect", model("hlen", edit_file=lambda d: bytearray(struct.pack("<Q", 1 << 40)) + d[8:])],
     ["model.safetensors", "header"], "cli.BadInput.HeaderLengthLargerThanFile"),
    ("header is not JSON", ["inspect", model("hjson", edit_file=lambda d: d[:8] + b"{" * 8 + d[16:])], ["model.safetensors"], "io.Safetensors.*, fuzz_safetensors"),
    ("overlapping data_offsets", ["inspect", model("overlap", edit_file=edit_tensor(K, lambda t: t.update(
        data_offsets=[t["data_offsets"][0] - 8, t["data_offsets"][1] - 8])))], ["model.safetensors"], "cli.BadInput.CraftedHeaders"),
    ("offsets past the end of the file", ["inspect", model("past", edit_file=edit_tensor(K, lambda t: t.update(
        data_offsets=[t["data_offsets"][0], t["data_offsets"][1] + (1 << 30)])))], ["model.safetensors"], "cli.BadInput.CraftedHeaders"),
    ("unknown dtype", ["inspect", model("dtype", edit_file=edit_tensor(K, lambda t: t.update(dtype="Q4")))], ["model.safetensors", "Q4"], "cli.BadInput.CraftedHeaders"),
    ("integer weights where floats belong", ["convert", model("intw", edit_file=edit_tensor(K, lambda t: t.update(dtype="I32"))), out, "--kv-heads", "2"],
     ["I32"], "io.LoadRole.BaseModelNamesDtypesAndRanks"),
    ("tensor shape disagrees with config.json", ["convert", model("shape", lambda c: c.update(num_key_value_heads=2)), out, "--kv-heads", "1"],
     ["k_proj", "config.json"], "cli.BadInput.TensorShapeDisagreesWithConfig"),
    ("NaN in a weight", ["convert", model("nan", edit_file=nan_weight), out, "--kv-heads", "2"],
     ["model.layers.1.self_attn.k_proj.weight", "NaN", "row 0, column 7"], "io.LoadRole.NonFiniteWeightNamesTensorAndElement"),
    ("pickle-only checkpoint", ["inspect", model("pickle", drop=("model.safetensors",))], ["safetensors"], "io.CheckpointBad.NoWeightsOrPickleOnly"),
    ("bad group map (too few entries)", ["convert", SRC, out, "--group-map", "0,0,1"], ["--group-map"], "cli.ConvertBadInput.OneLineExitTwoNoOutput"),
    ("bad group map (a KV head without queries)", ["convert", SRC, out, "--group-map", "0,0,2,2"], ["--group-map", "KV head 1"], "cli.ConvertBadInput.OneLineExitTwoNoOutput"),
    ("KV heads do not divide the query heads", ["convert", SRC, out, "--kv-heads", "3"], ["--kv-heads"], "cli.ConvertBadInput.OneLineExitTwoNoOutput"),
    ("unknown strategy", ["convert", SRC, out, "--kv-heads", "2", "--strategy", "best"], ["--strategy", "best"], "cli.ConvertBadInput.OneLineExitTwoNoOutput"),
    ("missing tokenizer", ["generate", SRC, "--prompt", "hi"], ["tokenizer"], "cli.BadInput.MissingTokenizer"),
    ("malformed tokenizer.json merge", ["generate", tok_dir, "--prompt", "hi"], ["tokenizer.json"], "fuzz_tokenizer_json"),
    ("Unigram tokenizer.json step gqa does not model", ["generate", unigram_dir, "--prompt", "hi"],
     ["tokenizer.json", "normalizer", "Lowercase"], "tokenizers.UnigramJson.RunAsWrittenRefusesStepsOtherThanT5s"),
    ("empty data file", TRAIN + [empty], ["empty.txt"], "uptrain.data.DataTest.EmptyAndMissingInputsAreErrors"),
    ("JSONL record without its field", TRAIN + [no_field],
     ["nofield.jsonl:2", "text", "missing"], "uptrain.data.DataTest.BadJsonlLinesAreNamedByFileAndLine"),
    ("JSONL line that is not JSON", TRAIN + [not_json],
     ["notjson.jsonl:2", "not valid JSON"], "uptrain.data.DataTest.BadJsonlLinesAreNamedByFileAndLine"),
    ("token ids beyond the vocabulary", ["uptrain", SRC, out, "--data", tokens_bin, "--steps", "2", "--seq-len", "16"], ["400", "vocab"], "uptrain.data.DataTest.IdsBeyondTheVocabularyNameFileAndPosition"),
    ("sequence longer than the model's positions", ["uptrain", SRC, out, "--data", good_bin, "--steps", "2", "--seq-len", "4096"], ["--seq-len"], "uptrain.Trainer.BadInputIsOneLineAndExitTwo"),
    ("fraction above 1", ["uptrain", SRC, out, "--data", good_bin, "--fraction", "1.5"], ["--fraction"], "uptrain.Trainer.BadInputIsOneLineAndExitTwo"),
    ("resume with a different lr", ["uptrain", SRC, resumable, "--data", good_bin, "--seq-len", "16", "--batch-size", "2", "--steps", "2",
                                    "--lr", "1", "--resume"], ["lr"], "uptrain.Trainer.ResumeRefusesADifferentConfigAndNaNKeepsTheCheckpoint"),
    ("output folder exists", ["convert", SRC, resumable, "--kv-heads", "2"], ["exists", "--force"], "cli.ConvertBadInput.OneLineExitTwoNoOutput"),
    ("resume with another global batch", ["uptrain", SRC, resumable, "--data", good_bin, "--seq-len", "16", "--batch-size", "2",
     "--grad-accum", "2", "--steps", "2", "--threads", "1", "--quiet", "--resume"], ["run.global_batch"],
     "uptrain.scaling.Sharded.ResumesAfterSigkillOnTheSameOrAnotherProcessCount"),
    ("--plan with a size that does not parse", ["uptrain", SRC, "--plan", "--device-memory", "lots"], ["--device-memory"],
     "uptrain.scaling.Plan.Llama2SevenBillion"),
    ("two uptraining budgets for compare", ["compare", SRC, out, "--data", good_bin, "--fraction", "0.1", "--uptrain-fraction", "0.05"],
     ["--uptrain-fraction", "--fraction"], "catalogue only"),
    ("noisy-timing threshold of 0 for compare", ["compare", SRC, out, "--data", good_bin, "--eval-data", good_bin,
     "--noisy-spread", "0"], ["--noisy-spread"], "catalogue only"),
    ("no timed repeats for compare", ["compare", SRC, out, "--data", good_bin, "--eval-data", good_bin,
     "--speed-repeats", "0"], ["--speed-repeats"], "catalogue only"),
    ("unknown option", ["convert", SRC, out, "--kv-heads", "2", "--colour"], ["colour"], "cli.BadInput.BadOptions"),
]

failures = []
rows = []
for what, argv, words, test in CASES:
    if os.path.exists(out):
        shutil.rmtree(out)
    r = subprocess.run([gqa] + argv, capture_output=True, text=True, timeout=120)
    err = r.stderr
    problems = []
    if r.returncode != 2:
        problems.append(f"exit {r.returncode}")
    if not err.endswith("\n") or err.count("\n") != 1:
        problems.append(f"{err.count(chr(10))} lines on stderr")
    for w in words or []:
        if w not in err:
            problems.append(f"no '{w}'")
    leftovers = [n for n in os.listdir(work) if n.startswith("out")]
    if leftovers:
        problems.append(f"left {leftovers}")
    line = err.strip().replace(work + "/", "").replace(oracle + "/", "")
    if problems:
        failures.append(f"{what}: {'; '.join(problems)}\n  gqa {' '.join(argv)}\n  stderr: {err[:500]}")
    shown_argv = " ".join(a.replace(work + "/", "").replace(oracle + "/", "") for a in argv)
    rows.append(f"| {what} | `gqa {shown_argv[:90]}{'…' if len(shown_argv) > 90 else ''}` | {line.replace('|', '/')} | {r.returncode} | {test} |")

with open(out_md + ".tmp", "w") as f:
    f.write("| bad input | command | what gqa says (stderr, one line) | exit | also checked by |\n|---|---|---|---|---|\n")
    f.write("\n".join(rows) + "\n")
os.replace(out_md + ".tmp", out_md)
shutil.rmtree(work, ignore_errors=True)
print(f"catalogue: {len(CASES)} bad inputs, {len(CASES) - len(failures)} met the contract")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("catalogue: ok")
