#!/usr/bin/env python3
"""Generate GGUF fixtures for EdgeLab's Swift GGUF reader, dequantizers and GGUF Llama loader.

Nothing is downloaded. Writes, next to this script:

  types.gguf, types-align64.gguf  one small 2-D tensor per type (F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q4_K Q6_K) plus a 1-D
                                  F32 tensor, and one metadata key of every GGUF value type; alignment 32 (default)
                                  and 64 (general.alignment = 64)
  nested-array.gguf               metadata only: an array of arrays (gguf-py writes and reads it; ggml's C reader
                                  REJECTS it: "key ... has invalid GGUF type 9")
  types.json                      what a reader must find in those files (shapes, sizes, offsets, dequantized
                                  values, metadata)
  tiny-llama-hf/                  a random Llama (LlamaForCausalLM, F32 safetensors, untied) + its tokenizer
  tiny-llama-{f32,q8_0,q4_0,q4_1}.gguf   that model as llama.cpp's convert_hf_to_gguf.py lays it out (Q/K rows
                                  permuted), F32 or quantized
  tiny-llama-{q4_k,q6_k}.gguf     a wider random Llama (hidden 256, so rows are whole K-quant super-blocks)
  tiny-llama-expected.json        reference outputs (transformers, float32, eager attention) for each GGUF

The tokenizer is ../../../TokenizerTests/Fixtures/tiny-llama-bpe/tokenizer.json (run make_tokenizer_fixtures.py first).

Usage:
    python3 Tests/EngineTests/Fixtures/gguf/make_gguf_fixtures.py
    python3 .../make_gguf_fixtures.py --llama-cpp SRC --llama-cpp-build BUILD
        additionally cross-checks against llama.cpp: converts tiny-llama-hf with SRC/convert_hf_to_gguf.py
        (f32 and q8_0) and compares with our files; compiles a small program against BUILD's static libllama and
        checks that llama.cpp loads every tiny-llama GGUF, reproduces the reference logits, and tokenizes the
        tokenizer cases like HF tokenizers.

Versions: gguf 0.19.0, torch 2.13.0 (CPU), transformers 5.23.0, tokenizers 0.23.3, numpy 2.4.6.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType, GGUFWriter

HERE = Path(__file__).resolve().parent
TOKENIZER_DIR = HERE.parent.parent.parent / "TokenizerTests" / "Fixtures"
TOKENIZER_JSON = TOKENIZER_DIR / "tiny-llama-bpe" / "tokenizer.json"

sys.path.insert(0, str(TOKENIZER_DIR))
from make_tokenizer_fixtures import dump_json  # noqa: E402  (one JSON layout for every fixture)

# ---------------------------------------------------------------------------------------------------------------
# K-quant quantizers. gguf 0.19.0 can dequantize Q4_K and Q6_K but not quantize them, so these are written here:
# straightforward min/max (Q4_K) and abs-max (Q6_K) per sub-block, not llama.cpp's iterative scale search. The byte
# layouts are ggml's block_q4_K / block_q6_K; they are checked by gguf.quants.dequantize (and by llama.cpp with
# --llama-cpp-build).

QK_K = 256


def quantize_q4_k(data: np.ndarray) -> np.ndarray:
    """block_q4_K (144 bytes per 256 values): f16 d, f16 dmin, 12 bytes of packed 6-bit scales and mins for the 8
    sub-blocks of 32, then 128 bytes of 4-bit quants. x = d * sc[j] * q - dmin * m[j]."""
    shape = data.shape
    x = data.astype(np.float32).reshape(-1, 8, 32)
    nb = x.shape[0]
    lo = np.minimum(x.min(axis=-1), 0.0)
    hi = x.max(axis=-1)
    scale = (hi - lo) / 15.0
    mins = -lo
    d = (scale.max(axis=-1) / 63.0).astype(np.float16)
    dmin = (mins.max(axis=-1) / 63.0).astype(np.float16)
    d32 = d.astype(np.float32)[:, None]
    dmin32 = dmin.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d32 > 0, np.round(scale / d32), 0).clip(0, 63).astype(np.uint8)
        m = np.where(dmin32 > 0, np.round(mins / dmin32), 0).clip(0, 63).astype(np.uint8)
        eff_scale = (d32 * sc)[..., None]
        eff_min = (dmin32 * m)[..., None]
        q = np.where(eff_scale > 0, np.round((x + eff_min) / eff_scale), 0).clip(0, 15).astype(np.uint8)
    scales = np.empty((nb, 12), np.uint8)
    scales[:, 0:4] = (sc[:, 0:4] & 0x3F) | ((sc[:, 4:8] >> 4) << 6)
    scales[:, 4:8] = (m[:, 0:4] & 0x3F) | ((m[:, 4:8] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    q = q.reshape(nb, 4, 2, 32)  # 32-byte group g holds sub-block 2g (low nibbles) and 2g+1 (high nibbles)
    qs = (q[:, :, 0, :] | (q[:, :, 1, :] << 4)).reshape(nb, 128)
    out = np.concatenate([d.view(np.uint8).reshape(nb, 2), dmin.view(np.uint8).reshape(nb, 2), scales, qs], axis=1)
    return out.reshape(*shape[:-1], shape[-1] // QK_K * 144)


def quantize_q6_k(data: np.ndarray) -> np.ndarray:
    """block_q6_K (210 bytes per 256 values): ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16] (one per
    sub-block of 16), f16 d. x = d * scales[v / 16] * (q - 32)."""
    shape = data.shape
    x = data.astype(np.float32).reshape(-1, 16, 16)
    nb = x.shape[0]
    scale = np.abs(x).max(axis=-1) / 31.0
    d = (scale.max(axis=-1) / 127.0).astype(np.float16)
    d32 = d.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d32 > 0, np.round(scale / d32), 0).clip(-128, 127).astype(np.int8)
        eff = (d32 * sc)[..., None]
        q = np.where(eff > 0, np.round(x / eff), 0).clip(-32, 31).astype(np.int16) + 32
    q = q.astype(np.uint8).reshape(nb, 2, 4, 32)  # value v = 128*h + 32*k + l  ->  [h, k, l]
    low, high = q & 0x0F, q >> 4
    ql = np.empty((nb, 2, 64), np.uint8)
    ql[:, :, 0:32] = low[:, :, 0, :] | (low[:, :, 2, :] << 4)
    ql[:, :, 32:64] = low[:, :, 1, :] | (low[:, :, 3, :] << 4)
    qh = high[:, :, 0, :] | (high[:, :, 1, :] << 2) | (high[:, :, 2, :] << 4) | (high[:, :, 3, :] << 6)
    out = np.concatenate(
        [ql.reshape(nb, 128), qh.reshape(nb, 64), sc.view(np.uint8), d.view(np.uint8).reshape(nb, 2)], axis=1
    )
    return out.reshape(*shape[:-1], shape[-1] // QK_K * 210)


def quantize(data: np.ndarray, qtype: QT) -> np.ndarray:
    if qtype == QT.Q4_K:
        return quantize_q4_k(data)
    if qtype == QT.Q6_K:
        return quantize_q6_k(data)
    return gguf.quants.quantize(data.astype(np.float32), qtype)


def dequantize_rows(raw: np.ndarray, qtype: QT, rows: int) -> np.ndarray:
    """raw: the tensor's bytes (any dtype view) -> float32 [rows, cols]."""
    b = np.ascontiguousarray(raw).view(np.uint8).reshape(rows, -1)
    if qtype == QT.BF16:
        return (b.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return gguf.quants.dequantize(b, qtype).astype(np.float32)


def f32list(a) -> list[float]:
    """float32 values as the Python floats (doubles) that represent them exactly."""
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def write_gguf(path: Path, w: GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------------------------------------------
# types.gguf

TYPE_TENSORS = [
    # name, type, [rows, cols]
    ("t.f32", QT.F32, [3, 64]),
    ("t.f16", QT.F16, [3, 64]),
    ("t.bf16", QT.BF16, [3, 64]),
    ("t.q8_0", QT.Q8_0, [3, 64]),
    ("t.q4_0", QT.Q4_0, [3, 64]),
    ("t.q4_1", QT.Q4_1, [3, 64]),
    ("t.q4_k", QT.Q4_K, [3, 512]),
    ("t.q6_k", QT.Q6_K, [3, 512]),
]
VEC_TENSOR = ("t.vec_f32", QT.F32, [5])  # 1-D, 20 bytes (not a multiple of the alignment)

# (key, GGUFValueType, value, array element type or None). Written in this order after general.architecture.
METADATA = [
    ("test.uint8", GGUFValueType.UINT8, 200, None),
    ("test.int8", GGUFValueType.INT8, -100, None),
    ("test.uint16", GGUFValueType.UINT16, 60000, None),
    ("test.int16", GGUFValueType.INT16, -30000, None),
    ("test.uint32", GGUFValueType.UINT32, 4000000000, None),
    ("test.int32", GGUFValueType.INT32, -2000000000, None),
    ("test.uint64", GGUFValueType.UINT64, 18000000000000000000, None),
    ("test.int64", GGUFValueType.INT64, -9000000000000000000, None),
    ("test.float32", GGUFValueType.FLOAT32, 3.14159, None),
    ("test.float64", GGUFValueType.FLOAT64, 2.718281828459045, None),
    ("test.bool_true", GGUFValueType.BOOL, True, None),
    ("test.bool_false", GGUFValueType.BOOL, False, None),
    ("test.string", GGUFValueType.STRING, "héllo wörld 🦙\nsecond line", None),
    ("test.string_empty", GGUFValueType.STRING, "", None),
    ("test.array_int32", GGUFValueType.ARRAY, [1, -2, 3, 2147483647, -2147483648], GGUFValueType.INT32),
    ("test.array_string", GGUFValueType.ARRAY, ["a", "", "ünïcödé", "🦙", "two words"], GGUFValueType.STRING),
    ("test.array_float32", GGUFValueType.ARRAY, [0.5, -1.25, 1e-5, 3.4e38], GGUFValueType.FLOAT32),
    ("test.array_uint8", GGUFValueType.ARRAY, [0, 1, 127, 128, 255], GGUFValueType.UINT8),
    ("test.array_bool", GGUFValueType.ARRAY, [True, False, True], GGUFValueType.BOOL),
    ("test.array_uint64", GGUFValueType.ARRAY, [0, 18446744073709551615], GGUFValueType.UINT64),
]


def type_tensor_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240726)
    out = {}
    for name, _, shape in TYPE_TENSORS + [VEC_TENSOR]:
        x = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
        flat = x.reshape(-1)
        # A few larger magnitudes (and an exact zero) so scales and signs are exercised.
        idx = rng.choice(flat.size, size=max(2, flat.size // 40), replace=False)
        flat[idx] *= rng.choice(np.array([8.0, -30.0, 100.0], np.float32), size=idx.size)
        flat[(idx[0] + 1) % flat.size] = 0.0
        out[name] = x
    return out


def json_metadata_value(vtype: GGUFValueType, value, sub):
    def one(t, v):
        if t == GGUFValueType.FLOAT32:
            return float(np.float32(v))
        return v

    if vtype == GGUFValueType.ARRAY:
        return [one(sub, v) for v in value]
    return one(vtype, value)


def make_types(align: int | None, path: Path, data: dict[str, np.ndarray]) -> None:
    w = GGUFWriter(path, "edgelab-types")
    if align is not None:
        w.add_custom_alignment(align)
    for key, vtype, value, sub in METADATA:
        w.add_key_value(key, value, vtype, sub_type=sub)
    for name, qtype, _ in TYPE_TENSORS + [VEC_TENSOR]:
        q = quantize(data[name], qtype)
        w.add_tensor(name, q, raw_dtype=qtype if q.dtype == np.uint8 else None)
    write_gguf(path, w)


def make_nested(path: Path) -> None:
    w = GGUFWriter(path, "edgelab-types")
    w.add_key_value("test.nested", [[1, 2], [3, 4, 5]], GGUFValueType.ARRAY)
    w.add_key_value("test.after_nested", 7, GGUFValueType.UINT32)
    write_gguf(path, w)


def types_json(files: dict[str, int]) -> dict:
    """Built by reading the files back with gguf.GGUFReader."""
    tensors = []
    readers = {f: GGUFReader(HERE / f) for f in files}
    first = readers["types.gguf"]
    for t in first.tensors:
        qtype = QT(t.tensor_type)
        ne = [int(v) for v in t.shape]
        shape = list(reversed(ne))
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        vals = dequantize_rows(t.data, qtype, rows)
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        raw = np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)
        entry = {
            "name": t.name,
            "type": qtype.name,
            "type_id": int(qtype),
            "shape": shape,
            "shape_gguf_ne": ne,
            "block_size": block,
            "type_size": type_size,
            "nbytes": int(t.n_bytes),
            "first_block_hex": raw[:type_size].tobytes().hex(),
            "offset_in_data": {},
            "absolute_offset": {},
            "rows_dequantized": [f32list(r) for r in vals[: min(2, rows)]],
        }
        for f, r in readers.items():
            rt = next(x for x in r.tensors if x.name == t.name)
            start = min(x.data_offset for x in r.tensors)
            entry["absolute_offset"][f] = int(rt.data_offset)
            entry["offset_in_data"][f] = int(rt.data_offset - start)
            assert np.array_equal(np.ascontiguousarray(rt.data).view(np.uint8).reshape(-1), raw)
        tensors.append(entry)

    metadata = [{"key": "general.architecture", "type": "STRING", "value": "edgelab-types"}]
    for key, vtype, value, sub in METADATA:
        item = {"key": key, "type": vtype.name, "value": json_metadata_value(vtype, value, sub)}
        if sub is not None:
            item["array_type"] = sub.name
        if vtype in (GGUFValueType.UINT64, GGUFValueType.INT64):
            item["value_string"] = str(value)
        elif sub in (GGUFValueType.UINT64, GGUFValueType.INT64):
            item["value_string"] = [str(v) for v in value]
        metadata.append(item)
    # Check the expected metadata against what the reader finds.
    for f, r in readers.items():
        found = [k for k in r.fields if not k.startswith("GGUF.")]
        want = [m["key"] for m in metadata] + (["general.alignment"] if files[f] != 32 else [])
        assert sorted(found) == sorted(want), (f, found)
        for m in metadata:
            got = r.fields[m["key"]].contents()
            exp = m["value"]
            if m["type"] == "FLOAT32" or m.get("array_type") == "FLOAT32":
                got = f32list(got) if isinstance(got, list) else float(np.float32(got))
            assert got == exp, (m["key"], got, exp)

    nested = GGUFReader(HERE / "nested-array.gguf")
    assert nested.fields["test.nested"].contents() == [1, 2, 3, 4, 5]  # gguf-py flattens it when reading

    return {
        "note": "shape = [rows, cols]: numpy row-major, rows outer (what GGUFWriter was given). GGUF stores the "
        "dimensions innermost first, ne = shape_gguf_ne = reversed(shape) = [cols, rows]; ne[0] is the contiguous "
        "dimension and the one that blocks run along. rows_dequantized = the first 2 rows as "
        "gguf.quants.dequantize returns them (float32, written as exact doubles). nbytes = size of the tensor's "
        "data (without padding). offset_in_data = tensor-info offset, relative to the start of the data section; "
        "absolute_offset = from the start of the file. All tensors are in types.gguf and types-align64.gguf with "
        "identical bytes; only the offsets differ. 64-bit integers also come as value_string.",
        "gguf_py_version": "0.19.0",
        "files": {
            f: {
                "alignment": a,
                "data_section_offset": int(min(x.data_offset for x in readers[f].tensors)),
                "tensor_count": len(readers[f].tensors),
                "kv_count": len([k for k in readers[f].fields if not k.startswith("GGUF.")]),
                "file_size": (HERE / f).stat().st_size,
            }
            for f, a in files.items()
        },
        "tensors": tensors,
        "metadata": metadata,
        "nested_array_file": {
            "file": "nested-array.gguf",
            "note": "GGUF v3 allows an array whose element type is ARRAY (each element: u32 type, u64 count, "
            "values). gguf-py writes it; ggml's gguf.cpp rejects the file (\"key 'test.nested' has invalid GGUF type "
            "9\"); gguf.GGUFReader reads it but flattens the contents. No tensors.",
            "metadata": [
                {"key": "general.architecture", "type": "STRING", "value": "edgelab-types"},
                {"key": "test.nested", "type": "ARRAY", "array_type": "ARRAY",
                 "value": [[1, 2], [3, 4, 5]], "inner_array_type": "INT32"},
                {"key": "test.after_nested", "type": "UINT32", "value": 7},
            ],
        },
    }


# ---------------------------------------------------------------------------------------------------------------
# Tiny Llama

PROMPT = [1, 5, 9, 42]
NEW_TOKENS = 8
MIN_GAP = 1e-3  # required top-1 minus top-2 logit gap at every greedy step of every reference
NORM_SPREAD = 0.1  # norm weights uniform in [1 - 0.1, 1 + 0.1]

# Matrices are N(0, std^2) with std * sqrt(hidden) = 1.6 (std 0.2 at hidden 64, as in ../gqa-llama3 etc.). NOT the
# usual 0.02: at 0.02 these tiny models are so close to linear that swapping the RoPE pairing (using the permuted
# Q/K with HF's rotate-half RoPE) moves the logits by only ~1% and leaves the greedy tokens unchanged; at 0.2 it
# moves them by more than their whole range.
BASE = dict(hidden=64, ffn=128, layers=2, heads=4, kv_heads=2, std=0.2)
WIDE = dict(hidden=256, ffn=256, layers=2, heads=4, kv_heads=2, std=0.1)  # K-quants: rows = whole 256-value blocks

GGUF_MODELS = [
    # file type, config, matrix type, token_embd type, output type, general.file_type
    ("f32", BASE, QT.F32, QT.F32, gguf.LlamaFileType.ALL_F32),
    ("q8_0", BASE, QT.Q8_0, QT.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    ("q4_0", BASE, QT.Q4_0, QT.Q8_0, gguf.LlamaFileType.MOSTLY_Q4_0),
    ("q4_1", BASE, QT.Q4_1, QT.Q8_0, gguf.LlamaFileType.MOSTLY_Q4_1),
    ("q4_k", WIDE, QT.Q4_K, QT.Q4_K, gguf.LlamaFileType.MOSTLY_Q4_K_M),
    ("q6_k", WIDE, QT.Q6_K, QT.Q6_K, gguf.LlamaFileType.MOSTLY_Q6_K),
]

# Meta-Llama-3-8B-Instruct's chat template (as in ../../../TokenizerTests/Fixtures/chat.json, "llama3").
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py, LlamaModel.permute (verbatim but for numpy): HF's rotate-half RoPE layout ->
    GGML's interleaved (adjacent pairs) layout, per head, along the output rows."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def unpermute(weights: np.ndarray, n_head: int) -> np.ndarray:
    return (
        weights.reshape(n_head, weights.shape[0] // n_head // 2, 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def load_tokenizer():
    from tokenizers import Tokenizer

    if not TOKENIZER_JSON.exists():
        sys.exit(f"{TOKENIZER_JSON} is missing: run ../../../TokenizerTests/Fixtures/make_tokenizer_fixtures.py first")
    tok = Tokenizer.from_file(str(TOKENIZER_JSON))
    spec = json.loads(TOKENIZER_JSON.read_text(encoding="utf-8"))
    return tok, spec


def hf_config(cfg: dict, vocab: int, bos: int, eos: int):
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=cfg["hidden"],
        intermediate_size=cfg["ffn"],
        num_hidden_layers=cfg["layers"],
        num_attention_heads=cfg["heads"],
        num_key_value_heads=cfg["kv_heads"],
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        hidden_act="silu",
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        initializer_range=cfg["std"],
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=None,
    )
    config._attn_implementation = "eager"
    return config


def random_state(cfg: dict, vocab: int, seed: int) -> dict[str, np.ndarray]:
    """HF-layout weights: matrices N(0, std^2), norm weights U(1 - NORM_SPREAD, 1 + NORM_SPREAD)."""
    rng = np.random.default_rng(seed)
    h, f, hd = cfg["hidden"], cfg["ffn"], cfg["hidden"] // cfg["heads"]
    kv = cfg["kv_heads"] * hd

    def mat(rows, cols):
        return rng.normal(0.0, cfg["std"], size=(rows, cols)).astype(np.float32)

    def norm(n):
        return rng.uniform(1.0 - NORM_SPREAD, 1.0 + NORM_SPREAD, size=(n,)).astype(np.float32)

    s = {"model.embed_tokens.weight": mat(vocab, h)}
    for i in range(cfg["layers"]):
        p = f"model.layers.{i}."
        s[p + "input_layernorm.weight"] = norm(h)
        s[p + "self_attn.q_proj.weight"] = mat(h, h)
        s[p + "self_attn.k_proj.weight"] = mat(kv, h)
        s[p + "self_attn.v_proj.weight"] = mat(kv, h)
        s[p + "self_attn.o_proj.weight"] = mat(h, h)
        s[p + "post_attention_layernorm.weight"] = norm(h)
        s[p + "mlp.gate_proj.weight"] = mat(f, h)
        s[p + "mlp.up_proj.weight"] = mat(f, h)
        s[p + "mlp.down_proj.weight"] = mat(h, f)
    s["model.norm.weight"] = norm(h)
    s["lm_head.weight"] = mat(vocab, h)
    return s


HF_TO_GGUF = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def gguf_name(hf: str) -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")  # model.layers.N.<module...>.weight
    return f"blk.{parts[2]}.{HF_TO_GGUF['.'.join(parts[3:-1])]}.weight"


def gguf_tensors(state: dict[str, np.ndarray], cfg: dict, mat_type: QT, embd_type: QT):
    """[(gguf name, array to write, ggml type)]; Q and K permuted as convert_hf_to_gguf.py does. The order is the
    converter's: sorted HF names (lm_head, embed_tokens, then per layer input_layernorm, mlp.down/gate/up,
    post_attention_layernorm, self_attn.k/o/q/v, and model.norm last), so not the logical order."""
    out = []
    for hf in sorted(state):
        w = state[hf]
        if hf.endswith("q_proj.weight"):
            w = permute(w, cfg["heads"], cfg["heads"])
        elif hf.endswith("k_proj.weight"):
            w = permute(w, cfg["heads"], cfg["kv_heads"])
        if w.ndim == 1:
            qtype = QT.F32
        elif hf == "model.embed_tokens.weight":
            qtype = embd_type
        else:
            qtype = mat_type
        out.append((gguf_name(hf), quantize(w, qtype), qtype))
    return out


def write_tiny_llama(path: Path, tensors, cfg: dict, ftype, tok_spec: dict, vocab_meta: dict) -> None:
    hd = cfg["hidden"] // cfg["heads"]
    n_params = sum(int(np.prod(quant_shape(d, q))) for _, d, q in tensors)
    size_label = gguf.size_label(n_params, 0, 0, 0)
    w = GGUFWriter(path, "llama")
    # Keys in the order convert_hf_to_gguf.py writes them (general.name and size label excepted).
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(path.stem)
    w.add_size_label(size_label)
    w.add_block_count(cfg["layers"])
    w.add_context_length(256)
    w.add_embedding_length(cfg["hidden"])
    w.add_feed_forward_length(cfg["ffn"])
    w.add_head_count(cfg["heads"])
    w.add_head_count_kv(cfg["kv_heads"])
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_key_length(hd)  # the converter writes these because transformers 5 puts head_dim in config.json
    w.add_value_length(hd)
    w.add_file_type(ftype)
    w.add_vocab_size(vocab_meta["n_vocab"])
    w.add_rope_dimension_count(hd)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(vocab_meta["tokens"])
    w.add_token_types(vocab_meta["token_types"])
    w.add_token_merges(vocab_meta["merges"])
    w.add_bos_token_id(vocab_meta["bos"])
    w.add_eos_token_id(vocab_meta["eos"])
    w.add_add_bos_token(True)  # from the TemplateProcessing post-processor, as gguf.SpecialVocab infers it
    w.add_add_eos_token(False)
    w.add_add_sep_token(False)
    w.add_chat_template(LLAMA3_TEMPLATE)
    for name, data, qtype in tensors:
        w.add_tensor(name, data, raw_dtype=qtype if data.dtype == np.uint8 else None)
    write_gguf(path, w)


def quant_shape(data: np.ndarray, qtype: QT) -> tuple[int, ...]:
    return tuple(gguf.quant_shape_from_byte_shape(data.shape, qtype)) if data.dtype == np.uint8 else data.shape


def vocab_metadata(tok, spec: dict) -> dict:
    vocab = tok.get_vocab(with_added_tokens=True)
    n = len(vocab)
    by_id = {i: t for t, i in vocab.items()}
    assert sorted(by_id) == list(range(n))
    special = {a["content"] for a in spec["added_tokens"] if a["special"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    return {
        "n_vocab": n,
        "tokens": [by_id[i] for i in range(n)],
        # gguf.TokenType: NORMAL = 1, CONTROL = 3 (what convert_hf_to_gguf.py gives special added tokens)
        "token_types": [int(gguf.TokenType.CONTROL if by_id[i] in special else gguf.TokenType.NORMAL) for i in range(n)],
        "merges": merges,
        "bos": vocab["<|begin_of_text|>"],
        "eos": vocab["<|end_of_text|>"],
    }


def reference(state: dict[str, np.ndarray], config) -> dict:
    """transformers, float32, eager attention; greedy by re-running the whole sequence each step (no KV cache)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=True)
    assert model.config._attn_implementation == "eager"
    return run_reference(model)


def run_reference(model) -> dict:
    import torch

    ids = list(PROMPT)
    gaps = []
    generated = []
    prompt_logits = None
    step_logits = []
    with torch.no_grad():
        for step in range(NEW_TOKENS):
            logits = model(torch.tensor([ids])).logits[0].float()
            last = logits[-1]
            if step == 0:
                prompt_logits = logits.numpy()
            top2 = torch.topk(last, 2)
            gaps.append(float(top2.values[0] - top2.values[1]))
            nxt = int(top2.indices[0])
            step_logits.append(last.numpy())
            generated.append(nxt)
            ids.append(nxt)
    return {
        "generated_ids": generated,
        "min_gap": min(gaps),
        "gaps": gaps,
        "prompt_logits": prompt_logits,  # [len(PROMPT), vocab]
        "step_logits": step_logits,  # NEW_TOKENS x [vocab]; step_logits[0] = prompt_logits[-1]
    }


def dequantized_state(tensors, cfg: dict) -> dict[str, np.ndarray]:
    """The HF-layout weights a GGUF holds: dequantized, Q/K rows un-permuted."""
    inv = {gguf_name(k): k for k in random_state_names(cfg)}
    s = {}
    for name, data, qtype in tensors:
        if data.dtype == np.uint8:
            rows = data.shape[0]
            w = dequantize_rows(data, qtype, rows)
        else:
            w = data.astype(np.float32)
        hf = inv[name]
        if hf.endswith("q_proj.weight"):
            w = unpermute(w, cfg["heads"])
        elif hf.endswith("k_proj.weight"):
            w = unpermute(w, cfg["kv_heads"])
        s[hf] = np.ascontiguousarray(w, dtype=np.float32)
    return s


def random_state_names(cfg: dict) -> list[str]:
    names = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
    for i in range(cfg["layers"]):
        names += [f"model.layers.{i}.{m}.weight" for m in HF_TO_GGUF]
    return names


def save_hf(state: dict[str, np.ndarray], config, tok, out: Path) -> None:
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    if out.exists():
        shutil.rmtree(out)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=True)
    model.save_pretrained(out, safe_serialization=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>", clean_up_tokenization_spaces=False
    )
    fast.chat_template = LLAMA3_TEMPLATE
    fast.save_pretrained(out)


def make_tiny_llamas(seed_base: int) -> dict:
    import torch
    import transformers
    from transformers import LlamaForCausalLM

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    tok, spec = load_tokenizer()
    vm = vocab_metadata(tok, spec)
    n_vocab = vm["n_vocab"]

    expected = {
        "note": "Reference outputs of transformers' LlamaForCausalLM (float32, eager attention). prompt_ids are fed "
        "as they are (no BOS added). generated_ids: greedy, 8 steps, each by re-running the whole sequence. "
        "prompt_last_logits = logits at the last prompt position (step 0); step_logits[i] = logits that chose "
        "generated_ids[i]. For tiny-llama-f32.gguf the reference model IS tiny-llama-hf (the GGUF holds exactly its "
        "weights, Q/K rows permuted). For a quantized GGUF the reference model holds that GGUF's dequantized "
        "weights (gguf.quants.dequantize, Q/K rows un-permuted back to HF order), so an engine that dequantizes to "
        "float32 should match it to float32 rounding; an engine that also quantizes activations (like llama.cpp's "
        "Q8_K / Q8_0 dot products) will not match exactly. min_gap = smallest top-1 minus top-2 logit gap over the "
        "8 steps (compare generated_ids only where the gaps exceed your tolerance).",
        "prompt_ids": PROMPT,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "models": {},
    }

    # The base model: HF checkpoint + f32/q8_0/q4_0/q4_1 GGUFs. Re-seed until every greedy step is decisive.
    for family, cfg in (("base", BASE), ("wide", WIDE)):
        files = [m for m in GGUF_MODELS if m[1] is cfg]
        for attempt in range(50):
            seed = seed_base + (0 if family == "base" else 1000) + attempt
            state = random_state(cfg, n_vocab, seed)
            config = hf_config(cfg, n_vocab, vm["bos"], vm["eos"])
            results = {}
            ok = True
            for ftype_name, _, mat_type, embd_type, llama_ftype in files:
                tensors = gguf_tensors(state, cfg, mat_type, embd_type)
                ref_state = dequantized_state(tensors, cfg)
                if mat_type == QT.F32:
                    for k in state:
                        assert np.array_equal(ref_state[k], state[k]), k  # permute/unpermute round trip is exact
                ref = reference(ref_state, config)
                if ref["min_gap"] < MIN_GAP:
                    ok = False
                    break
                results[ftype_name] = (tensors, ref, llama_ftype)
            if ok:
                break
        else:
            raise RuntimeError(f"no seed with decisive greedy steps for {family}")

        if family == "base":
            save_hf(state, config, tok, HERE / "tiny-llama-hf")
            # The saved checkpoint, loaded as a user would, must reproduce the reference bit for bit.
            model = LlamaForCausalLM.from_pretrained(
                HERE / "tiny-llama-hf", dtype=torch.float32, attn_implementation="eager"
            ).eval()
            again = run_reference(model)
            assert again["generated_ids"] == results["f32"][1]["generated_ids"]
            assert np.array_equal(again["prompt_logits"], results["f32"][1]["prompt_logits"])
            # How much a wrong RoPE pairing would show: the GGUF's (permuted) Q/K run with HF's rotate-half RoPE.
            wrong = dict(state)
            for k in state:
                if k.endswith("q_proj.weight"):
                    wrong[k] = permute(state[k], cfg["heads"], cfg["heads"])
                elif k.endswith("k_proj.weight"):
                    wrong[k] = permute(state[k], cfg["heads"], cfg["kv_heads"])
            bad = reference(wrong, config)
            diff = float(np.max(np.abs(bad["prompt_logits"] - again["prompt_logits"])))
            assert diff > 0.1 * float(np.max(np.abs(again["prompt_logits"]))), diff
            expected["wrong_rope_pairing"] = {
                "note": "tiny-llama-f32.gguf's Q/K rows are in GGML's interleaved-pair order. Using them with HF's "
                "rotate-half RoPE (or un-permuting and then using interleaved RoPE) gives these outputs instead.",
                "generated_ids": bad["generated_ids"],
                "prompt_logits_max_abs_diff": diff,
            }

        for ftype_name, (tensors, ref, llama_ftype) in results.items():
            path = HERE / f"tiny-llama-{ftype_name}.gguf"
            write_tiny_llama(path, tensors, cfg, llama_ftype, spec, vm)
            # Read back: the reader must see exactly what we wrote.
            r = GGUFReader(path)
            for (name, data, qtype), t in zip(tensors, r.tensors):
                assert t.name == name and QT(t.tensor_type) == qtype
                assert np.array_equal(np.ascontiguousarray(t.data).view(np.uint8).reshape(-1),
                                      np.ascontiguousarray(data).view(np.uint8).reshape(-1)), name
            expected["models"][path.name] = {
                "reference_model": "tiny-llama-hf" if ftype_name == "f32" else "dequantized weights of this GGUF",
                "seed": seed,
                "init_std": cfg["std"],
                "config": {
                    "hidden_size": cfg["hidden"],
                    "intermediate_size": cfg["ffn"],
                    "num_hidden_layers": cfg["layers"],
                    "num_attention_heads": cfg["heads"],
                    "num_key_value_heads": cfg["kv_heads"],
                    "head_dim": cfg["hidden"] // cfg["heads"],
                    "vocab_size": n_vocab,
                    "rms_norm_eps": 1e-5,
                    "rope_theta": 10000.0,
                    "max_position_embeddings": 256,
                },
                "tensor_types": {name: qtype.name for name, _, qtype in tensors},
                "generated_ids": ref["generated_ids"],
                "min_gap": ref["min_gap"],
                "prompt_last_logits_first16": f32list(ref["prompt_logits"][-1][:16]),
                "prompt_last_logits": f32list(ref["prompt_logits"][-1]),
                "step_logits_first16": [f32list(s[:16]) for s in ref["step_logits"]],
            }
            if ftype_name == "f32":
                # Logits at every prompt position, for a test of the prefill path.
                expected["models"][path.name]["prompt_logits_all_positions"] = [
                    f32list(row) for row in ref["prompt_logits"]
                ]
    return expected


# ---------------------------------------------------------------------------------------------------------------
# Optional cross-check against llama.cpp (not needed to regenerate; documents how the files were validated).

LLAMACPP_CHECK_CPP = r"""
#include "llama.h"
#include "gguf.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
static void quiet(enum ggml_log_level, const char *, void *) {}
// usage: check MODEL logits T0 T1 ...        -> prints the logits of every position, one line each
//        check MODEL tokenize <file with text> -> prints the ids (parse_special = true, add_special = false)
//        check FILE dequant OUT                -> ggml's to_float of every tensor, float32, concatenated, to OUT;
//                                                 prints "alignment N" and one "name type nelements" line each
int main(int argc, char ** argv) {
    llama_log_set(quiet, nullptr);
    if (strcmp(argv[2], "dequant") == 0) {
        ggml_context * gctx = nullptr;
        gguf_init_params ip = { false, &gctx };
        gguf_context * g = gguf_init_from_file(argv[1], ip);
        if (!g) { printf("rejected\n"); return 0; }
        printf("alignment %zu\n", gguf_get_alignment(g));
        FILE * out = fopen(argv[3], "wb");
        for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
            ggml_tensor * t = ggml_get_tensor(gctx, gguf_get_tensor_name(g, i));
            const int64_t n = ggml_nelements(t);
            std::vector<float> v(n);
            if (t->type == GGML_TYPE_F32) memcpy(v.data(), t->data, n * sizeof(float));
            else ggml_get_type_traits(t->type)->to_float(t->data, v.data(), n);
            fwrite(v.data(), sizeof(float), n, out);
            printf("%s %s %lld\n", t->name, ggml_type_name(t->type), (long long) n);
        }
        fclose(out);
        return 0;
    }
    llama_backend_init();
    auto mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "load failed\n"); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    if (strcmp(argv[2], "tokenize") == 0) {
        FILE * f = fopen(argv[3], "rb"); std::string text; char buf[4096]; size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
        fclose(f);
        std::vector<llama_token> ids(text.size() * 4 + 16);
        int k = llama_tokenize(vocab, text.data(), (int) text.size(), ids.data(), (int) ids.size(), false, true);
        for (int i = 0; i < k; i++) printf("%d ", ids[i]);
        printf("\n");
        return 0;
    }
    std::vector<llama_token> toks;
    for (int i = 3; i < argc; i++) toks.push_back(atoi(argv[i]));
    auto cp = llama_context_default_params();
    cp.n_ctx = 64; cp.n_batch = 64; cp.n_ubatch = 64; cp.n_threads = 1; cp.n_threads_batch = 1;
    cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32;  // the default F16 KV cache costs ~2e-4 in these logits
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context * ctx = llama_init_from_model(model, cp);
    llama_batch batch = llama_batch_init((int) toks.size(), 0, 1);
    for (size_t i = 0; i < toks.size(); i++) {
        batch.token[i] = toks[i]; batch.pos[i] = (int) i; batch.n_seq_id[i] = 1; batch.seq_id[i][0] = 0; batch.logits[i] = 1;
    }
    batch.n_tokens = (int) toks.size();
    if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
    const int nv = llama_vocab_n_tokens(vocab);
    for (size_t i = 0; i < toks.size(); i++) {
        const float * l = llama_get_logits_ith(ctx, (int) i);
        for (int j = 0; j < nv; j++) printf("%.9g ", l[j]);
        printf("\n");
    }
    return 0;
}
"""


def crosscheck(llama_src: Path, llama_build: Path, expected: dict) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gguf-xcheck-"))
    try:
        _crosscheck(llama_src, llama_build, expected, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _crosscheck(llama_src: Path, llama_build: Path, expected: dict, tmp: Path) -> None:
    # 1. The real converter (with the BPE pre-tokenizer hash check bypassed: our tokenizer is not a known model's).
    for outtype in ("f32", "q8_0"):
        out = tmp / f"convert-{outtype}.gguf"
        # LlamaModel.set_vocab tries SentencePiece, then the Llama HF vocab, then GPT-2 BPE; the first two are made
        # to fail as they do for a Llama 3 checkpoint (whatever is installed).
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); sys.argv = [sys.argv[0]] + sys.argv[2:]\n"
            "import conversion.base as b\n"
            "def no(self): raise FileNotFoundError('not a SentencePiece vocabulary')\n"
            "b.TextModel._set_vocab_sentencepiece = no; b.TextModel._set_vocab_llama_hf = no\n"
            "b.TextModel.get_vocab_base_pre = lambda self, t: 'llama-bpe'\n"
            "import convert_hf_to_gguf as c; c.main()\n"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(llama_src), str(HERE / "tiny-llama-hf"), "--outtype", outtype,
             "--outfile", str(out)],
            check=True, capture_output=True,
        )
        theirs, ours = GGUFReader(out), GGUFReader(HERE / f"tiny-llama-{outtype}.gguf")
        t_theirs = {t.name: t for t in theirs.tensors}
        t_ours = {t.name: t for t in ours.tensors}
        assert set(t_theirs) == set(t_ours), (set(t_theirs) ^ set(t_ours))
        for name, t in t_ours.items():
            u = t_theirs[name]
            assert u.tensor_type == t.tensor_type and list(u.shape) == list(t.shape), name
            assert np.ascontiguousarray(u.data).tobytes() == np.ascontiguousarray(t.data).tobytes(), name
        skip = {"general.name"}
        k_theirs = {k: f for k, f in theirs.fields.items() if not k.startswith("GGUF.") and k not in skip}
        k_ours = {k: f for k, f in ours.fields.items() if not k.startswith("GGUF.") and k not in skip}
        assert set(k_theirs) == set(k_ours), (outtype, sorted(set(k_theirs) ^ set(k_ours)))
        for k, f in k_ours.items():
            g = k_theirs[k]
            assert [int(x) for x in f.types] == [int(x) for x in g.types], (k, f.types, g.types)
            assert f.contents() == g.contents(), k
        print(f"  convert_hf_to_gguf.py --outtype {outtype}: same tensors (bytes), same metadata")

    # 2. llama.cpp itself.
    src = tmp / "check.cpp"
    src.write_text(LLAMACPP_CHECK_CPP)
    exe = tmp / "check"
    libs = [llama_build / "src/libllama.a", llama_build / "ggml/src/libggml.a",
            llama_build / "ggml/src/libggml-cpu.a", llama_build / "ggml/src/libggml-base.a"]
    subprocess.run(
        ["g++", "-O1", "-std=c++17", str(src), "-I", str(llama_src / "include"), "-I", str(llama_src / "ggml/include"),
         *map(str, libs), "-fopenmp", "-lpthread", "-lm", "-o", str(exe)],
        check=True,
    )
    # ggml's own dequantization of every tensor must equal gguf.quants.dequantize (this checks our Q4_K / Q6_K
    # byte layouts against ggml's reference code), and ggml must read the alignment and reject the nested array.
    files = ["types.gguf", "types-align64.gguf", *expected["models"].keys()]
    for fname in files:
        res = subprocess.run([str(exe), str(HERE / fname), "dequant", str(tmp / "deq.bin")],
                             check=True, capture_output=True, text=True)
        lines = res.stdout.strip().splitlines()
        assert lines[0] == f"alignment {64 if 'align64' in fname else 32}", lines[0]
        ggml_vals = np.fromfile(tmp / "deq.bin", dtype=np.float32)
        pos = 0
        r = GGUFReader(HERE / fname)
        for line, t in zip(lines[1:], r.tensors):
            name, tname, n = line.split()
            assert name == t.name and tname.upper() == QT(t.tensor_type).name, (line, t.name)
            ne = [int(v) for v in t.shape]
            rows = int(np.prod(ne[1:])) if len(ne) > 1 else 1
            ours = dequantize_rows(t.data, QT(t.tensor_type), rows).reshape(-1)
            assert np.array_equal(ours, ggml_vals[pos:pos + int(n)]), fname + " " + name
            pos += int(n)
        assert pos == ggml_vals.size
    res = subprocess.run([str(exe), str(HERE / "nested-array.gguf"), "dequant", str(tmp / "deq.bin")],
                         check=True, capture_output=True, text=True)
    assert res.stdout.strip() == "rejected", res.stdout
    print(f"  ggml: dequantization of every tensor in {len(files)} files identical to gguf.quants; "
          "nested-array.gguf rejected")

    for fname, exp in expected["models"].items():
        ids = list(PROMPT)
        for step in range(NEW_TOKENS):
            res = subprocess.run([str(exe), str(HERE / fname), "logits", *map(str, ids)],
                                 check=True, capture_output=True, text=True)
            rows = [np.array(line.split(), dtype=np.float64) for line in res.stdout.strip().splitlines()]
            last = rows[-1]
            if step == 0:
                want = np.array(exp["prompt_last_logits"])
                err = float(np.max(np.abs(last - want)))
                print(f"  llama.cpp {fname}: prompt last-position logits max |diff| = {err:.3g} "
                      f"(logit scale {float(np.max(np.abs(want))):.3g})")
                if fname == "tiny-llama-f32.gguf":
                    assert err < 1e-4, err
                    allpos = np.array(exp["prompt_logits_all_positions"])
                    assert np.max(np.abs(np.array(rows) - allpos)) < 1e-4
            ids.append(int(np.argmax(last)))
        got = ids[len(PROMPT):]
        print(f"  llama.cpp {fname}: greedy {got} vs reference {exp['generated_ids']}"
              f"{'' if got == exp['generated_ids'] else '  (DIFFERS)'}")
        if fname == "tiny-llama-f32.gguf":
            assert got == exp["generated_ids"]

    # 3. llama.cpp's tokenizer on the GGUF's vocabulary vs HF tokenizers (parse_special, no BOS).
    cases = json.loads((TOKENIZER_DIR / "cases.json").read_text(encoding="utf-8"))["tokenizers"]["tiny-llama-bpe"]
    bad = 0
    for c in cases:
        p = tmp / "text.txt"
        p.write_bytes(c["text"].encode("utf-8"))
        res = subprocess.run([str(exe), str(HERE / "tiny-llama-f32.gguf"), "tokenize", str(p)],
                             check=True, capture_output=True, text=True)
        got = [int(x) for x in res.stdout.split()]
        if got != c["ids"]:
            bad += 1
            print(f"  llama.cpp tokenizer differs on {c['text']!r}: {got} vs {c['ids']}")
    print(f"  llama.cpp tokenizer: {len(cases) - bad}/{len(cases)} tiny-llama-bpe cases identical")


# ---------------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1, help="first seed tried for the tiny Llamas")
    ap.add_argument("--llama-cpp", type=Path, help="llama.cpp source tree (convert_hf_to_gguf.py, include/)")
    ap.add_argument("--llama-cpp-build", type=Path, help="llama.cpp CMake build dir with static libllama.a")
    args = ap.parse_args()

    data = type_tensor_data()
    make_types(None, HERE / "types.gguf", data)
    make_types(64, HERE / "types-align64.gguf", data)
    make_nested(HERE / "nested-array.gguf")
    tj = types_json({"types.gguf": 32, "types-align64.gguf": 64})
    (HERE / "types.json").write_text(dump_json(tj) + "\n", encoding="utf-8")

    expected = make_tiny_llamas(args.seed)
    (HERE / "tiny-llama-expected.json").write_text(dump_json(expected) + "\n", encoding="utf-8")

    for p in sorted(HERE.iterdir()):
        if p.is_file() and p.suffix in (".gguf", ".json"):
            print(f"{p.name:28s} {p.stat().st_size:8d} bytes")
    for p in sorted((HERE / "tiny-llama-hf").iterdir()):
        print(f"tiny-llama-hf/{p.name:14s} {p.stat().st_size:8d} bytes")

    if args.llama_cpp or args.llama_cpp_build:
        if not (args.llama_cpp and args.llama_cpp_build):
            sys.exit("--llama-cpp and --llama-cpp-build go together")
        print("cross-check against llama.cpp:")
        crosscheck(args.llama_cpp.resolve(), args.llama_cpp_build.resolve(), expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
