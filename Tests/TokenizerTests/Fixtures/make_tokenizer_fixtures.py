#!/usr/bin/env python3
"""Generate tokenizer and chat-template fixtures for EdgeLab's Swift tokenizers.

Nothing is downloaded: every tokenizer is trained here, with the Hugging Face
``tokenizers`` library, on the small fixed corpus below, and every expected value
is what ``tokenizers`` / ``transformers`` compute for it. The Swift tests read the
outputs without Python.

Writes, next to this script:

  bytelevel-bpe/tokenizer.json         Llama 3 style byte-level BPE, vocab 600
  bytelevel-bpe-smollm/tokenizer.json  SmolLM2 / GPT-2 style byte-level BPE, vocab 600
  sentencepiece-bpe/tokenizer.json     Llama 2 style (SentencePiece BPE as HF's
                                       LlamaTokenizerFast serialises it), vocab 600
  tiny-llama-bpe/tokenizer.json        Llama 3 style byte-level BPE, vocab 320: the
                                       tokenizer of ../gguf/tiny-llama-*.gguf
  cases.json                           encode/decode cases for each tokenizer
  chat.json                            chat templates rendered by transformers

Usage:
    python3 Tests/EngineTests/Fixtures/tokenizers/make_tokenizer_fixtures.py
    python3 .../make_tokenizer_fixtures.py --check   # regenerate in memory, compare

Versions: tokenizers 0.23.3, transformers 5.23.0 (scripts/fixtures/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------------------------
# Training corpus (a few KB of varied text). Deliberately does NOT contain some characters used in the test strings
# (e.g. the llama emoji, the fraktur letters, Thai, Hebrew), so the SentencePiece tokenizer must byte-fall-back on them.

CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog didn't care; it was sleeping in the sun.",
    "Once upon a time, there was a little robot who wanted to learn how to paint. Every morning it would "
    "roll to the window, look at the sky and try to mix the colours it saw.",
    "I'm sure you'll like it. We've been there before, and they're coming back tomorrow. She'd said he'll "
    "never go. It's what I'd do. You're right, and I'M NOT SHOUTING, IT'S JUST LOUD.",
    "Large language models split text into tokens. A token is often a word, a piece of a word, or a single "
    "character. Byte-level BPE never needs an unknown token, because every byte is in the vocabulary.",
    "Edge devices have little memory, so the model is split into stages that run on different boards, "
    "connected by a network link with limited bandwidth and some latency.",
    "In 1969, 3 astronauts flew 384,400 km to the Moon. Apollo 11 landed on July 20 at 20:17 UTC. "
    "The mission lasted 8 days, 3 hours, 18 minutes and 35 seconds.",
    "Prices: $19.99, 42%, 1,000,000 users, 3.14159, 2.71828, 0x1F, 1e-5, -273.15 degrees, 2024-07-26, 12:30:45.",
    "Phone: +1 (555) 123-4567. Invoice #98765 is due on 31/12/2025. Version 10.2.3 replaces 9.8.7.",
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
    "print([fibonacci(i) for i in range(10)])\n",
    "func softmax(_ x: [Float]) -> [Float] {\n    let m = x.max() ?? 0\n    let e = x.map { exp($0 - m) }\n"
    "    let s = e.reduce(0, +)\n    return e.map { $0 / s }\n}\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\nif (sum > 0 && !done) { return sum; }\n",
    "{\"name\": \"edgelab\", \"layers\": 16, \"heads\": [32, 8], \"rope\": {\"theta\": 500000.0}}\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;  -- comment\n<div class=\"box\">Hello</div>\n",
    "Le café est très chaud. L'été dernier, nous sommes allés à la plage près de Nice. Où est la gare ?",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein. Die Straße ist naß und die Bäume sind grün.",
    "El niño comió una manzana. ¿Dónde está la biblioteca? ¡Qué sorpresa! Mañana será otro día.",
    "A situação é complicada, mas não impossível. Açúcar, pão e limão. Ærøskøbing ligger på Ærø.",
    "Привет, как дела? Москва — столица России. Это простой пример текста на русском языке.",
    "Καλημέρα κόσμε. Η γλώσσα είναι όμορφη. αβγδε ΑΒΓΔΕ.",
    "你好，世界！今天天气很好。我们一起去公园散步吧。机器学习和人工智能正在改变世界。",
    "日本語のテキストです。東京は日本の首都です。ひらがな、カタカナ、漢字を使います。",
    "안녕하세요. 오늘 날씨가 좋네요. 한국어 문장입니다.",
    "مرحبا بالعالم. هذه جملة باللغة العربية.",
    "Emoji time: 😀 😂 👍 🚀 ❤️ 🎉 🔥 and flags 🇫🇷 🇯🇵. Skin tones: 👋🏻 👋🏿.",
    "Tabs\tand\tspaces   mixed   together.\n\nNew paragraph after a blank line.\r\nWindows line ending.\n",
    "    Indented line with four spaces.\n        Eight spaces here.\n",
    "Punctuation!!! Really??? Yes... -- (parentheses) [brackets] {braces} <angle> 'quotes' \"double\" `tick`",
    "Hello world! Hello again, world. HELLO WORLD. hello, hello, hello.",
    "The year 2023 was followed by 2024 and then 2025; 1234567890 is a long number; 007 is a code name.",
    "Machine learning, deep learning, reinforcement learning, transfer learning: learning everywhere.",
    "We split the model across boards, measure latency and throughput, and compare the partition plans.",
]

# Llama 3's pre-tokenizer regex, exactly as in Meta-Llama-3-8B's tokenizer.json (Split, behavior Isolated).
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The GPT-2 regex that ByteLevel(use_regex=True) applies (tokenizers' byte_level.rs), for documentation.
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
CHATML_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ALPHABET_SIZE = 130  # characters kept by the SentencePiece-style tokenizer; the others use byte fallback


def llama3_style(vocab_size: int) -> Tokenizer:
    """Byte-level BPE like Meta-Llama-3's tokenizer.json: Split(LLAMA3_REGEX, Isolated) + ByteLevel(use_regex=False),
    BPE with ignore_merges=True, ByteLevel decoder, special tokens appended after the trained vocabulary (as in
    Llama 3, where they start at 128000), post-processor Sequence[ByteLevel, TemplateProcessing adding BOS]."""
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(LLAMA3_SPECIALS),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in LLAMA3_SPECIALS])
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(
                single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1", special_tokens=[(bos, tok.token_to_id(bos))]
            ),
        ]
    )
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


def smollm_style(vocab_size: int) -> Tokenizer:
    """Byte-level BPE like SmolLM2's tokenizer.json (the cosmo2 tokenizer): pre-tokenizer
    Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)] (= llama.cpp's
    "smollm" pre-type: regexes "\\p{N}" then the GPT-2 regex), ChatML special tokens at ids 0..2, ByteLevel decoder,
    ByteLevel post-processor (no BOS is added: SmolLM2's GGUF says tokenizer.ggml.add_bos_token = false)."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[AddedToken(s, special=True, normalized=False) for s in CHATML_SPECIALS],
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    assert [tok.token_to_id(s) for s in CHATML_SPECIALS] == [0, 1, 2]
    return tok


def sentencepiece_style(vocab_size: int) -> Tokenizer:
    """Llama 2's tokenizer as HF's LlamaTokenizerFast (legacy) serialises it: BPE with byte_fallback and fuse_unk,
    <unk>=0 <s>=1 </s>=2, <0x00>..<0xFF> = 3..258, then the pieces; normalizer Sequence[Prepend("▁"),
    Replace(" ", "▁")], no pre-tokenizer, decoder Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)],
    post-processor TemplateProcessing adding <s>.

    Training: SentencePiece-like pieces come from a BpeTrainer run on Metaspace-split words ("▁word"), with the
    alphabet limited to the most frequent characters, so rarer characters (and everything not in the corpus) are
    encoded with byte fallback."""
    n_bytes = 256
    specials = ["<unk>", "<s>", "</s>"]
    trainee = Tokenizer(models.BPE(unk_token="<unk>"))
    trainee.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainee.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    # The alphabet: "▁", printable ASCII, and the most frequent other characters of the corpus (ties: lower code
    # point first), ALPHABET_SIZE in all. Control characters (\t, \n, \r) are left out, as in Llama 2, whose
    # vocabulary has no piece for them: they are encoded as <0x09>, <0x0A>, <0x0D>. Chosen here, not with
    # limit_alphabet alone, which breaks ties in hash order (not reproducible).
    ascii_chars = [chr(c) for c in range(0x21, 0x7F)]
    counts: dict[str, int] = {}
    for line in CORPUS:
        for ch in line:
            if ch not in ascii_chars and ch.isprintable() and ch != " ":
                counts[ch] = counts.get(ch, 0) + 1
    others = sorted(counts, key=lambda c: (-counts[c], ord(c)))
    alphabet = ["▁"] + ascii_chars + others[: ALPHABET_SIZE - 1 - len(ascii_chars)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(specials) - n_bytes,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        special_tokens=[],
    )
    trainee.train_from_iterator(CORPUS, trainer=trainer)
    trained = json.loads(trainee.to_str())["model"]
    pieces = sorted(trained["vocab"].items(), key=lambda kv: kv[1])
    vocab: dict[str, int] = {}
    for s in specials + [f"<0x{b:02X}>" for b in range(n_bytes)]:
        vocab[s] = len(vocab)
    for piece, _ in pieces:
        assert piece not in vocab, piece
        vocab[piece] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    )
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 1)]
    )
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


TOKENIZERS = {
    # name: (builder, vocab size, bos, eos, family)
    "bytelevel-bpe": (llama3_style, 600),
    "bytelevel-bpe-smollm": (smollm_style, 600),
    "sentencepiece-bpe": (sentencepiece_style, 600),
    "tiny-llama-bpe": (llama3_style, 320),
}

TEST_STRINGS = [
    "",
    " ",
    "   ",
    "\n",
    "\n\n\n",
    "\t",
    "\t\tindented with tabs",
    " leading space",
    "trailing space ",
    "Hello world",
    "Hello, world! How are you?",
    "   multiple   spaces   between   words   ",
    "line one\nline two\n\nline four\r\nwindows",
    "1234567",
    "3.14159 and 1,000,000 and 2024-07-26",
    "I'm sure you'll see they've said it's what we'd do",
    "I'M SHOUTING, DON'T YOU'LL",
    "Punctuation!!! Really??? Yes...",
    "def f(x):\n    return x * 2\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "café naïve résumé déjà vu",
    "Straße Ærøskøbing São Paulo",
    "日本語のテキスト",
    "你好，世界！",
    "emoji 😀🚀 and the llama 🦙 with skin tone 👍🏽",
    "mixed: English, русский, Ελληνικά, 中文, العربية, עברית, ไทย",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 fraktur",
    "<|eot_id|> is a special token",
    "<|begin_of_text|>Hello<|end_of_text|>",
    "<|im_start|>user\nhi<|im_end|>",
    "<s>[INST] hi [/INST]</s>",
    "a\u00a0non-breaking space and a zero\u200bwidth space",
    "x" * 40,
]


def case_list(tok: Tokenizer) -> list[dict]:
    out = []
    for text in TEST_STRINGS:
        plain = tok.encode(text, add_special_tokens=False)
        with_sp = tok.encode(text, add_special_tokens=True)
        out.append(
            {
                "text": text,
                "ids": plain.ids,
                "tokens": plain.tokens,
                "ids_with_special": with_sp.ids,
                "decoded": tok.decode(plain.ids, skip_special_tokens=False),
                "decoded_with_special": tok.decode(with_sp.ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(with_sp.ids, skip_special_tokens=True),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------------------------
# Chat templates, verbatim.

# meta-llama/Meta-Llama-3-8B-Instruct (Llama 3.0).
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# meta-llama/Llama-3.1-8B-Instruct (identical to Llama-3.3-70B-Instruct's), byte for byte, trailing newline included.
LLAMA31_TEMPLATE = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# HuggingFaceTB/SmolLM2-135M-Instruct (= the tokenizer.chat_template of the SmolLM2-135M-Instruct GGUF).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# meta-llama/Llama-2-7b-chat-hf. Note: the jinja source contains backslash-n escapes inside string literals
# ('<<SYS>>\\n'), as in the JSON of tokenizer_config.json ("'<<SYS>>\\\\n'"), not raw newlines.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

CONVERSATIONS = {
    "system_user": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "user_only": [
        {"role": "user", "content": "  Hello there!  \nHow are you?  "},
    ],
    "user_assistant_user": [
        {"role": "user", "content": "Name a prime number."},
        {"role": "assistant", "content": " 7 is prime. "},
        {"role": "user", "content": "And an even one? Answer in 日本語 🙂"},
    ],
}

TEMPLATES = {
    # name: (template, bos, eos, tokenizer whose ids are given for the rendered text, source)
    "llama3": (LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>", "bytelevel-bpe", "meta-llama/Meta-Llama-3-8B-Instruct"),
    "llama3.1": (LLAMA31_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>", "bytelevel-bpe", "meta-llama/Llama-3.1-8B-Instruct"),
    "smollm2": (SMOLLM2_TEMPLATE, "<|im_start|>", "<|im_end|>", "bytelevel-bpe-smollm", "HuggingFaceTB/SmolLM2-135M-Instruct"),
    "llama2": (LLAMA2_TEMPLATE, "<s>", "</s>", "sentencepiece-bpe", "meta-llama/Llama-2-7b-chat-hf"),
}


def chat_fixture(toks: dict[str, Tokenizer]) -> dict:
    out = {
        "note": "Rendered with transformers' apply_chat_template(messages, chat_template=template, tokenize=False, "
        "add_generation_prompt=...), i.e. Jinja2 with trim_blocks=True, lstrip_blocks=True. 'ids' = the named "
        "tokenizer's encode(rendered, add_special_tokens=False) (special-token text in the rendered string is "
        "matched as special tokens).",
        "transformers_version": transformers.__version__,
        "templates": {},
    }
    for name, (template, bos, eos, tok_name, source) in TEMPLATES.items():
        fast = transformers.PreTrainedTokenizerFast(tokenizer_object=toks[tok_name], bos_token=bos, eos_token=eos)
        entry = {"source": source, "template": template, "bos_token": bos, "eos_token": eos, "tokenizer": tok_name,
                 "cases": []}
        for conv_name, messages in CONVERSATIONS.items():
            for gen in (True, False):
                rendered = fast.apply_chat_template(
                    messages, chat_template=template, tokenize=False, add_generation_prompt=gen
                )
                entry["cases"].append(
                    {
                        "conversation": conv_name,
                        "messages": messages,
                        "add_generation_prompt": gen,
                        "rendered": rendered,
                        "ids": toks[tok_name].encode(rendered, add_special_tokens=False).ids,
                    }
                )
        out["templates"][name] = entry
    return out


def dump_json(obj, indent: int = 0) -> str:
    """JSON with one key per line but lists of scalars on one line (small, still diffable)."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {dump_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(inner + dump_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def dump(obj) -> str:
    return dump_json(obj) + "\n"


def build() -> dict[str, str]:
    """Returns {relative path: file content}."""
    toks = {name: builder(size) for name, (builder, size) in TOKENIZERS.items()}
    files: dict[str, str] = {}
    for name, tok in toks.items():
        # Round-trip through JSON so the cases are computed with exactly the serialised tokenizer.
        text = tok.to_str(pretty=True)
        toks[name] = Tokenizer.from_str(text)
        files[f"{name}/tokenizer.json"] = text + "\n"
    cases = {
        "note": "ids = encode(text, add_special_tokens=False); ids_with_special = encode(text, add_special_tokens=True);"
        " decoded = decode(ids, skip_special_tokens=False); decoded_with_special = decode(ids_with_special, "
        "skip_special_tokens=False); decoded_skip_special = decode(ids_with_special, skip_special_tokens=True). "
        "Special-token text inside 'text' IS matched as a special token by encode.",
        "tokenizers_version": tokenizers.__version__,
        "tokenizers": {name: case_list(tok) for name, tok in toks.items()},
    }
    # The SentencePiece-style tokenizer must exercise byte fallback.
    fallback = [c["text"] for c in cases["tokenizers"]["sentencepiece-bpe"] if any(t.startswith("<0x") for t in c["tokens"])]
    assert len(fallback) >= 5, fallback
    files["cases.json"] = dump(cases)
    files["chat.json"] = dump(chat_fixture(toks))
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="regenerate in memory and compare with the files on disk")
    args = ap.parse_args()
    files = build()
    bad = 0
    for rel, content in files.items():
        path = HERE / rel
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != content:
                print(f"DIFFERS: {rel}")
                bad += 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        print(f"wrote {rel} ({len(content.encode())} bytes)")
    if args.check:
        print("all tokenizer fixtures up to date" if bad == 0 else f"{bad} file(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
