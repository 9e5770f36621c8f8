#!/usr/bin/env python3
"""Writes a toy Llama-style tokenizer (SentencePiece BPE, byte fallback, "<s> $A" post-processor) by hand, with
plain Python, into tokenizer/src/test/resources/toy-v4 and toy-v5, so the tokenizer module has tests before the
transformers-made fixtures exist. Layout mirrors tools/make_fixtures.py's build_tokenizer(); the v4 directory has a
transformers-4.x tokenizer_config.json (string special tokens, added_tokens_decoder, inline chat_template,
special_tokens_map.json), the v5 one a 5.x-style config (AddedToken objects, no add_bos_token: inferred from the
post-processor) and a generation_config.json with a list of eos ids.

    python3 tokenizer/src/test/python/make_toy_tokenizer.py
"""
import collections
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RES = os.path.join(os.path.dirname(HERE), "resources")
CORPUS = [
    "USER: What is shown in this image? ASSISTANT: The image shows a cat sitting on a red chair.",
    "USER: Describe the picture in detail. ASSISTANT: A woman in a space suit holds a helmet and a flag.",
    "The quick brown fox jumps over the lazy dog. What color is the sky? It is blue.",
    "Numbers like 1, 2, 3, 42 and 2024 appear in text; so do symbols: {}, [], (), <>, #, @, %.",
    "She said: \"It's a beautiful day!\" and he replied, 'Indeed.' Then they walked to the park.",
]
NUM_MERGES = 120


def train():
    words = collections.Counter()
    for line in CORPUS:
        for w in ("\u2581" + line.replace(" ", "\u2581")).split("\u2581")[1:]:
            words[tuple("\u2581" + w)] += 1
    alphabet = sorted({c for w in words for c in w})
    merges = []
    for _ in range(NUM_MERGES):
        pairs = collections.Counter()
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append((a, b))
        new = collections.Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += n
        words = new
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for byte in range(256):
        vocab["<0x%02X>" % byte] = len(vocab)
    for c in alphabet:
        vocab.setdefault(c, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return vocab, merges


def added(i, content):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def tokenizer_json(vocab, merges):
    image_id, pad_id = len(vocab), len(vocab) + 1
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>"), added(image_id, "<image>"),
                         added(pad_id, "<pad>")],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                            {"type": "Replace", "pattern": {"String": " "},
                                                             "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }, image_id, pad_id


def write(d, name, obj):
    with open(os.path.join(RES, d, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    vocab, merges = train()
    tok, image_id, pad_id = tokenizer_json(vocab, merges)
    decoder = {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in tok["added_tokens"]}
    for d in ["toy-v4", "toy-v5"]:
        os.makedirs(os.path.join(RES, d), exist_ok=True)
        write(d, "tokenizer.json", tok)
    write("toy-v4", "tokenizer_config.json", {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": decoder,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
        "clean_up_tokenization_spaces": False, "model_max_length": 4096,
        "tokenizer_class": "LlamaTokenizer"})
    write("toy-v4", "special_tokens_map.json", {
        "bos_token": {"content": "<s>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "eos_token": {"content": "</s>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "unk_token": "<unk>", "pad_token": "<pad>"})
    write("toy-v4", "generation_config.json", {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": pad_id})
    write("toy-v5", "tokenizer_config.json", {
        "backend": "tokenizers", "bos_token": {"__type": "AddedToken", "content": "<s>", "special": True},
        "eos_token": {"content": "</s>", "special": True}, "unk_token": {"content": "<unk>"},
        "pad_token": "<pad>", "extra_special_tokens": ["<image>"], "model_max_length": 4096,
        "tokenizer_class": "TokenizersBackend"})
    write("toy-v5", "generation_config.json", {"bos_token_id": 1, "eos_token_id": [2, image_id]})
    print("vocab", len(vocab), "image", image_id, "pad", pad_id)


if __name__ == "__main__":
    main()
