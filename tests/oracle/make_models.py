#!/usr/bin/env python3
"""Parity oracle: builds small random-init Hugging Face models offline (save_pretrained) and the
reference outputs our C++ runtime must reproduce.

usage: make_models.py OUTDIR

For every case OUTDIR/<case>/ is a model folder plus reference.safetensors holding the inputs
(input_ids, attention_mask, position_ids; T5: decoder_input_ids), transformers' logits (and T5's
encoder output) and greedy generate() ids. Several shapes: heads not a power of two, Llama with
num_key_value_heads < num_attention_heads, GPT-Neo local windows shorter than the prompt, T5 v1.0
and v1.1, sharded and bf16/fp16 checkpoints, and "grouped" checkpoints written from MHA models
whose heads agree within each group (uneven groups, reduced head dims) so that transformers'
MHA logits are also the exact answer for our grouped runtime.
"""
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers as T  # noqa: E402
from safetensors.torch import save_file, load_file  # noqa: E402

torch.set_num_threads(1)
VOCAB = 384
GEN_TOKENS = 6


def prompts(seed, lengths, vocab=VOCAB):
    """Left-padded batch of random prompts (ids, mask, HF generate-style position ids)."""
    g = torch.Generator().manual_seed(seed)
    T_ = max(lengths)
    ids = torch.zeros(len(lengths), T_, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, n in enumerate(lengths):
        ids[b, T_ - n:] = torch.randint(3, vocab, (n,), generator=g)
        mask[b, T_ - n:] = 1
    pos = ((mask.cumsum(-1) - 1).clamp(min=0)) * mask
    return ids, mask, pos


def save_case(out, name, model, ref, meta, **save_kw):
    d = os.path.join(out, name)
    model.save_pretrained(d, safe_serialization=True, **save_kw)
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(d, "reference.safetensors"))
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return d


BEAMS = 3
BEAM_TOKENS = 8


def beam_reference(model, gen, prompt_len, **inputs):
    """transformers' beam search (3 beams, length penalty 1, early_stopping False) with an EOS that
    greedy decoding emits (the first prompt's 2nd new token), so beams finish early and late."""
    eos = int(gen[0, 1])
    out = model.generate(**inputs, num_beams=BEAMS, do_sample=False, max_new_tokens=BEAM_TOKENS,
                         eos_token_id=eos, pad_token_id=0, length_penalty=1.0, early_stopping=False)[:, prompt_len:]
    beams = torch.full((out.shape[0], BEAM_TOKENS), -1, dtype=torch.long)
    for b in range(out.shape[0]):  # cut after the first EOS (transformers pads with pad_token_id)
        row = out[b].tolist()
        row = row[:row.index(eos) + 1] if eos in row else row
        beams[b, :len(row)] = torch.tensor(row)
    return {"beam_generated": beams, "beam_eos": torch.tensor([eos])}


@torch.no_grad()
def decoder_reference(model, seed, lengths=(7, 12, 4)):
    ids, mask, pos = prompts(seed, lengths, model.config.vocab_size)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=GEN_TOKENS, do_sample=False,
                         pad_token_id=0, eos_token_id=None)[:, ids.shape[1]:]
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "logits": logits.float(),
            "generated": gen, **beam_reference(model, gen, ids.shape[1], input_ids=ids, attention_mask=mask)}


@torch.no_grad()
def t5_reference(model, seed):
    g = torch.Generator().manual_seed(seed)
    src_len = (9, 5, 13)
    S = max(src_len)
    src = torch.zeros(len(src_len), S, dtype=torch.long)
    src_mask = torch.zeros_like(src)
    for b, n in enumerate(src_len):  # right padding, as T5 tokenizers pad
        src[b, :n] = torch.randint(3, model.config.vocab_size, (n,), generator=g)
        src_mask[b, :n] = 1
    dec = torch.randint(3, model.config.vocab_size, (len(src_len), 8), generator=g)
    dec[:, 0] = model.config.decoder_start_token_id
    enc = model.encoder(input_ids=src, attention_mask=src_mask).last_hidden_state
    logits = model(input_ids=src, attention_mask=src_mask, decoder_input_ids=dec).logits
    gen = model.generate(input_ids=src, attention_mask=src_mask, max_new_tokens=GEN_TOKENS, do_sample=False,
                         eos_token_id=None, min_new_tokens=GEN_TOKENS,
                         use_cache=False)[:, 1:]  # transformers 5.23 sizes its cache by num_layers, not num_decoder_layers
    return {"input_ids": src, "attention_mask": src_mask, "decoder_input_ids": dec, "encoder_output": enc,
            "logits": logits.float(), "generated": gen,
            **beam_reference(model, gen, 1, input_ids=src, attention_mask=src_mask, use_cache=False)}


def build(cls, config, seed):
    torch.manual_seed(seed)
    m = cls(config).eval()
    m.generation_config.pad_token_id = 0
    return m


def widen_init(model, std):
    """Larger random weights than HF's 0.02 so attention is far from uniform and masks matter."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() >= 2 and "norm" not in n and "ln_" not in n:
                p.normal_(0.0, std)


# ---- grouped checkpoints that transformers can still check (through an equivalent MHA model) ----

def tie_heads_to_groups(w_rows, group_of, head_dim):
    """Rows of a [n_heads*head_dim, ...] projection: copy the first head of each group to all."""
    out = w_rows.clone()
    first = {}
    for h, g in enumerate(group_of):
        first.setdefault(g, h)
        out[h * head_dim:(h + 1) * head_dim] = w_rows[first[g] * head_dim:(first[g] + 1) * head_dim]
    return out


def keep_group_heads(w_rows, group_of, head_dim):
    first = {}
    for h, g in enumerate(group_of):
        first.setdefault(g, h)
    return torch.cat([w_rows[first[g] * head_dim:(first[g] + 1) * head_dim] for g in sorted(first)])


def gpt2_grouped(out):
    """GPT-2 with uneven groups [3,3,2] and reduced q/k and v head dims, fused c_attn cut to size."""
    cfg = T.GPT2Config(vocab_size=VOCAB, n_embd=64, n_head=8, n_layer=2, n_positions=64, resid_pdrop=0,
                       embd_pdrop=0, attn_pdrop=0)
    m = build(T.GPT2LMHeadModel, cfg, 21)
    widen_init(m, 0.15)
    group_of = [0, 0, 0, 1, 1, 1, 2, 2]
    hd, dqk, dv = 8, 6, 5
    sd = {}
    with torch.no_grad():
        for blk in m.transformer.h:
            W = blk.attn.c_attn.weight  # Conv1D [in, 3*out]
            Bv = blk.attn.c_attn.bias
            d = cfg.n_embd
            q, k, v = W[:, :d].T.clone(), W[:, d:2 * d].T.clone(), W[:, 2 * d:].T.clone()  # [out, in]
            qb, kb, vb = Bv[:d].clone(), Bv[d:2 * d].clone(), Bv[2 * d:].clone()
            # K/V equal within groups; only the first dqk (v: dv) dims of each head are nonzero
            k, kb = tie_heads_to_groups(k, group_of, hd), tie_heads_to_groups(kb, group_of, hd)
            v, vb = tie_heads_to_groups(v, group_of, hd), tie_heads_to_groups(vb, group_of, hd)
            for h in range(8):
                q[h * hd + dqk:(h + 1) * hd] = 0
                qb[h * hd + dqk:(h + 1) * hd] = 0
                k[h * hd + dqk:(h + 1) * hd] = 0
                kb[h * hd + dqk:(h + 1) * hd] = 0
                v[h * hd + dv:(h + 1) * hd] = 0
                vb[h * hd + dv:(h + 1) * hd] = 0
            blk.attn.c_attn.weight.copy_(torch.cat([q, k, v]).T)
            blk.attn.c_attn.bias.copy_(torch.cat([qb, kb, vb]))
    ref = decoder_reference(m, 22)
    d = save_case(out, "gpt2_grouped_uneven", m, ref, {"family": "gpt2", "kind": "decoder"})
    # Rewrite the folder as the grouped checkpoint a converter would produce.
    sd = load_file(os.path.join(d, "model.safetensors"))
    keep_qk = lambda w: torch.cat([w[h * hd:h * hd + dqk] for h in range(8)])  # noqa: E731
    keep_v = lambda w: torch.cat([w[h * hd:h * hd + dv] for h in range(8)])  # noqa: E731
    for i, blk in enumerate(m.transformer.h):
        W = blk.attn.c_attn.weight.detach()
        Bv = blk.attn.c_attn.bias.detach()
        dm = cfg.n_embd
        q, k, v = W[:, :dm].T, W[:, dm:2 * dm].T, W[:, 2 * dm:].T
        qb, kb, vb = Bv[:dm], Bv[dm:2 * dm], Bv[2 * dm:]
        k, kb = keep_group_heads(k, group_of, hd), keep_group_heads(kb, group_of, hd)
        v, vb = keep_group_heads(v, group_of, hd), keep_group_heads(vb, group_of, hd)
        k = torch.cat([k[g * hd:g * hd + dqk] for g in range(3)])
        kb = torch.cat([kb[g * hd:g * hd + dqk] for g in range(3)])
        v = torch.cat([v[g * hd:g * hd + dv] for g in range(3)])
        vb = torch.cat([vb[g * hd:g * hd + dv] for g in range(3)])
        sd[f"transformer.h.{i}.attn.c_attn.weight"] = torch.cat([keep_qk(q), k, v]).T.contiguous()
        sd[f"transformer.h.{i}.attn.c_attn.bias"] = torch.cat([keep_qk(qb), kb, vb]).contiguous()
        P = blk.attn.c_proj.weight.detach()  # Conv1D [in = n_q*hd, out]
        sd[f"transformer.h.{i}.attn.c_proj.weight"] = torch.cat([P[h * hd:h * hd + dv] for h in range(8)]).contiguous()
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    c = json.load(open(os.path.join(d, "config.json")))
    c.update({"num_key_value_heads": 3, "gqa_group_map": group_of, "gqa_qk_head_dim": dqk, "gqa_v_head_dim": dv})
    json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)


def llama_grouped(out):
    """Llama with uneven groups [3,3,2] (not expressible in transformers): K/V tied within groups."""
    cfg = T.LlamaConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=8, num_key_value_heads=8,
                        intermediate_size=96, num_hidden_layers=2, max_position_embeddings=128)
    m = build(T.LlamaForCausalLM, cfg, 31)
    widen_init(m, 0.15)
    group_of = [0, 0, 0, 1, 1, 1, 2, 2]
    hd = 8
    with torch.no_grad():
        for layer in m.model.layers:
            for proj in (layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.weight.copy_(tie_heads_to_groups(proj.weight, group_of, hd))
    ref = decoder_reference(m, 32)
    d = save_case(out, "llama_grouped_uneven", m, ref, {"family": "llama", "kind": "decoder"})
    sd = load_file(os.path.join(d, "model.safetensors"))
    for i, layer in enumerate(m.model.layers):
        for name, proj in (("k_proj", layer.self_attn.k_proj), ("v_proj", layer.self_attn.v_proj)):
            sd[f"model.layers.{i}.self_attn.{name}.weight"] = keep_group_heads(proj.weight.detach(), group_of, hd).contiguous()
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    c = json.load(open(os.path.join(d, "config.json")))
    c.update({"num_key_value_heads": 3, "gqa_group_map": group_of})
    json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)


def tied_heads(out):
    """MHA models whose K and V heads are equal within groups, so pooling them loses nothing:
    contiguous pairs (mean/first/weighted/svd must convert exactly) and interleaved pairs 0&2,
    1&3 (similarity must find them). Only K/V are tied; Q and O stay distinct per head."""
    def tie(proj_w, proj_b, groups, hd):
        with torch.no_grad():
            for g in groups:
                for h in g[1:]:
                    proj_w[h * hd:(h + 1) * hd] = proj_w[g[0] * hd:(g[0] + 1) * hd]
                    if proj_b is not None:
                        proj_b[h * hd:(h + 1) * hd] = proj_b[g[0] * hd:(g[0] + 1) * hd]

    nodrop = dict(resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    pairs, interleaved = [[0, 1], [2, 3]], [[0, 2], [1, 3]]
    # GPT-2 (fused Conv1D: tie on the transposed k/v column blocks).
    for name, groups in (("gpt2_tied_pairs", pairs), ("gpt2_tied_interleaved", interleaved)):
        m = build(T.GPT2LMHeadModel, T.GPT2Config(vocab_size=VOCAB, n_embd=64, n_head=4, n_layer=2, n_positions=64, **nodrop), 41)
        widen_init(m, 0.15)
        d, hd = 64, 16
        for blk in m.transformer.h:
            W = blk.attn.c_attn.weight.data.T  # [3d, d] view, Linear layout
            b = blk.attn.c_attn.bias.data
            tie(W[d:2 * d], b[d:2 * d], groups, hd)
            tie(W[2 * d:], b[2 * d:], groups, hd)
        save_case(out, name, m, decoder_reference(m, 42), {"family": "gpt2", "kind": "decoder"})
    m = build(T.GPTNeoForCausalLM, T.GPTNeoConfig(vocab_size=VOCAB, hidden_size=64, num_heads=4, num_layers=2,
                                                  attention_types=[[["global", "local"], 1]], window_size=5,
                                                  max_position_embeddings=64, resid_dropout=0, embed_dropout=0,
                                                  attention_dropout=0), 43)
    widen_init(m, 0.15)
    for blk in m.transformer.h:
        a = blk.attn.attention
        tie(a.k_proj.weight.data, None, pairs, 16)
        tie(a.v_proj.weight.data, None, pairs, 16)
    save_case(out, "gpt_neo_tied_pairs", m, decoder_reference(m, 44), {"family": "gpt_neo", "kind": "decoder"})
    for name, groups in (("llama_tied_pairs", pairs), ("llama_tied_interleaved", interleaved)):
        m = build(T.LlamaForCausalLM, T.LlamaConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4,
                                                    num_key_value_heads=4, intermediate_size=128, num_hidden_layers=2,
                                                    attention_bias=True, max_position_embeddings=128), 45)
        widen_init(m, 0.15)
        for layer in m.model.layers:
            a = layer.self_attn
            tie(a.k_proj.weight.data, a.k_proj.bias.data, groups, 16)
            tie(a.v_proj.weight.data, a.v_proj.bias.data, groups, 16)
        save_case(out, name, m, decoder_reference(m, 46), {"family": "llama", "kind": "decoder"})
    m = build(T.T5ForConditionalGeneration, T.T5Config(vocab_size=VOCAB, d_model=64, d_kv=16, num_heads=4, num_layers=2,
                                                       d_ff=128, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                                                       relative_attention_num_buckets=16, relative_attention_max_distance=12,
                                                       dropout_rate=0.0, decoder_start_token_id=0), 47)
    for stack in (m.encoder, m.decoder):
        for blk in stack.block:
            for layer in blk.layer[:-1]:  # self-attention, and cross-attention in the decoder
                a = getattr(layer, "SelfAttention", None) or layer.EncDecAttention
                tie(a.k.weight.data, None, pairs, 16)
                tie(a.v.weight.data, None, pairs, 16)
    save_case(out, "t5_tied_pairs", m, t5_reference(m, 48), {"family": "t5", "kind": "seq2seq"})

    # Llama whose q/k rotary pairs 0, 1, 4, 5 (dims f and f + 8 of each 16-dim head) are zero:
    # keeping the other four pairs (--qk-head-dim 8) must give the same function, which checks
    # that the kept pairs keep their own frequencies.
    m = build(T.LlamaForCausalLM, T.LlamaConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4,
                                                num_key_value_heads=4, intermediate_size=128, num_hidden_layers=2,
                                                max_position_embeddings=128), 49)
    widen_init(m, 0.15)
    with torch.no_grad():
        for layer in m.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
                for h in range(4):
                    for f in (0, 1, 4, 5):
                        proj.weight[h * 16 + f] = 0
                        proj.weight[h * 16 + f + 8] = 0
    save_case(out, "llama_dead_pairs", m, decoder_reference(m, 50), {"family": "llama", "kind": "decoder"})


def randomize_biases(model, std):
    """Nonzero biases (transformers starts them at zero), so fused and per-head bias layouts matter."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("bias") and "norm" not in n:
                p.normal_(0.0, std)


def new_families(out):
    """GPT-NeoX (partial rotary, parallel residual on and off, per-head fused q/k/v), OPT (position
    offset 2, pre- and post-norm, word_embed_proj_dim != hidden) and Qwen2 (q/k/v bias, GQA,
    sliding window), plus K/V-tied pairs of each for the strategies' exactness tests."""
    neox = dict(hidden_dropout=0, attention_dropout=0)
    m = build(T.GPTNeoXForCausalLM, T.GPTNeoXConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, num_hidden_layers=2,
                                                    intermediate_size=128, max_position_embeddings=64, rotary_pct=0.25,
                                                    use_parallel_residual=True, **neox), 61)
    widen_init(m, 0.15)
    randomize_biases(m, 0.1)
    save_case(out, "gpt_neox_parallel", m, decoder_reference(m, 62), {"family": "gpt_neox", "kind": "decoder"})
    m = build(T.GPTNeoXForCausalLM, T.GPTNeoXConfig(vocab_size=VOCAB, hidden_size=72, num_attention_heads=6, num_hidden_layers=3,
                                                    intermediate_size=100, max_position_embeddings=64, rotary_pct=0.5,
                                                    rotary_emb_base=500, use_parallel_residual=False,
                                                    tie_word_embeddings=True, **neox), 63)
    widen_init(m, 0.15)
    randomize_biases(m, 0.1)
    save_case(out, "gpt_neox_sequential", m, decoder_reference(m, 64), {"family": "gpt_neox", "kind": "decoder"})

    opt = dict(dropout=0, attention_dropout=0)
    m = build(T.OPTForCausalLM, T.OPTConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, num_hidden_layers=2, ffn_dim=128,
                                            max_position_embeddings=64, word_embed_proj_dim=32, do_layer_norm_before=True, **opt), 65)
    widen_init(m, 0.15)
    randomize_biases(m, 0.1)
    save_case(out, "opt_pre_norm_proj", m, decoder_reference(m, 66), {"family": "opt", "kind": "decoder"})
    m = build(T.OPTForCausalLM, T.OPTConfig(vocab_size=VOCAB, hidden_size=72, num_attention_heads=6, num_hidden_layers=3, ffn_dim=96,
                                            max_position_embeddings=64, word_embed_proj_dim=48, do_layer_norm_before=False, **opt), 67)
    widen_init(m, 0.15)
    randomize_biases(m, 0.1)
    save_case(out, "opt_post_norm", m, decoder_reference(m, 68), {"family": "opt", "kind": "decoder"})

    m = build(T.Qwen2ForCausalLM, T.Qwen2Config(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, num_key_value_heads=4,
                                                intermediate_size=128, num_hidden_layers=2, max_position_embeddings=128), 69)
    widen_init(m, 0.15)
    randomize_biases(m, 0.1)
    save_case(out, "qwen2_mha", m, decoder_reference(m, 70), {"family": "qwen2", "kind": "decoder"})
    m = build(T.Qwen2ForCausalLM, T.Qwen2Config(vocab_size=VOCAB, hidden_size=96, num_attention_heads=6, num_key_value_heads=2,
                                                intermediate_size=160, num_hidden_layers=3, max_position_embeddings=128,
                                                use_sliding_window=True, sliding_window=4, max_window_layers=1,
                                                tie_word_embeddings=True), 71)
    widen_init(m, 0.15)
    randomize_biases(m, 0.1)
    save_case(out, "qwen2_gqa_sliding", m, decoder_reference(m, 72), {"family": "qwen2", "kind": "decoder"})

    # K/V heads equal within contiguous pairs (pooling is exact), biases included.
    def tie_rows(w, groups, hd, per_head_stride=None, offset=0):
        with torch.no_grad():
            for g in groups:
                for h in g[1:]:
                    src = (g[0] * per_head_stride + offset) if per_head_stride else g[0] * hd
                    dst = (h * per_head_stride + offset) if per_head_stride else h * hd
                    w[dst:dst + hd] = w[src:src + hd].clone()
    pairs = [[0, 1], [2, 3]]
    m = build(T.GPTNeoXForCausalLM, T.GPTNeoXConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, num_hidden_layers=2,
                                                    intermediate_size=128, max_position_embeddings=64, rotary_pct=0.5, **neox), 73)
    widen_init(m, 0.15)
    randomize_biases(m, 0.1)
    for layer in m.gpt_neox.layers:  # query_key_value rows: per head [q 16, k 16, v 16]
        qkv = layer.attention.query_key_value
        for part in (1, 2):
            tie_rows(qkv.weight.data, pairs, 16, per_head_stride=48, offset=16 * part)
            tie_rows(qkv.bias.data, pairs, 16, per_head_stride=48, offset=16 * part)
    save_case(out, "gpt_neox_tied_pairs", m, decoder_reference(m, 74), {"family": "gpt_neox", "kind": "decoder"})
    m = build(T.OPTForCausalLM, T.OPTConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, num_hidden_layers=2, ffn_dim=128,
                                            max_position_embeddings=64, **opt), 75)
    widen_init(m, 0.15)
    randomize_biases(m, 0.1)
    for layer in m.model.decoder.layers:
        for proj in (layer.self_attn.k_proj, layer.self_attn.v_proj):
            tie_rows(proj.weight.data, pairs, 16)
            tie_rows(proj.bias.data, pairs, 16)
    save_case(out, "opt_tied_pairs", m, decoder_reference(m, 76), {"family": "opt", "kind": "decoder"})
    m = build(T.Qwen2ForCausalLM, T.Qwen2Config(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, num_key_value_heads=4,
                                                intermediate_size=128, num_hidden_layers=2, max_position_embeddings=128), 77)
    widen_init(m, 0.15)
    randomize_biases(m, 0.1)
    for layer in m.model.layers:
        for proj in (layer.self_attn.k_proj, layer.self_attn.v_proj):
            tie_rows(proj.weight.data, pairs, 16)
            tie_rows(proj.bias.data, pairs, 16)
    save_case(out, "qwen2_tied_pairs", m, decoder_reference(m, 78), {"family": "qwen2", "kind": "decoder"})


def main(out):
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    nodrop = dict(resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)

    # GPT-2: plain, and 6 heads with scale_attn_by_inverse_layer_idx.
    m = build(T.GPT2LMHeadModel, T.GPT2Config(vocab_size=VOCAB, n_embd=64, n_head=4, n_layer=2, n_positions=64, **nodrop), 1)
    widen_init(m, 0.15)
    save_case(out, "gpt2_h4", m, decoder_reference(m, 2), {"family": "gpt2", "kind": "decoder"})
    m = build(T.GPT2LMHeadModel, T.GPT2Config(vocab_size=VOCAB, n_embd=72, n_head=6, n_layer=3, n_positions=64,
                                              scale_attn_by_inverse_layer_idx=True, **nodrop), 3)
    widen_init(m, 0.15)
    save_case(out, "gpt2_h6", m, decoder_reference(m, 4), {"family": "gpt2", "kind": "decoder"})

    # GPT-Neo: local windows shorter than the prompts so the sliding window matters.
    neo = dict(resid_dropout=0, embed_dropout=0, attention_dropout=0)
    m = build(T.GPTNeoForCausalLM, T.GPTNeoConfig(vocab_size=VOCAB, hidden_size=64, num_heads=4, num_layers=4,
                                                  attention_types=[[["global", "local"], 2]], window_size=5,
                                                  max_position_embeddings=64, **neo), 5)
    widen_init(m, 0.15)
    save_case(out, "gpt_neo_h4", m, decoder_reference(m, 6), {"family": "gpt_neo", "kind": "decoder"})
    m = build(T.GPTNeoForCausalLM, T.GPTNeoConfig(vocab_size=VOCAB, hidden_size=60, num_heads=6, num_layers=2,
                                                  attention_types=[[["local", "global"], 1]], window_size=3,
                                                  intermediate_size=100, max_position_embeddings=64, **neo), 7)
    widen_init(m, 0.15)
    save_case(out, "gpt_neo_h6", m, decoder_reference(m, 8), {"family": "gpt_neo", "kind": "decoder"})

    # Llama: MHA; GQA 6q/2kv with explicit head_dim, bias and linear rope scaling; MQA with llama3
    # rope scaling and tied embeddings, sharded; and bf16 / fp16 copies.
    m = build(T.LlamaForCausalLM, T.LlamaConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4,
                                                num_key_value_heads=4, intermediate_size=128, num_hidden_layers=2,
                                                max_position_embeddings=128), 9)
    widen_init(m, 0.15)
    save_case(out, "llama_mha", m, decoder_reference(m, 10), {"family": "llama", "kind": "decoder"})
    m = build(T.LlamaForCausalLM, T.LlamaConfig(vocab_size=VOCAB, hidden_size=96, num_attention_heads=6,
                                                num_key_value_heads=2, head_dim=12, intermediate_size=160,
                                                num_hidden_layers=3, attention_bias=True, max_position_embeddings=128,
                                                rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}), 11)
    widen_init(m, 0.15)
    save_case(out, "llama_gqa_h6kv2", m, decoder_reference(m, 12), {"family": "llama", "kind": "decoder"})
    m = build(T.LlamaForCausalLM, T.LlamaConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=8,
                                                num_key_value_heads=1, intermediate_size=96, num_hidden_layers=2,
                                                tie_word_embeddings=True, max_position_embeddings=128,
                                                rope_parameters={"rope_type": "llama3", "factor": 8.0, "rope_theta": 10000.0,
                                                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                 "original_max_position_embeddings": 16}), 13)
    widen_init(m, 0.15)
    save_case(out, "llama_mqa_sharded", m, decoder_reference(m, 14), {"family": "llama", "kind": "decoder"},
              max_shard_size="40KB")
    for dtype, tag in ((torch.bfloat16, "bf16"), (torch.float16, "f16")):
        m = build(T.LlamaForCausalLM, T.LlamaConfig(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4,
                                                    num_key_value_heads=2, intermediate_size=128, num_hidden_layers=2,
                                                    max_position_embeddings=128), 15)
        widen_init(m, 0.15)
        m = m.to(dtype)
        ref_model = build(T.LlamaForCausalLM, m.config, 15)
        ref_model.load_state_dict({k: v.float() for k, v in m.state_dict().items()})
        d = save_case(out, f"llama_{tag}", m, decoder_reference(ref_model, 16), {"family": "llama", "kind": "decoder"})
        # transformers saves the dtype it holds; reference = fp32 math on the stored values

    # T5 v1.0 (relu, tied + rescaled lm_head) and v1.1 (gated-gelu, untied, more decoder layers).
    m = build(T.T5ForConditionalGeneration, T.T5Config(vocab_size=VOCAB, d_model=64, d_kv=16, num_heads=4, num_layers=2,
                                                       d_ff=128, relative_attention_num_buckets=16,
                                                       relative_attention_max_distance=12, dropout_rate=0.0,
                                                       decoder_start_token_id=0), 17)
    save_case(out, "t5_v10", m, t5_reference(m, 18), {"family": "t5", "kind": "seq2seq"})
    m = build(T.T5ForConditionalGeneration, T.T5Config(vocab_size=VOCAB, d_model=48, d_kv=8, num_heads=6, num_layers=2,
                                                       num_decoder_layers=3, d_ff=96, feed_forward_proj="gated-gelu",
                                                       tie_word_embeddings=False, relative_attention_num_buckets=8,
                                                       relative_attention_max_distance=10, dropout_rate=0.0,
                                                       decoder_start_token_id=0), 19)
    save_case(out, "t5_v11", m, t5_reference(m, 20), {"family": "t5", "kind": "seq2seq"})

    gpt2_grouped(out)
    llama_grouped(out)
    tied_heads(out)
    new_families(out)
    print(f"oracle: wrote {len(os.listdir(out))} cases to {out} (transformers {T.__version__}, torch {torch.__version__})")


if __name__ == "__main__":
    main(sys.argv[1])
