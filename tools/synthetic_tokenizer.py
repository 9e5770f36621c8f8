#!/usr/bin/env python3
"""Makes a config-only checkpoint directory servable with `--load-format dummy`: copies config.json,
generation_config.json and preprocessor_config.json from CONFIG_DIR and writes a synthetic Llama-style tokenizer
(SentencePiece-like BPE with byte fallback, `<s>` added by the post-processor) whose vocabulary covers every id of
the model's `vocab_size`, so that whatever random weights generate decodes to text. Standard library only.

    python3 tools/synthetic_tokenizer.py examples/configs/llava-1.5-7b /tmp/llava-7b-dummy
    java -jar server/target/retina.jar serve --model /tmp/llava-7b-dummy --load-format dummy --device gpu

Text is tokenized character by character (no merges), so a prompt of N characters is about N tokens. Not a
language model's tokenizer: for benchmarks and serving tests of model shapes whose weights we do not have.
"""
import json
import shutil
import sys
from pathlib import Path


def main(config_dir: Path, out: Path) -> None:
    config = json.loads((config_dir / "config.json").read_text())
    text = config.get("text_config", {})
    vocab_size = text.get("vocab_size", config.get("vocab_size"))
    image_id = config.get("image_token_index", config.get("image_token_id"))
    pad_id = config.get("pad_token_id", text.get("pad_token_id"))
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "generation_config.json", "preprocessor_config.json"):
        if (config_dir / name).exists():
            shutil.copy(config_dir / name, out / name)

    specials = {0: "<unk>", 1: "<s>", 2: "</s>", image_id: "<image>"}
    if pad_id is not None and pad_id not in specials:
        specials[pad_id] = "<pad>"
    pieces = [f"<0x{b:02X}>" for b in range(256)] + ["\u2581"]
    pieces += [chr(c) for c in range(33, 127)] + ["\u2581" + chr(c) for c in range(33, 127)]
    vocab, next_piece, n = {}, 0, 0
    for i in range(vocab_size):
        if i in specials:
            vocab[specials[i]] = i
            continue
        if next_piece < len(pieces):
            vocab[pieces[next_piece]] = i
            next_piece += 1
        else:
            vocab[f"\u2581w{n}"] = i  # decodes to " w<n>"
            n += 1

    def added(i, content):
        return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}

    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(i, c) for i, c in sorted(specials.items())],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    }
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<pad>" if pad_id is not None else None, "model_max_length": 4096}, indent=1))
    print(f"{out}: {vocab_size} ids, <image> = {image_id}, {len(pieces)} character/byte pieces")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
