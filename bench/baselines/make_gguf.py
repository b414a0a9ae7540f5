#!/usr/bin/env python3
"""Write a random-weight GGUF model with exactly the Llama-3.2-1B shapes.

Used as the llama.cpp baseline model: no real weights are downloaded. Throughput of a dense
FP32/F16 model does not depend on the weight values, only on the shapes.

Shapes (Llama-3.2-1B): hidden 2048, 16 layers, 32 heads, 8 kv heads (head_dim 64),
intermediate 8192, vocab 128256, tied embeddings (no output.weight tensor), rope theta 500000
with llama3 rope scaling (factor 32, low 1, high 4, original max pos 8192), rms eps 1e-5.

llama.cpp encodes llama3 rope scaling as a `rope_freqs.weight` tensor of per-frequency factors
(exactly what convert_hf_to_gguf.py generates for rope_type "llama3"); we write the same tensor.

The tokenizer is a dummy SentencePiece-style ("llama") vocab of 128256 tokens:
<unk>, <s>, </s>, 256 byte tokens <0x00>..<0xFF>, then unique dummy pieces. It is only there so
that llama.cpp loads the model; benchmarks use random token ids anyway.

Weights: normal(0, std) with a fixed seed (per-tensor generator seeded by [seed, tensor index]),
norm weights = 1. Tensors are generated and streamed to disk one at a time (peak RAM ~1-2 GB).

Usage:
  python make_gguf.py                      # F32 -> .cache/baselines/llama-3.2-1b-shapes-f32.gguf
  python make_gguf.py --dtype f16          # F16 -> .cache/baselines/llama-3.2-1b-shapes-f16.gguf
  python make_gguf.py --out X.gguf --seed 1 --std 0.02
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import gguf

REPO_ROOT = Path(__file__).resolve().parents[2]

CFG = dict(
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    rope_factor=32.0,
    rope_low_freq_factor=1.0,
    rope_high_freq_factor=4.0,
    rope_original_max_position_embeddings=8192,
    tie_word_embeddings=True,
    bos_token_id=1,
    eos_token_id=2,
)


def llama3_rope_factors(cfg: dict) -> np.ndarray:
    """Same computation as llama.cpp's convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors)."""
    dim = cfg["head_dim"]
    base = cfg["rope_theta"]
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = cfg["rope_factor"]
    low = cfg["rope_low_freq_factor"]
    high = cfg["rope_high_freq_factor"]
    old_ctx = cfg["rope_original_max_position_embeddings"]
    low_wl = old_ctx / low
    high_wl = old_ctx / high
    out = []
    for f in freqs:
        wl = 2 * math.pi / float(f)
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (old_ctx / wl - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def tensor_plan(cfg: dict):
    """(name, numpy shape (rows=out, cols=in), kind) in file order. kind: 'w' random, 'norm' ones, 'rope'."""
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = cfg["head_dim"]
    q_dim = cfg["num_attention_heads"] * hd
    kv_dim = cfg["num_key_value_heads"] * hd
    plan = [
        ("token_embd.weight", (V, H), "w"),
        ("rope_freqs.weight", (hd // 2,), "rope"),
        ("output_norm.weight", (H,), "norm"),
    ]
    if not cfg["tie_word_embeddings"]:
        plan.append(("output.weight", (V, H), "w"))
    for l in range(cfg["num_hidden_layers"]):
        p = f"blk.{l}."
        plan += [
            (p + "attn_norm.weight", (H,), "norm"),
            (p + "attn_q.weight", (q_dim, H), "w"),
            (p + "attn_k.weight", (kv_dim, H), "w"),
            (p + "attn_v.weight", (kv_dim, H), "w"),
            (p + "attn_output.weight", (H, q_dim), "w"),
            (p + "ffn_norm.weight", (H,), "norm"),
            (p + "ffn_gate.weight", (I, H), "w"),
            (p + "ffn_up.weight", (I, H), "w"),
            (p + "ffn_down.weight", (H, I), "w"),
        ]
    return plan


def dummy_vocab(n: int):
    tokens: list[str] = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(gguf.TokenType.BYTE)
    i = 0
    while len(tokens) < n:
        tokens.append(f"\u2581t{i}")  # '▁t0', '▁t1', ... unique normal pieces
        types.append(gguf.TokenType.NORMAL)
        i += 1
    scores = [0.0] * 3 + [0.0] * 256 + [-float(k) for k in range(n - 259)]
    return tokens, scores, [int(t) for t in types]


def make_tensor(kind: str, shape, rng_seed, std: float, cfg: dict, np_dtype) -> np.ndarray:
    if kind == "rope":
        return llama3_rope_factors(cfg)  # always F32 (1-D tensors stay F32, as in convert_hf_to_gguf)
    if kind == "norm":
        return np.ones(shape, dtype=np.float32)
    rng = np.random.default_rng(rng_seed)
    a = rng.standard_normal(shape, dtype=np.float32)
    a *= np.float32(std)
    return a.astype(np_dtype, copy=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32", help="dtype of 2-D weight tensors")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--std", type=float, default=0.02)
    ap.add_argument("--n-layers", type=int, default=None, help="override layer count (for quick tests only)")
    ap.add_argument("--force", action="store_true", help="overwrite an existing output file")
    args = ap.parse_args()

    cfg = dict(CFG)
    if args.n_layers is not None:
        cfg["num_hidden_layers"] = args.n_layers
    out = args.out or REPO_ROOT / ".cache" / "baselines" / f"llama-3.2-1b-shapes-{args.dtype}.gguf"
    if out.exists() and not args.force:
        print(f"{out} exists (use --force to overwrite)", file=sys.stderr)
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    np_dtype = np.float32 if args.dtype == "f32" else np.float16
    ftype = gguf.LlamaFileType.ALL_F32 if args.dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16

    tmp = out.with_suffix(out.suffix + ".partial")
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name(f"llama-3.2-1b-shapes-random-{args.dtype}")
    w.add_description(f"Random weights (normal std={args.std}, seed={args.seed}) with Llama-3.2-1B shapes; benchmark only")
    w.add_file_type(int(ftype))
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_rope_freq_base(cfg["rope_theta"])
    # llama3 rope scaling is carried ONLY by the rope_freqs.weight tensor, as in real Llama-3.x GGUFs.
    # Do NOT write llama.rope.scaling.factor: llama.cpp would read it as an extra *linear* scale
    # (rope_freq_scale_train = 1/factor). The HF parameters are recorded under edgelab.* for information.
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_uint32("edgelab.seed", args.seed)
    w.add_float32("edgelab.init_std", args.std)
    w.add_float32("edgelab.rope_llama3.factor", cfg["rope_factor"])
    w.add_uint32("edgelab.rope_llama3.original_max_position_embeddings", cfg["rope_original_max_position_embeddings"])
    w.add_float32("edgelab.rope_llama3.low_freq_factor", cfg["rope_low_freq_factor"])
    w.add_float32("edgelab.rope_llama3.high_freq_factor", cfg["rope_high_freq_factor"])

    tokens, scores, types = dummy_vocab(cfg["vocab_size"])
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_add_bos_token(True)

    plan = tensor_plan(cfg)
    for name, shape, kind in plan:
        dt = np.dtype(np_dtype) if kind == "w" else np.dtype(np.float32)
        nbytes = int(np.prod(shape)) * dt.itemsize
        w.add_tensor_info(name, shape, dt, nbytes)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    t0 = time.time()
    n_params = 0
    for idx, (name, shape, kind) in enumerate(plan):
        t = make_tensor(kind, shape, [args.seed, idx], args.std, cfg, np_dtype)
        n_params += t.size
        w.write_tensor_data(t)
        del t
    w.close()
    os.replace(tmp, out)
    print(f"wrote {out} ({out.stat().st_size / 1e9:.3f} GB, {n_params / 1e9:.4f} B params, "
          f"{args.dtype}, {time.time() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
