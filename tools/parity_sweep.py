#!/usr/bin/env python3
"""Retina's parity sweep: many tiny random LLaVA / LLaVA-NeXT checkpoints drawn across the axes real checkpoints
vary on, with what Hugging Face transformers does on each (prompt ids, per-step top-5 log-probs, greedy tokens,
pixel hashes of both image-processor backends, tokenizer encodings and decodings).

Run where transformers, torch, tokenizers, pillow and scikit-image are (not on the CI machine):

    python3 tools/parity_sweep.py [--seed N] [--count N] [--photos fixtures|unseen] OUT

OUT receives models/<name>/ (HF checkpoint directories, written as a user would find them), images/ (the images the
prompts use) and golden/<name>.json. The committed sweep lives in src/test/resources/sweep and is read by the Java
parity tests (ParitySweepTest); `--seed` with another value and `--photos unseen` draws a fresh set for a new-user
check (docs/PARITY.md).

Axes (each value is covered at least once in 24 draws):
  tokenizer  SentencePiece BPE with the legacy normalizer, Metaspace prepend_scheme first / always, byte-level BPE
             (GPT-2 style and Llama-3 style split), post-processor with and without BOS, add_bos_token
             true/false/absent, tokenizer_class, clean_up_tokenization_spaces
  template   list content with images first / in order, string content, a system message, bos_token in the
             template; stored in chat_template.jinja, chat_template.json or tokenizer_config.json
  vision     336/14, 224/16, odd sizes; default / full; vision_feature_layer -1 / -2 / a list
  text       MHA / GQA / MQA, rope default / linear / llama3, tied / untied head, f32 / f16 / bf16 weights
  model      LLaVA-1.5 and LLaVA-NeXT; 1-3 images per prompt, photos and odd images
"""
import hashlib
import json
import math
import os
import random
import shutil
import sys
import traceback

import numpy as np
import torch
from PIL import Image

import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_common import BASE_CORPUS, randomize_weights  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ARGS = list(sys.argv[1:])
SEED, COUNT, PHOTOS = 4242, 26, "fixtures"
FIXTURE_IMAGES = "src/test/resources/fixtures/images"
while ARGS and ARGS[0].startswith("--"):
    opt = ARGS.pop(0)
    if opt == "--seed":
        SEED = int(ARGS.pop(0))
    elif opt == "--count":
        COUNT = int(ARGS.pop(0))
    elif opt == "--photos":
        PHOTOS = ARGS.pop(0)
    else:
        raise SystemExit("unknown option " + opt)
OUT = ARGS[0] if ARGS else "sweep"
NUM_STEPS = 24
LOG = []


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    LOG.append(s)


# The committed sweep's tokenizers were trained on exactly this order (the draw shuffles it).
CORPUS = (BASE_CORPUS[:9] + [
    "System: you are a helpful assistant.\nUser: hello\n\nAssistant: hi there, don't worry, we're fine."]
          + BASE_CORPUS[9:] + ["{\"a\": 1, \"b\": [true, false, null], \"name\": \"x\"}  {\"count\": 12}"]) * 20

QUESTIONS = ["What is shown in this image?", "Describe these pictures.", " How many  objects are there?\n",
             "Compare the images, then answer: which is brighter?", "¿Qué ves? 写真に何がありますか。"]

# ------------------------------------------------------------------------------------------------ tokenizers
TOKENIZERS = [
    # kind, post-processor BOS, tokenizer_class, add_bos_token (None: absent), legacy, clean_up
    dict(kind="sp-legacy", bos_post=True, cls="LlamaTokenizerFast", add_bos=True, legacy=True, clean=False),
    dict(kind="sp-first", bos_post=True, cls="LlamaTokenizerFast", add_bos=None, legacy=False, clean=False),
    dict(kind="sp-always", bos_post=True, cls="PreTrainedTokenizerFast", add_bos=True, legacy=None, clean=False),
    dict(kind="sp-always", bos_post=False, cls="PreTrainedTokenizerFast", add_bos=True, legacy=None, clean=True),
    dict(kind="sp-first", bos_post=False, cls="LlamaTokenizerFast", add_bos=True, legacy=False, clean=False),
    dict(kind="bytelevel", bos_post=True, cls="PreTrainedTokenizerFast", add_bos=None, legacy=None, clean=False),
    dict(kind="bytelevel", bos_post=False, cls="GPT2TokenizerFast", add_bos=False, legacy=None, clean=True),
    dict(kind="bytelevel-split", bos_post=True, cls="PreTrainedTokenizerFast", add_bos=False, legacy=None,
         clean=False),
    dict(kind="sp-legacy", bos_post=False, cls="LlamaTokenizer", add_bos=False, legacy=True, clean=False),
    dict(kind="sp-legacy", bos_post=True, cls="PreTrainedTokenizerFast", add_bos=False, legacy=None, clean=True),
]

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def build_tokenizer(spec, rng):
    kind = spec["kind"]
    corpus = list(CORPUS)
    rng.shuffle(corpus)
    if kind.startswith("sp-"):
        bos, eos, unk = "<s>", "</s>", "<unk>"
        tok = Tokenizer(models.BPE(unk_token=unk, byte_fallback=True, fuse_unk=True))
        if kind == "sp-legacy":
            norm = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
            tok.normalizer = norm
        else:
            scheme = kind.split("-")[1]
            tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=scheme,
                                                         split=scheme == "always")
        trainer = trainers.BpeTrainer(vocab_size=rng.choice([260, 300, 340]), special_tokens=[unk, bos, eos],
                                      show_progress=False)
        tok.train_from_iterator(corpus, trainer=trainer)
        mj = json.loads(tok.to_str())["model"]
        vocab = {unk: 0, bos: 1, eos: 2}
        for b in range(256):
            vocab["<0x%02X>" % b] = len(vocab)
        for piece, _ in sorted(mj["vocab"].items(), key=lambda kv: kv[1]):
            if piece not in vocab:
                vocab[piece] = len(vocab)
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in mj["merges"]]
        new = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, byte_fallback=True, fuse_unk=True))
        if tok.normalizer is not None:
            new.normalizer = tok.normalizer
        if tok.pre_tokenizer is not None:
            new.pre_tokenizer = tok.pre_tokenizer
        if kind == "sp-always":
            new.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse(),
                                             decoders.Metaspace(replacement="\u2581", prepend_scheme="always",
                                                                split=True)])
        else:
            new.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                             decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        tok = new
        specials = [unk, bos, eos]
    else:
        bos, eos, unk = "<|begin_of_text|>", "<|end_of_text|>", None
        tok = Tokenizer(models.BPE())
        if kind == "bytelevel":
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        else:
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=rng.choice([330, 380]), special_tokens=[bos, eos],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(corpus, trainer=trainer)
        specials = [bos, eos]
    if spec["bos_post"]:
        tok.post_processor = processors.TemplateProcessing(single=bos + " $A", pair=bos + " $A " + bos + " $B",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    elif kind.startswith("bytelevel"):
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.add_special_tokens([AddedToken("<image>", special=True, normalized=False),
                            AddedToken("<pad>", special=True, normalized=False)])
    return tok, bos, eos, unk


def save_tokenizer(d, tok, spec, bos, eos, unk):
    tok.save(os.path.join(d, "tokenizer.json"))
    decoder = {}
    for t in json.loads(tok.to_str())["added_tokens"]:
        decoder[str(t["id"])] = {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word",
                                                   "special")}
    tc = {"tokenizer_class": spec["cls"], "bos_token": bos, "eos_token": eos, "pad_token": "<pad>",
          "model_max_length": 4096, "clean_up_tokenization_spaces": spec["clean"], "added_tokens_decoder": decoder}
    if unk:
        tc["unk_token"] = unk
    if spec["add_bos"] is not None:
        tc["add_bos_token"] = spec["add_bos"]
        tc["add_eos_token"] = False
    if spec["legacy"] is not None:
        tc["legacy"] = spec["legacy"]
    return tc


# ------------------------------------------------------------------------------------------------ templates
T_LIST_IMAGES_FIRST = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
T_LIST_IN_ORDER_SYSTEM = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'][0]['text'] + '\n\n' }}"
    "{% else %}{{ message['role'] | capitalize }}:"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ ' <image>' }}"
    "{% elif item['type'] == 'text' %}{{ ' ' + item['text'] }}{% endif %}{% endfor %}{{ '\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
T_STRING = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'USER: ' + message['content'] + '\n' }}"
    "{% else %}{{ 'ASSISTANT: ' + message['content'] + eos_token + '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
T_BOS_LIST = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '[' + message['role'] + ']' }}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}"
    "{% else %}{{ '<image>' }}{% endif %}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '[assistant]' }}{% endif %}")
TEMPLATES = [
    dict(name="list-images-first", text=T_LIST_IMAGES_FIRST, content="list", system=False),
    dict(name="list-in-order-system", text=T_LIST_IN_ORDER_SYSTEM, content="list", system=True),
    dict(name="string-system", text=T_STRING, content="string", system=True),
    dict(name="bos-list", text=T_BOS_LIST, content="list", system=False),
]
TEMPLATE_FILES = ["chat_template.jinja", "chat_template.json", "tokenizer_config.json"]

# ------------------------------------------------------------------------------------------------ vision/text
VISIONS_15 = [
    dict(image_size=336, patch_size=14, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
         num_attention_heads=2),
    dict(image_size=224, patch_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
         num_attention_heads=4),
    dict(image_size=30, patch_size=10, hidden_size=20, intermediate_size=40, num_hidden_layers=3,
         num_attention_heads=2),
    dict(image_size=54, patch_size=9, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
         num_attention_heads=3),
]
VISIONS_NEXT = [
    dict(image_size=28, patch_size=7, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
         num_attention_heads=2, pinpoints=[[28, 56], [56, 28], [56, 56], [28, 84], [84, 28]]),
    dict(image_size=30, patch_size=10, hidden_size=20, intermediate_size=40, num_hidden_layers=3,
         num_attention_heads=2, pinpoints=[[30, 60], [60, 30], [60, 60], [90, 30], [30, 90], [60, 90]]),
    dict(image_size=48, patch_size=12, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
         num_attention_heads=4, pinpoints=[[48, 96], [96, 48], [96, 96]]),
]
FEATURE_LAYERS = [-2, -1, [-2, -1], -3, [-3, -1]]
STRATEGIES = ["default", "full"]
TEXTS = [
    dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4),
    dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2),
    dict(hidden_size=32, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1),
    dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2),
]
ROPES = [
    dict(rope_type="default", rope_theta=10000.0),
    dict(rope_type="linear", rope_theta=10000.0, factor=2.0),
    dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
         original_max_position_embeddings=64),
    dict(rope_type="default", rope_theta=1000000.0),
]
DTYPES = ["float16", "bfloat16", "float32"]


# ------------------------------------------------------------------------------------------------ images
def odd_images(d):
    rng = np.random.default_rng(11)
    out = {}
    g = np.linspace(0, 255, 97 * 61, dtype=np.float64).reshape(61, 97)
    out["grad_odd"] = Image.fromarray(np.dstack([g, g[::-1], rng.integers(0, 256, g.shape)]).astype(np.uint8))
    out["la_small"] = Image.fromarray(np.dstack([rng.integers(0, 256, (37, 23)),
                                                 np.full((37, 23), 128)]).astype(np.uint8), "LA")
    out["noise_wide"] = Image.fromarray(rng.integers(0, 256, (9, 151, 3), dtype=np.uint8))
    cmyk = Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).convert("CMYK")
    out["cmyk"] = cmyk
    for name, im in out.items():
        ext = ".jpg" if name == "cmyk" else ".png"
        im.save(os.path.join(d, name + ext), **({"quality": 92} if ext == ".jpg" else {}))
    return {n: n + (".jpg" if n == "cmyk" else ".png") for n in out}


def unseen_photos(d):
    from skimage import data
    out = {}
    for name in ["rocket", "immunohistochemistry", "logo", "coins", "motorcycle_left", "hubble_deep_field"]:
        try:
            arr = getattr(data, name)()
        except Exception as e:
            log("skip photo", name, repr(e)[:100])
            continue
        im = Image.fromarray(arr)
        if max(im.size) > 700:
            im = im.resize((im.size[0] // 2, im.size[1] // 2), Image.BICUBIC)
        im.save(os.path.join(d, name + ".png"))
        out[name] = name + ".png"
    return out


def load_images(d):
    os.makedirs(d, exist_ok=True)
    files = {}
    if PHOTOS == "fixtures":
        for f in sorted(os.listdir(FIXTURE_IMAGES)):
            shutil.copy(os.path.join(FIXTURE_IMAGES, f), os.path.join(d, f))
            files[f.rsplit(".", 1)[0]] = f
    else:
        files.update(unseen_photos(d))
    files.update(odd_images(d))
    images = {}
    for name, f in files.items():
        im = Image.open(os.path.join(d, f))
        im.load()
        images[name] = im
    return files, images


# ------------------------------------------------------------------------------------------------ models
def text_config(t, rope, vocab, bos_id, eos_id, pad_id, tied):
    rp = dict(rope)
    common = dict(vocab_size=vocab, max_position_embeddings=4096, rms_norm_eps=1e-5, hidden_act="silu",
                  bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id, tie_word_embeddings=tied, **t)
    return transformers.LlamaConfig(rope_parameters=rp, **common)


def preprocessor_config(v, next_):
    s = v["image_size"]
    c = {"crop_size": {"height": s, "width": s}, "do_center_crop": True, "do_convert_rgb": True,
         "do_normalize": True, "do_rescale": True, "do_resize": True,
         "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
         "image_processor_type": "LlavaNextImageProcessor" if next_ else "CLIPImageProcessor",
         "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": s}}
    if next_:
        c["image_grid_pinpoints"] = v["pinpoints"]
        c["do_pad"] = True
    return c


def pil_image_processor(d, next_):
    names = (["LlavaNextImageProcessorPil"] if next_ else ["CLIPImageProcessorPil"])
    for n in names:
        cls = getattr(transformers, n, None)
        if cls is not None:
            return cls.from_pretrained(d)
    return transformers.AutoImageProcessor.from_pretrained(d, backend="pil")


def sha(arr):
    a = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
    return hashlib.sha256(a.tobytes()).hexdigest()


def image_record(proc_tv, proc_pil, img, next_):
    r = {}
    for tag, p in (("torchvision", proc_tv), ("pil", proc_pil)):
        enc = p(images=[img], return_tensors="pt")
        pv = enc["pixel_values"][0].numpy().astype(np.float32)
        r[tag] = {"shape": list(pv.shape), "sha256": sha(pv), "sum": float(pv.astype(np.float64).sum())}
        if next_:
            r["image_size"] = [int(x) for x in enc["image_sizes"][0].tolist()]
    return r


def run_steps(model, enc, n):
    """Greedy decoding in float64 with the top-5 log-probs of every step (no stop at EOS)."""
    ids = enc["input_ids"]
    extra = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
    if "pixel_values" in extra:
        extra["pixel_values"] = extra["pixel_values"].to(torch.float64)
    steps, toks = [], []
    with torch.no_grad():
        for _ in range(n):
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)
            lp = torch.log_softmax(out.logits[0, -1].to(torch.float64), dim=-1)
            top = torch.topk(lp, 5)
            steps.append({"ids": top.indices.tolist(), "logprobs": top.values.tolist()})
            nxt = int(top.indices[0])
            toks.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return steps, toks


def fresh_shapes(rng):
    """Other vision/text shapes than the committed sweep's (new-user checks: --seed other than 4242)."""
    global VISIONS_15, VISIONS_NEXT, TEXTS
    def vision(next_):
        patch = rng.choice([7, 8, 10, 12, 14] if next_ else [8, 10, 14, 16])
        side = patch * (rng.choice([2, 3, 4]) if next_ else rng.choice([3, 5, 6, 12, 24]))
        heads = rng.choice([2, 3, 4])
        v = dict(image_size=side, patch_size=patch, hidden_size=heads * rng.choice([6, 8, 10]),
                 intermediate_size=rng.choice([40, 56, 72]), num_hidden_layers=rng.choice([2, 3, 4]),
                 num_attention_heads=heads)
        if next_:
            v["pinpoints"] = [[side * a, side * b] for a, b in rng.sample([(1, 2), (2, 1), (2, 2), (1, 3), (3, 1),
                                                                          (2, 3), (3, 2)], rng.choice([3, 4, 5]))]
        return v
    VISIONS_15 = [vision(False) for _ in range(4)]
    VISIONS_NEXT = [vision(True) for _ in range(3)]
    TEXTS = []
    for heads, kv in [(4, 4), (6, 3), (8, 1), (4, 2)]:
        TEXTS.append(dict(hidden_size=heads * rng.choice([6, 8, 12]), intermediate_size=rng.choice([64, 96, 112]),
                          num_hidden_layers=rng.choice([1, 2, 3]), num_attention_heads=heads,
                          num_key_value_heads=kv))


def draw_cases(rng):
    if SEED != 4242:
        fresh_shapes(rng)
    cases = []
    for i in range(COUNT):
        next_ = i % 3 == 2
        c = dict(index=i, next=next_,
                 tokenizer=TOKENIZERS[i % len(TOKENIZERS)],
                 template=TEMPLATES[(i * 3 + i // 4) % len(TEMPLATES)],
                 template_file=TEMPLATE_FILES[(i // 2) % len(TEMPLATE_FILES)],
                 vision=(VISIONS_NEXT[(i // 3) % len(VISIONS_NEXT)] if next_
                         else VISIONS_15[(i * 5 + 1) % len(VISIONS_15)]),
                 layer=FEATURE_LAYERS[(i * 7 + 2) % len(FEATURE_LAYERS)],
                 strategy="default" if next_ else STRATEGIES[(i // 2 + i) % 2],
                 text=TEXTS[(i * 3 + 1) % len(TEXTS)],
                 rope=ROPES[(i + i // 4) % len(ROPES)],
                 tied=(i * 7) % 5 in (0, 3),
                 dtype=DTYPES[(i + 1) % len(DTYPES)],
                 seed=rng.randrange(1 << 30))
        cases.append(c)
    return cases


def prompts_for(case, names, rng):
    """Two chat prompts (1-3 images) and one completion-style text prompt."""
    tpl = case["template"]
    out = []
    for k in range(2):
        n_img = rng.choice([1, 2, 3]) if case["vision"]["image_size"] < 300 else rng.choice([1, 2])
        imgs = rng.sample(names, n_img)
        q = rng.choice(QUESTIONS)
        if tpl["content"] == "list":
            parts = [{"type": "text", "text": q}]
            for j, im in enumerate(imgs):
                pos = 0 if (k == 0 or tpl["name"] == "list-images-first") else rng.randrange(len(parts) + 1)
                parts.insert(pos if k == 0 else pos, {"type": "image", "image": im})
            messages = [{"role": "user", "content": parts}]
            if tpl["system"] and k == 1:
                messages.insert(0, {"role": "system", "content": [{"type": "text", "text": "Answer briefly."}]})
        else:
            parts = [{"type": "image", "image": im} for im in imgs] + [{"type": "text", "text": q}]
            messages = [{"role": "user", "content": parts}]
            if tpl["system"] and k == 1:
                messages.insert(0, {"role": "system", "content": "You are a careful assistant."})
        if k == 1 and tpl["name"] != "bos-list":
            # a finished earlier turn, text only
            hist = [{"role": "user", "content": [{"type": "text", "text": "Hello!"}]
                     if tpl["content"] == "list" else "Hello!"},
                    {"role": "assistant", "content": [{"type": "text", "text": "Hi, what can I do?"}]
                     if tpl["content"] == "list" else "Hi, what can I do?"}]
            at = 1 if messages[0]["role"] == "system" else 0
            messages[at:at] = hist
        out.append({"kind": "chat", "messages": messages})
    return out


def hf_messages(messages, content_format):
    """The messages as HF's template sees them: list items {'type': 'image'}; string content follows vLLM's rule
    (each image placeholder on its own line, then the text parts, joined by newlines)."""
    res = []
    for m in messages:
        c = m["content"]
        if isinstance(c, str):
            res.append({"role": m["role"], "content": c})
        elif content_format == "list":
            res.append({"role": m["role"], "content": [{"type": "image"} if p["type"] == "image"
                                                       else {"type": "text", "text": p["text"]} for p in c]})
        else:
            lines = ["<image>" for p in c if p["type"] == "image"] + [p["text"] for p in c if p["type"] == "text"]
            res.append({"role": m["role"], "content": "\n".join(lines)})
    return res


TEXT_SAMPLES = ["Hello world", " leading space and  two spaces", "line one\nline two\n\n", "USER: <image>\nWhat?",
                "naïve café 猫 — ✓", "{\"a\": 12}", "<s>already has bos", "trailing space ", ""]


def make_case(case, files, images, out):
    rng = random.Random(case["seed"])
    spec = case["tokenizer"]
    next_ = case["next"]
    name = "%02d-%s-%s-%s" % (case["index"], "next" if next_ else "llava", spec["kind"],
                              case["template"]["name"])
    log("=== case", name, json.dumps({k: v for k, v in case.items() if k not in ("vision", "text")}))
    d = os.path.join(out, "models", name)
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(case["seed"])
    tok, bos, eos, unk = build_tokenizer(spec, rng)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    image_id, pad_id = tok.token_to_id("<image>"), tok.token_to_id("<pad>")
    bos_id, eos_id = tok.token_to_id(bos), tok.token_to_id(eos)
    v = dict(case["vision"])
    pins = v.pop("pinpoints", None)
    vcfg = transformers.CLIPVisionConfig(hidden_act="quick_gelu", projection_dim=16, layer_norm_eps=1e-5, **v)
    tcfg = text_config(case["text"], case["rope"], vocab, bos_id, eos_id, pad_id, case["tied"])
    layer = case["layer"]
    if isinstance(layer, int) and layer < -v["num_hidden_layers"]:
        layer = -1
    if isinstance(layer, list):
        layer = [x if x >= -v["num_hidden_layers"] else -1 for x in layer]
        if len(set(layer)) < len(layer):
            layer = -2
    n_patches = (v["image_size"] // v["patch_size"]) ** 2
    seq_len = n_patches + (1 if case["strategy"] == "full" else 0)
    common = dict(vision_config=vcfg, text_config=tcfg, vision_feature_layer=layer,
                  vision_feature_select_strategy=case["strategy"], projector_hidden_act="gelu",
                  image_seq_length=seq_len, tie_word_embeddings=case["tied"])
    cfg_cls = transformers.LlavaNextConfig if next_ else transformers.LlavaConfig
    extra = {"image_grid_pinpoints": pins} if next_ else {}
    try:
        cfg = cfg_cls(image_token_id=image_id, **common, **extra)
    except TypeError:
        cfg = cfg_cls(image_token_index=image_id, **common, **extra)
    got = getattr(cfg, "image_token_id", None)
    assert (got if got is not None else getattr(cfg, "image_token_index", None)) == image_id
    model = (transformers.LlavaNextForConditionalGeneration if next_
             else transformers.LlavaForConditionalGeneration)(cfg).eval()
    randomize_weights(model, case["seed"])
    dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[case["dtype"]]
    model.to(dt).save_pretrained(d, safe_serialization=True)
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": pad_id,
                   "transformers_version": transformers.__version__}, f, indent=2)
    tc_written = save_tokenizer(d, tok, spec, bos, eos, unk)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(tc_written, f, indent=2, ensure_ascii=False)
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor_config(case["vision"], next_), f, indent=2)

    hf_tok = transformers.AutoTokenizer.from_pretrained(d)
    written = json.loads(tok.to_str())
    effective = json.loads(hf_tok.backend_tokenizer.to_str())
    rewritten = {k: effective.get(k) for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder")
                 if effective.get(k) != written.get(k)}
    log("tokenizer class", type(hf_tok).__name__, "rewritten by transformers:", json.dumps(rewritten)[:600])
    proc_tv = transformers.AutoImageProcessor.from_pretrained(d)
    proc_pil = pil_image_processor(d, next_)
    log("image processors", type(proc_tv).__name__, type(proc_pil).__name__)
    pcls = transformers.LlavaNextProcessor if next_ else transformers.LlavaProcessor
    processor = pcls(image_processor=proc_tv, tokenizer=hf_tok, patch_size=v["patch_size"],
                     vision_feature_select_strategy=case["strategy"], num_additional_image_tokens=1,
                     image_token="<image>", chat_template=case["template"]["text"])
    processor.save_pretrained(d)
    # HF's save rewrote tokenizer_config.json (as TokenizersBackend, without add_bos_token or legacy) and wrote
    # chat_template.jinja: put back the config this case draws, and the template where this case keeps it.
    for f in ("chat_template.jinja", "chat_template.json"):
        if os.path.exists(os.path.join(d, f)):
            os.remove(os.path.join(d, f))
    tc = dict(tc_written)
    where = case["template_file"]
    if where == "chat_template.jinja":
        open(os.path.join(d, where), "w").write(case["template"]["text"])
    elif where == "chat_template.json":
        json.dump({"chat_template": case["template"]["text"]}, open(os.path.join(d, where), "w"), indent=2)
    else:
        tc["chat_template"] = case["template"]["text"]
    json.dump(tc, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=2, ensure_ascii=False)
    log("files", sorted(os.listdir(d)), "preprocessor", open(os.path.join(d, "preprocessor_config.json")).read()[:400])

    ref_cls = transformers.LlavaNextForConditionalGeneration if next_ else transformers.LlavaForConditionalGeneration
    ref = ref_cls.from_pretrained(d, dtype=torch.float64).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(d)
    processor = pcls(image_processor=proc_tv, tokenizer=hf_tok, patch_size=v["patch_size"],
                     vision_feature_select_strategy=case["strategy"], num_additional_image_tokens=1,
                     image_token="<image>", chat_template=case["template"]["text"])
    assert json.load(open(os.path.join(d, "tokenizer_config.json"))).get("tokenizer_class") == spec["cls"]

    golden = {"name": name, "transformers": transformers.__version__, "torch": torch.__version__,
              "axes": {"model": "llava_next" if next_ else "llava", "tokenizer": spec,
                       "template": case["template"]["name"], "template_file": where,
                       "vision": case["vision"], "vision_feature_layer": layer, "strategy": case["strategy"],
                       "text": case["text"], "rope": case["rope"], "tied": case["tied"], "dtype": case["dtype"]},
              "tokenizer_class_loaded": type(hf_tok).__name__, "rewritten_by_transformers": rewritten,
              "image_token_id": image_id, "eos_token_id": eos_id, "bos_token": bos,
              "image_processors": [type(proc_tv).__name__, type(proc_pil).__name__],
              "images": {}, "prompts": [], "texts": []}
    for t in TEXT_SAMPLES:
        with_special = hf_tok(t)["input_ids"]
        plain = hf_tok(t, add_special_tokens=False)["input_ids"]
        golden["texts"].append({"text": t, "ids": with_special, "ids_no_special": plain,
                                "decoded": hf_tok.decode(plain, skip_special_tokens=True),
                                "decoded_special": hf_tok.decode(with_special, skip_special_tokens=False)})
    names = list(images)
    for p in prompts_for(case, names, rng):
        msgs = hf_messages(p["messages"], case["template"]["content"])
        rendered = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False,
                                                 chat_template=case["template"]["text"])
        img_names = [q["image"] for m in p["messages"] if not isinstance(m["content"], str)
                     for q in m["content"] if q["type"] == "image"]
        imgs = [images[n] for n in img_names]
        add_special = not (bos and rendered.startswith(bos))
        enc = processor(text=rendered, images=imgs or None, return_tensors="pt", add_special_tokens=add_special)
        ids = enc["input_ids"][0].tolist()
        via_apply = None
        if case["template"]["content"] == "list":
            try:
                amsgs = json.loads(json.dumps(msgs))
                k = 0
                for m in amsgs:
                    if isinstance(m["content"], list):
                        for q in m["content"]:
                            if q["type"] == "image":
                                q["path"] = os.path.join(out, "images", files[img_names[k]])
                                k += 1
                a = processor.apply_chat_template(amsgs, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True, chat_template=case["template"]["text"])
                via_apply = a["input_ids"][0] if isinstance(a["input_ids"][0], list) else a["input_ids"]
                via_apply = [int(x) for x in via_apply]
            except Exception as e:
                log("apply_chat_template(tokenize=True) failed:", repr(e)[:300])
        if via_apply is not None and via_apply != ids:
            log("NOTE apply_chat_template(tokenize=True) ids differ from processor(text) ids", name)
        for n in img_names:
            if n not in golden["images"]:
                golden["images"][n] = image_record(proc_tv, proc_pil, images[n], next_)
        try:
            steps, toks = run_steps(ref, dict(enc), NUM_STEPS)
        except Exception as e:
            log("SKIPPED prompt of", name, "transformers failed:", repr(e)[:200], "rendered", json.dumps(rendered)[:300],
                "image tokens", sum(1 for x in ids if x == image_id), "images", img_names)
            continue
        margins = [s["logprobs"][0] - s["logprobs"][1] for s in steps]
        text = hf_tok.decode(toks, skip_special_tokens=True)
        golden["prompts"].append({
            "kind": p["kind"], "messages": p["messages"], "rendered": rendered, "add_special_tokens": add_special,
            "input_ids": ids, "apply_chat_template_ids_equal": None if via_apply is None else via_apply == ids,
            "num_image_tokens": int(sum(1 for x in ids if x == image_id)),
            "steps": steps, "greedy": toks, "margins": margins, "text": text})
        log(name, "prompt ids", len(ids), "images", img_names, "greedy", toks[:8], "min margin %.3g" % min(margins))
    with open(os.path.join(out, "golden", name + ".json"), "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
    return name


def main():
    os.makedirs(os.path.join(OUT, "golden"), exist_ok=True)
    files, images = load_images(os.path.join(OUT, "images"))
    rng = random.Random(SEED)
    done, failed = [], []
    for case in draw_cases(rng):
        try:
            done.append(make_case(case, files, images, OUT))
        except Exception:
            log("FAILED case", case["index"], traceback.format_exc())
            failed.append(case["index"])
    index = {"seed": SEED, "photos": PHOTOS, "transformers": transformers.__version__, "torch": torch.__version__,
             "cases": done, "failed": failed, "image_files": files}
    with open(os.path.join(OUT, "golden", "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    with open(os.path.join(OUT, "golden", "sweep.log"), "w") as f:
        f.write("\n".join(LOG) + "\n")
    log("done", len(done), "failed", failed)


if __name__ == "__main__":
    main()
