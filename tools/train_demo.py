#!/usr/bin/env python3
"""Trains Retina's bundled demo model: a small LLaVA-1.5 that answers questions about simple generated scenes.

Run where transformers, torch (with a GPU), tokenizers and pillow are:

    python3 tools/train_demo.py [--minutes 5] [--seed 7] OUT

It draws 64x64 scenes (circles, squares, triangles and stars in six colours on varied backgrounds, 1-5 shapes of
varied sizes and places) with questions and answers about them:
    color     "What color is the circle?"                      -> "red"
    shape     "What shape is the red object?"                  -> "circle"
    count     "How many squares are there?"                    -> "2"
    position  "Is the triangle left or right of the star?"     -> "left"
    describe  "Describe the image."                            -> "a red circle and a blue square"
trains its own byte-fallback BPE tokenizer, a CLIP vision tower (64/8, 4 layers), a projector and a Llama (4 layers)
from scratch, and writes OUT/model (a Hugging Face checkpoint: float16 safetensors, tokenizer, chat template,
preprocessor config), OUT/eval (fresh scenes no training step saw: PNGs and eval.json with transformers' greedy
answer to each question through AutoProcessor, as a user would call it) and OUT/train.log. Retina's side of the
evaluation is DemoModelEvalTest (its answers to the same eval set; see docs/DEMO_MODEL.md).
"""
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SIZE, PATCH = 64, 8
NUM_IMAGE_TOKENS = (SIZE // PATCH) ** 2
COLORS = {"red": (215, 35, 35), "green": (35, 165, 65), "blue": (45, 75, 215), "yellow": (235, 205, 40),
          "purple": (140, 55, 175), "orange": (245, 135, 25)}
BACKGROUNDS = [(250, 250, 250), (200, 200, 200), (95, 95, 95), (25, 25, 25), (235, 222, 195), (185, 210, 230)]
SHAPES = ["circle", "square", "triangle", "star"]
TYPES = ["color", "shape", "count", "position", "describe"]
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] if message['content'] is string "
    "else message['content'][0]['text'] }}{{ '\n' }}"
    "{% else %}{{ message['role'].upper() + ': ' }}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    with open(os.path.join(OUT, "train.log"), "a") as f:
        f.write(s + "\n")


# ------------------------------------------------------------------------------------------------ scenes
def jitter(rgb, rng, amount):
    return tuple(int(min(255, max(0, c + rng.randint(-amount, amount)))) for c in rgb)


def draw_shape(d, kind, cx, cy, r, color):
    if kind == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color)
    elif kind == "square":
        s = r * 0.88
        d.rectangle((cx - s, cy - s, cx + s, cy + s), fill=color)
    elif kind == "triangle":
        d.polygon([(cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)], fill=color)
    else:
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        d.polygon(pts, fill=color)


def place(objs, rng):
    """Gives each (kind, color) a center and radius, no two overlapping; None when they do not fit."""
    placed = []
    for kind, color in objs:
        for _ in range(60):
            r = rng.randint(5, 11 if len(objs) <= 3 else 8)
            cx, cy = rng.randint(r + 1, SIZE - r - 2), rng.randint(r + 1, SIZE - r - 2)
            if all((cx - x) ** 2 + (cy - y) ** 2 >= (r + rr + 3) ** 2 for _, _, x, y, rr in placed):
                placed.append((kind, color, cx, cy, r))
                break
        else:
            return None
    return placed


def render(placed, rng):
    bg = jitter(rng.choice(BACKGROUNDS), rng, 12)
    img = Image.new("RGB", (SIZE, SIZE), bg)
    d = ImageDraw.Draw(img)
    for kind, color, cx, cy, r in placed:
        draw_shape(d, kind, cx, cy, r, jitter(COLORS[color], rng, 18))
    return img


def plural(kind):
    return kind + "s"


def describe(placed):
    parts = ["%s %s %s" % ("an" if c[0] in "aeiou" else "a", c, k) for k, c, x, y, r in sorted(placed, key=lambda p: p[2])]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def sample(rng, qtype):
    """One (image, question, answer) of the given type."""
    while True:
        if qtype == "count":
            kind = rng.choice(SHAPES)
            k = rng.randint(0, 4)
            others = [rng.choice([s for s in SHAPES if s != kind]) for _ in range(rng.randint(0 if k else 1, 5 - k))]
            objs = [(kind, rng.choice(list(COLORS))) for _ in range(k)] + [(o, rng.choice(list(COLORS))) for o in others]
            rng.shuffle(objs)
            q = rng.choice(["How many %s are there?", "How many %s are in the image?"]) % plural(kind)
            a = str(k)
        elif qtype == "describe":
            objs = [(rng.choice(SHAPES), rng.choice(list(COLORS))) for _ in range(rng.randint(1, 3))]
            q, a = "Describe the image.", None
        else:
            n = rng.randint(1 if qtype != "position" else 2, 5)
            objs = [(rng.choice(SHAPES), rng.choice(list(COLORS))) for _ in range(n)]
        placed = place(objs, rng)
        if placed is None:
            continue
        kinds = [p[0] for p in placed]
        colors = [p[1] for p in placed]
        if qtype == "color":
            unique = [k for k in SHAPES if kinds.count(k) == 1]
            if not unique:
                continue
            kind = rng.choice(unique)
            q = rng.choice(["What color is the %s?", "What is the color of the %s?"]) % kind
            a = colors[kinds.index(kind)]
        elif qtype == "shape":
            unique = [c for c in COLORS if colors.count(c) == 1]
            if not unique:
                continue
            color = rng.choice(unique)
            q = rng.choice(["What shape is the %s object?", "What shape is the %s one?"]) % color
            a = kinds[colors.index(color)]
        elif qtype == "position":
            unique = [k for k in SHAPES if kinds.count(k) == 1]
            if len(unique) < 2:
                continue
            ka, kb = rng.sample(unique, 2)
            xa, xb = placed[kinds.index(ka)][2], placed[kinds.index(kb)][2]
            if abs(xa - xb) < 6:
                continue
            q = rng.choice(["Is the %s left or right of the %s?", "Is the %s to the left or to the right of the %s?"]) \
                % (ka, kb)
            a = "left" if xa < xb else "right"
        elif qtype == "describe":
            a = describe(placed)
        return render(placed, rng), q, a, placed


# ------------------------------------------------------------------------------------------------ tokenizer
def corpus(rng):
    lines = []
    for _ in range(3000):
        t = rng.choice(TYPES)
        _, q, a, _ = sample(rng, t)
        lines.append("USER: <image>\n%s ASSISTANT: %s" % (q, a))
    lines += ["What is shown in this image? Describe these pictures. Which one is bigger? Answer briefly.",
              "The quick brown fox jumps over the lazy dog. Hello, world! How are you today?",
              "Numbers 0 1 2 3 4 5 6 7 8 9 10; colors and shapes: pink, white, black, gray, brown, oval, line."]
    return lines


def build_tokenizer(rng):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(corpus(rng), trainer=trainer)
    mj = json.loads(tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in sorted(mj["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in mj["merges"]]
    new = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    new.pre_tokenizer = tok.pre_tokenizer
    new.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    new.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    new.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<unk>", "<s>", "</s>"]])
    new.add_special_tokens([AddedToken("<image>", special=True, normalized=False),
                            AddedToken("<pad>", special=True, normalized=False)])
    return new


# ------------------------------------------------------------------------------------------------ data
class Scenes(torch.utils.data.IterableDataset):
    def __init__(self, tok_path, seed, batch_size):
        self.tok_path, self.seed, self.batch_size = tok_path, seed, batch_size

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = random.Random(self.seed * 1000 + (info.id if info else 0))
        tok = Tokenizer.from_file(self.tok_path)
        image_id, eos, pad = tok.token_to_id("<image>"), tok.token_to_id("</s>"), tok.token_to_id("<pad>")
        while True:
            pix, ids, labels = [], [], []
            for _ in range(self.batch_size):
                t = rng.choices(TYPES, weights=[1, 1, 2.0, 1.3, 0.8])[0]
                img, q, a, _ = sample(rng, t)
                prompt = ("USER: <image>\n%s ASSISTANT:" % q).replace("<image>", "<image>" * NUM_IMAGE_TOKENS)
                p = tok.encode(prompt).ids
                ans = tok.encode(" " + a, add_special_tokens=False).ids + [eos]
                pix.append(np.asarray(img, dtype=np.uint8))
                ids.append(p + ans)
                labels.append([-100] * len(p) + ans)
                assert p.count(image_id) == NUM_IMAGE_TOKENS
            n = max(len(x) for x in ids)
            input_ids = torch.full((len(ids), n), pad, dtype=torch.long)
            lab = torch.full((len(ids), n), -100, dtype=torch.long)
            mask = torch.zeros((len(ids), n), dtype=torch.long)
            for i, (x, y) in enumerate(zip(ids, labels)):
                input_ids[i, :len(x)] = torch.tensor(x)
                lab[i, :len(y)] = torch.tensor(y)
                mask[i, :len(x)] = 1
            yield torch.from_numpy(np.stack(pix)), input_ids, mask, lab


def build_model(vocab, ids):
    vcfg = transformers.CLIPVisionConfig(hidden_size=192, intermediate_size=768, num_hidden_layers=4,
                                         num_attention_heads=4, image_size=SIZE, patch_size=PATCH,
                                         hidden_act="quick_gelu", projection_dim=64)
    tcfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                                    num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512,
                                    rms_norm_eps=1e-5, bos_token_id=ids["bos"], eos_token_id=ids["eos"],
                                    pad_token_id=ids["pad"], tie_word_embeddings=True,
                                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    common = dict(vision_config=vcfg, text_config=tcfg, vision_feature_layer=-2,
                  vision_feature_select_strategy="default", projector_hidden_act="gelu",
                  image_seq_length=NUM_IMAGE_TOKENS, tie_word_embeddings=True)
    try:
        cfg = transformers.LlavaConfig(image_token_id=ids["image"], **common)
    except TypeError:
        cfg = transformers.LlavaConfig(image_token_index=ids["image"], **common)
    return transformers.LlavaForConditionalGeneration(cfg)


def train(model, tok_path, minutes, seed, dev):
    batch = 256
    loader = torch.utils.data.DataLoader(Scenes(tok_path, seed, batch), batch_size=None, num_workers=12,
                                         prefetch_factor=4, persistent_workers=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.98), eps=1e-8)
    mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)
    peak, warmup = 1e-3, 300
    start = time.time()
    budget = minutes * 60
    model.train()
    step, ema = 0, None
    for pix, input_ids, mask, labels in loader:
        frac = (time.time() - start) / budget
        if frac >= 1:
            break
        lr = peak * min(1.0, (step + 1) / warmup) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        pv = (pix.to(dev, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(input_ids=input_ids.to(dev), pixel_values=pv, attention_mask=mask.to(dev),
                        labels=labels.to(dev))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = out.loss.item() if ema is None else 0.98 * ema + 0.02 * out.loss.item()
        if step % 250 == 0:
            log("step %d  %.0f s  lr %.2e  loss %.4f" % (step, time.time() - start, lr, ema))
        step += 1
    log("trained %d steps (%d samples) in %.0f s, final loss %.4f" % (step, step * batch, time.time() - start, ema))


def normalize(a):
    return a.strip().lower().rstrip(".")


def evaluate(d, out_dir, seed, per_type):
    """transformers' greedy answers through AutoProcessor and the reloaded float16 checkpoint (in float32)."""
    os.makedirs(out_dir, exist_ok=True)
    processor = transformers.AutoProcessor.from_pretrained(d)
    model = transformers.LlavaForConditionalGeneration.from_pretrained(d, dtype=torch.float32).cuda().eval()
    rng = random.Random(seed)
    items, correct = [], {t: 0 for t in TYPES}
    for t in TYPES:
        for i in range(per_type):
            img, q, a, placed = sample(rng, t)
            name = "%s_%03d.png" % (t, i)
            img.save(os.path.join(out_dir, name))
            img = Image.open(os.path.join(out_dir, name))
            img.load()
            msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}]
            prompt = processor.apply_chat_template(msgs, add_generation_prompt=True)
            enc = processor(images=img, text=prompt, return_tensors="pt").to("cuda")
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=24, do_sample=False)
            new = gen[0, enc["input_ids"].shape[1]:].tolist()
            text = processor.tokenizer.decode(new, skip_special_tokens=True)
            ok = normalize(text) == normalize(a)
            correct[t] += ok
            items.append({"file": name, "type": t, "question": q, "expected": a, "hf_answer": text,
                          "hf_tokens": new, "hf_correct": ok,
                          "objects": [{"shape": k, "color": c, "x": x, "y": y, "r": r} for k, c, x, y, r in placed]})
    acc = {t: correct[t] / per_type for t in TYPES}
    json.dump({"transformers": transformers.__version__, "per_type": per_type, "accuracy": acc, "items": items},
              open(os.path.join(out_dir, "eval.json"), "w"), indent=1)
    log("transformers accuracy per type:", json.dumps(acc))
    return acc


def save(model, tok, ids, d):
    os.makedirs(d, exist_ok=True)
    model.eval().to(torch.float16).save_pretrained(d, safe_serialization=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                                  unk_token="<unk>", pad_token="<pad>", model_max_length=512,
                                                  clean_up_tokenization_spaces=False)
    ip = transformers.CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE},
                                         image_mean=MEAN, image_std=STD, do_resize=True, do_center_crop=True,
                                         do_rescale=True, do_normalize=True, do_convert_rgb=True, resample=3,
                                         rescale_factor=1 / 255)
    proc = transformers.LlavaProcessor(image_processor=ip, tokenizer=hf_tok, patch_size=PATCH,
                                       vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                       image_token="<image>", chat_template=TEMPLATE)
    proc.save_pretrained(d)
    # transformers 5 keeps the image processor inside processor_config.json; transformers 4 and other tools read
    # preprocessor_config.json, so write the same settings there too.
    pc = json.load(open(os.path.join(d, "processor_config.json"))).get("image_processor")
    if pc and not os.path.exists(os.path.join(d, "preprocessor_config.json")):
        json.dump(pc, open(os.path.join(d, "preprocessor_config.json"), "w"), indent=2)
    if not os.path.exists(os.path.join(d, "chat_template.jinja")):
        open(os.path.join(d, "chat_template.jinja"), "w").write(TEMPLATE)
    json.dump({"bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "pad_token_id": ids["pad"],
               "transformers_version": transformers.__version__},
              open(os.path.join(d, "generation_config.json"), "w"), indent=2)
    total = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    log("saved", d, sorted(os.listdir(d)), "%.1f MB" % (total / 1e6))


def main():
    global OUT
    args = list(sys.argv[1:])
    minutes, seed, per_type = 5.0, 7, 200
    while args and args[0].startswith("--"):
        o = args.pop(0)
        if o == "--minutes":
            minutes = float(args.pop(0))
        elif o == "--seed":
            seed = int(args.pop(0))
        elif o == "--per-type":
            per_type = int(args.pop(0))
        else:
            raise SystemExit("unknown option " + o)
    OUT = args[0] if args else "demo"
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tok = build_tokenizer(rng)
    tok_path = os.path.join(OUT, "tokenizer.json")
    tok.save(tok_path)
    ids = {k: tok.token_to_id(v) for k, v in
           {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "image": "<image>"}.items()}
    vocab = tok.get_vocab_size(with_added_tokens=True)
    log("tokenizer: %d tokens" % vocab, ids, "sample:", tok.encode("USER: <image>\nWhat color is the circle? "
                                                                    "ASSISTANT: red").tokens)
    model = build_model(vocab, ids).cuda()
    log("parameters: %.2f M" % (sum(p.numel() for p in model.parameters()) / 1e6))
    train(model, tok_path, minutes, seed, "cuda")
    d = os.path.join(OUT, "model")
    save(model, tok, ids, d)
    evaluate(d, os.path.join(OUT, "eval"), seed + 1000, per_type)


OUT = "demo"
if __name__ == "__main__":
    main()
