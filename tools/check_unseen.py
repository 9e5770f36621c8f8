#!/usr/bin/env python3
"""A new user's check: checkpoints and photos that no test has seen, with Hugging Face's answers.

Writes OUT/models/{unseen-llava,unseen-next}/ (fresh random weights: another seed and other shapes than the
fixtures), OUT/images/ (scikit-image photos the fixtures do not use) and OUT/expected.json: for each checkpoint, the
chat request (two photos in one user message for LLaVA-1.5, one for LLaVA-NeXT) and the text transformers' greedy
`generate` answers with max_new_tokens=24. Retina is then served on each checkpoint and asked the same thing through
its HTTP API (see docs/BENCHMARKS.md, "New-user check"). Run where transformers is:
    python3 tools/check_unseen.py OUT
"""
import json
import os
import sys

import numpy as np
import torch
import transformers
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
import make_fixtures as mf  # noqa: E402

OUT = sys.argv[1]
SEED = 98765
QUESTION = "Describe these pictures."


def photos(d):
    from skimage import data
    os.makedirs(d, exist_ok=True)
    out = {}
    for name in ["rocket", "hubble_deep_field", "immunohistochemistry"]:
        try:
            im = Image.fromarray(getattr(data, name)())
        except Exception as e:  # some sample images need a download
            print("skip", name, e)
            continue
        path = os.path.join(d, name + ".png")
        im.save(path)
        out[name] = Image.open(path)
        out[name].load()
    return out


def randomize(model):
    with torch.no_grad():
        g = torch.Generator().manual_seed(SEED)
        for n, p in model.named_parameters():
            if "norm" in n and n.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif n.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[-1] if p.dim() > 1 else 1
                if p.dim() == 4:
                    fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                std = 1.0 / np.sqrt(fan_in) if p.dim() > 1 else 0.5
                p.copy_((0.5 if "embed" in n else std) * torch.randn(p.shape, generator=g))


def save_common(d, tok, pcfg):
    hf_tok = mf.hf_tokenizer(tok)
    hf_tok.save_pretrained(d)
    tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
    tc["chat_template"] = mf.LIST_TEMPLATE
    tc["add_bos_token"] = True
    json.dump(tc, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=2)
    json.dump(pcfg, open(os.path.join(d, "preprocessor_config.json"), "w"), indent=2)
    json.dump({"bos_token_id": 1, "eos_token_id": 2}, open(os.path.join(d, "generation_config.json"), "w"))
    return hf_tok


def answer(model, processor, images, n_images):
    content = [{"type": "image"}] * n_images + [{"type": "text", "text": QUESTION}]
    messages = [{"role": "user", "content": content}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=images, text=prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    text = processor.tokenizer.decode(new, skip_special_tokens=True)
    return {"prompt": prompt, "prompt_tokens": int(inputs["input_ids"].shape[1]), "tokens": new.tolist(),
            "text": text}


def main():
    tok = mf.build_tokenizer()
    imgs = photos(os.path.join(OUT, "images"))
    names = list(imgs)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    image_id, pad_id = tok.token_to_id("<image>"), tok.token_to_id("<pad>")
    expected = {}

    # LLaVA-1.5-style: CLIP 224/14 (256 tokens), vfl -2, GQA 6 heads / 2 kv, untied, two photos in one message.
    torch.manual_seed(SEED)
    v = transformers.CLIPVisionConfig(hidden_size=40, intermediate_size=80, num_hidden_layers=3, num_attention_heads=4,
                                      image_size=224, patch_size=14, hidden_act="quick_gelu", projection_dim=16)
    t = transformers.LlamaConfig(vocab_size=vocab, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                                 num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=2048,
                                 bos_token_id=1, eos_token_id=2, pad_token_id=pad_id, tie_word_embeddings=False)
    cfg = transformers.LlavaConfig(vision_config=v, text_config=t, image_token_index=image_id, image_seq_length=256,
                                   vision_feature_layer=-2, vision_feature_select_strategy="default")
    model = transformers.LlavaForConditionalGeneration(cfg).eval()
    randomize(model)
    d = os.path.join(OUT, "models", "unseen-llava")
    model.save_pretrained(d)
    pcfg = mf.clip_preprocessor_config(224)
    hf_tok = save_common(d, tok, pcfg)
    ip = mf.slow_clip_processor(pcfg)
    proc = transformers.LlavaProcessor(image_processor=ip, tokenizer=hf_tok, patch_size=14,
                                       vision_feature_select_strategy="default", chat_template=mf.LIST_TEMPLATE,
                                       num_additional_image_tokens=1)
    expected["unseen-llava"] = dict(images=names[:2], **answer(model, proc, [imgs[n] for n in names[:2]], 2))

    # LLaVA-NeXT: tile 28/7 (16 tokens per tile), pinpoints up to 3 tiles, one photo.
    torch.manual_seed(SEED + 1)
    v = transformers.CLIPVisionConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                                      image_size=28, patch_size=7, hidden_act="quick_gelu", projection_dim=16)
    t = transformers.LlamaConfig(vocab_size=vocab, hidden_size=40, intermediate_size=80, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                                 bos_token_id=1, eos_token_id=2, pad_token_id=pad_id, tie_word_embeddings=False)
    pins = [[28, 56], [56, 28], [56, 56], [28, 84], [84, 28]]
    cfg = transformers.LlavaNextConfig(vision_config=v, text_config=t, image_token_index=image_id,
                                       image_grid_pinpoints=pins, image_seq_length=16, vision_feature_layer=-2,
                                       vision_feature_select_strategy="default", tie_word_embeddings=False)
    model = transformers.LlavaNextForConditionalGeneration(cfg).eval()
    randomize(model)
    d = os.path.join(OUT, "models", "unseen-next")
    model.save_pretrained(d)
    kw = dict(mf.clip_preprocessor_config(28), image_grid_pinpoints=pins, do_pad=True)
    kw.pop("image_processor_type")
    ip = mf.slow_next_processor(kw)
    pcfg = dict(mf.clip_preprocessor_config(28), image_grid_pinpoints=pins, do_pad=True,
                image_processor_type="LlavaNextImageProcessor")
    hf_tok = save_common(d, tok, pcfg)
    proc = transformers.LlavaNextProcessor(image_processor=ip, tokenizer=hf_tok, patch_size=7,
                                           vision_feature_select_strategy="default", chat_template=mf.LIST_TEMPLATE,
                                           num_additional_image_tokens=1)
    expected["unseen-next"] = dict(images=names[2:3] or names[:1],
                                   **answer(model, proc, [imgs[n] for n in (names[2:3] or names[:1])], 1))
    json.dump(expected, open(os.path.join(OUT, "expected.json"), "w"), indent=1, ensure_ascii=False)
    print(json.dumps(expected, indent=1, ensure_ascii=False)[:3000])


if __name__ == "__main__":
    main()
