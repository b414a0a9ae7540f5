#!/usr/bin/env python3
"""llama.cpp's own outputs for the tiny GGUF models (fixture for EdgeLab's `llama.cpp` arithmetic).

For each tiny-llama-{f32,f16,bf16,q8_0,q4_0,q4_1,q5_0,q5_1,q4_k,q5_k,q6_k}.gguf: a 9-token prompt evaluated in one batch
(so that llama.cpp runs its batch kernels: repacked gemm for four tokens at a time, the tiled K-quant matmul for
eight or more), then 8
greedy tokens each decoded alone (EOS ignored), with llama.cpp's logits at every step. Written to
llamacpp-reference-<simd>.json, <simd> the vector width llama.cpp was built for on the machine that ran it
(avx512: AVX-512F and DQ; avx2 otherwise): where ggml's code differs by width, so do the bits, and the engine
reproduces either (EDGELAB_LLAMACPP_SIMD). `bf16_dot` records whether the CPU had AVX512-BF16, which changes the
BF16 products (EDGELAB_LLAMACPP_SIMD=avx512bf16).

Needs llama-cpp-python (built from its PyPI sdist, as bench/smollm2/reference.py describes) — run once by hand:

    .cache/baselines/venv/bin/python Tests/EngineTests/Fixtures/gguf/make_llamacpp_reference.py

llama.cpp version used: llama-cpp-python 0.3.36 (CPU backend, flash attention off, F16 KV cache); the AVX-512 fixture
was written on an AMD EPYC Zen 4 (AVX-512 with BF16 and VNNI), the AVX2 one on a Zen 4 whose AVX-512 was hidden.
"""
import json
import os

import numpy as np
from llama_cpp import Llama, __version__

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPT = [1, 5, 9, 42, 7, 300, 11, 64, 23]
STEPS = 8


def last_logits(llm):
    ptr = llm._ctx.get_logits_ith(-1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()


def main():
    out = {"note": __doc__.strip().splitlines()[0], "llama_cpp_python": __version__, "prompt_ids": PROMPT, "models": {}}
    for kind in ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"]:
        name = f"tiny-llama-{kind}.gguf"
        llm = Llama(model_path=os.path.join(HERE, name), n_threads=1, n_ctx=256, verbose=False)
        llm.reset()
        llm.eval(PROMPT)
        tokens, logits = [], []
        for step in range(STEPS):
            row = last_logits(llm)
            logits.append([float(x) for x in row])
            tok = int(np.argmax(row))
            tokens.append(tok)
            if step + 1 < STEPS:
                llm.eval([tok])
        out["models"][name] = {"generated_ids": tokens, "step_logits": logits}
    flags = open("/proc/cpuinfo").read().split()
    simd = "avx512" if "avx512f" in flags and "avx512dq" in flags else "avx2"
    out["simd"] = simd
    # ggml's AVX-512 build multiplies BF16 with VDPBF16PS where the CPU has AVX512-BF16 (other bits than without).
    out["bf16_dot"] = simd == "avx512" and "avx512_bf16" in flags
    with open(os.path.join(HERE, f"llamacpp-reference-{simd}.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
