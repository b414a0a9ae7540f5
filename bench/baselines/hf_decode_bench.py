#!/usr/bin/env python3
"""Hugging Face Transformers (PyTorch CPU, FP32) prefill/decode throughput baseline.

A randomly initialised LlamaForCausalLM with the Llama-3.2-1B config (nothing is downloaded) is run
in float32 on CPU with torch.set_num_threads(N):

  prefill : one forward pass over a 128-token random prompt (use_cache=True, fresh DynamicCache)
            -> prefill_tokens_per_s = 128 / t_prefill
  decode  : after that prefill, 64 single-token forward passes with the KV cache, greedy
            (argmax of the last logits), no EOS stop; context grows 128 -> 192
            -> decode_tokens_per_s = 64 / t_decode

This is the same work as llama-bench's `pp128` and `tg64 @ d128` tests. Each repetition
redoes prefill + decode from an empty cache; the median over repetitions is reported (after one
untimed warm-up repetition). Prints exactly one JSON line on stdout.

Usage: python hf_decode_bench.py --threads 2 [--prompt 128] [--new 64] [--reps 3] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time


def build_config(transformers, n_layers: int | None):
    from transformers import LlamaConfig

    rope = dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                original_max_position_embeddings=8192)
    kw = dict(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192,
        num_hidden_layers=n_layers or 16, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
        hidden_act="silu", max_position_embeddings=131072, rms_norm_eps=1e-5,
        initializer_range=0.02, tie_word_embeddings=True, attention_bias=False, mlp_bias=False,
        bos_token_id=128000, eos_token_id=128001, use_cache=True,
    )
    major = int(transformers.__version__.split(".")[0])
    if major >= 5:  # v5: rope_theta lives inside rope_parameters
        kw["rope_parameters"] = dict(rope, rope_theta=500000.0)
    else:
        kw["rope_theta"] = 500000.0
        kw["rope_scaling"] = rope
    return LlamaConfig(**kw)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=64, help="number of timed single-token decode steps")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa|eager)")
    ap.add_argument("--n-layers", type=int, default=None, help="override layer count (quick tests only)")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import LlamaForCausalLM

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(args.seed)

    cfg = build_config(transformers, args.n_layers)
    t0 = time.perf_counter()
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = LlamaForCausalLM._from_config(cfg, attn_implementation=args.attn, **{dtype_kw: torch.float32})
    model = model.to(torch.float32).eval()
    t_init = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())  # tied embeddings counted once

    from transformers import DynamicCache

    g = torch.Generator().manual_seed(args.seed + 1)
    prompt = torch.randint(0, cfg.vocab_size, (1, args.prompt), generator=g)

    def one_run():
        cache = DynamicCache(config=cfg) if "config" in DynamicCache.__init__.__code__.co_varnames else DynamicCache()
        with torch.inference_mode():
            t_a = time.perf_counter()
            out = model(input_ids=prompt, past_key_values=cache, use_cache=True, logits_to_keep=1)
            nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            t_b = time.perf_counter()
            cache = out.past_key_values
            for _ in range(args.new):
                out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            t_c = time.perf_counter()
        assert cache.get_seq_length() == args.prompt + args.new, cache.get_seq_length()
        return t_b - t_a, t_c - t_b

    for _ in range(args.warmup):
        one_run()
    pf, dc = [], []
    for _ in range(args.reps):
        a, b = one_run()
        pf.append(args.prompt / a)
        dc.append(args.new / b)

    rec = {
        "system": "hf-transformers-pytorch-cpu-fp32",
        "threads": args.threads,
        "prefill_tokens_per_s": round(statistics.median(pf), 3),
        "decode_tokens_per_s": round(statistics.median(dc), 3),
        "prompt_tokens": args.prompt,
        "decode_tokens": args.new,
        "decode_after_prompt": True,
        "reps": args.reps,
        "prefill_runs": [round(x, 3) for x in pf],
        "decode_runs": [round(x, 3) for x in dc],
        "n_params": n_params,
        "n_layers": cfg.num_hidden_layers,
        "attn_implementation": getattr(model.config, "_attn_implementation", args.attn),
        "init_s": round(t_init, 1),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
