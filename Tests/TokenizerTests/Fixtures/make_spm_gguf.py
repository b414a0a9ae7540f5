#!/usr/bin/env python3
"""A GGUF file carrying only tokenizer metadata in llama.cpp's "llama" (SentencePiece) layout, made from
sentencepiece-bpe/tokenizer.json: tokens, scores (a merged token's score is minus the rank of the merge that makes
it, so higher scores merge first, as SentencePiece's log-probabilities order them), token types (normal 1,
unknown 2, control 3, byte 6), BOS/EOS/UNK ids and add_bos_token. No tensors.

    python3 Tests/TokenizerTests/Fixtures/make_spm_gguf.py      # needs gguf (pip install gguf==0.19.0)
"""
import json
import os

import gguf

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    tj = json.load(open(os.path.join(HERE, "sentencepiece-bpe", "tokenizer.json"), encoding="utf-8"))
    vocab = tj["model"]["vocab"]
    added = {a["id"]: a["content"] for a in tj["added_tokens"]}
    size = max(list(vocab.values()) + list(added.keys())) + 1
    tokens = [""] * size
    for t, i in vocab.items():
        tokens[i] = t
    for i, t in added.items():
        tokens[i] = t
    rank = {}
    for r, m in enumerate(tj["model"]["merges"]):
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        rank.setdefault(a + b, r)
    scores, types = [], []
    for i, t in enumerate(tokens):
        scores.append(float(-rank[t]) if t in rank else 0.0)
        if t == "<unk>":
            types.append(2)
        elif i in added:
            types.append(3)
        elif len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types.append(6)
        else:
            types.append(1)
    w = gguf.GGUFWriter(os.path.join(HERE, "sentencepiece-bpe", "tokenizer.gguf"), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(tokens.index("<s>"))
    w.add_eos_token_id(tokens.index("</s>"))
    w.add_unk_token_id(tokens.index("<unk>"))
    w.add_add_bos_token(True)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
