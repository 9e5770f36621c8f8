#!/usr/bin/env python3
"""Writes Retina's tiny random LLaVA checkpoints and their golden outputs, computed by Hugging Face transformers.

Run where transformers, torch, tokenizers, pillow and scikit-image are installed (not on the CI machine):

    python3 tools/make_fixtures.py OUT_DIR
    python3 tools/make_fixtures.py --only next,multi [--fixtures src/test/resources/fixtures] OUT_DIR

With --only, just the named later cases are written into OUT_DIR (golden/ and models/<case>/); they read the
committed images and checkpoints from --fixtures, so the earlier cases' files stay exactly as committed, and the
rebuilt tokenizer is checked byte for byte against the committed tokenizer.json first.

OUT_DIR receives images/, models/<case>/ (HF checkpoint directories) and golden/ (JSON and .npz files). The
committed copy lives in src/test/resources/fixtures. Every number the Java tests compare against comes from here:
pixel tensors from the image processors, last-position logits and greedy tokens from the models in float64.
"""
import functools
import json
import math
import os
import shutil
import sys
import traceback

import numpy as np
import torch
from PIL import Image

import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common  # noqa: E402
from fixture_common import BASE_CORPUS  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers

ARGS = list(sys.argv[1:])
ONLY = None
FIXTURES = "src/test/resources/fixtures"
while ARGS and ARGS[0].startswith("--"):
    opt = ARGS.pop(0)
    if opt == "--only":
        ONLY = set(ARGS.pop(0).split(","))
    elif opt == "--fixtures":
        FIXTURES = ARGS.pop(0)
    else:
        raise SystemExit("unknown option " + opt)
OUT = ARGS[0] if ARGS else "fixtures"
SEED = 1234
PROMPT = "What is shown in this image?"
NUM_GREEDY = 32
LOG = []


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    LOG.append(s)


# ---------------------------------------------------------------- tokenizer
CORPUS = BASE_CORPUS * 20


def build_tokenizer():
    """A Llama-style SentencePiece BPE (legacy normalizer, byte fallback) trained on a small corpus."""
    norm = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    trainer_tok.normalizer = norm
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    trainer_tok.train_from_iterator(CORPUS, trainer=trainer)
    model_json = json.loads(trainer_tok.to_str())["model"]
    trained_vocab = sorted(model_json["vocab"].items(), key=lambda kv: kv[1])
    merges = model_json["merges"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in trained_vocab:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = norm
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken("<unk>", special=True, normalized=False),
                            AddedToken("<s>", special=True, normalized=False),
                            AddedToken("</s>", special=True, normalized=False)])
    tok.add_special_tokens([AddedToken("<image>", special=True, normalized=False),
                            AddedToken("<pad>", special=True, normalized=False)])
    return tok


LIST_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


# ---------------------------------------------------------------- images
def make_images(d):
    from skimage import data
    os.makedirs(d, exist_ok=True)
    imgs = {}
    imgs["astronaut"] = Image.fromarray(data.astronaut())            # 512x512 RGB
    imgs["coffee"] = Image.fromarray(data.coffee())                  # 600x400 RGB
    imgs["chelsea"] = Image.fromarray(data.chelsea())                # 451x300 RGB
    imgs["camera"] = Image.fromarray(data.camera())                  # 512x512 L
    a = np.asarray(imgs["chelsea"].resize((200, 133), Image.BICUBIC))
    alpha = np.tile(np.linspace(0, 255, a.shape[1]).astype(np.uint8), (a.shape[0], 1))
    imgs["rgba"] = Image.fromarray(np.dstack([a, alpha]), "RGBA")    # 200x133 RGBA
    imgs["palette"] = imgs["coffee"].resize((160, 107), Image.BICUBIC).convert("P", palette=Image.ADAPTIVE, colors=64)
    imgs["one"] = Image.new("RGB", (1, 1), (200, 30, 90))            # 1x1
    rng = np.random.default_rng(7)
    imgs["wide"] = Image.fromarray(rng.integers(0, 256, (20, 400, 3), dtype=np.uint8))  # 400x20, 20:1
    imgs["tall"] = Image.fromarray(rng.integers(0, 256, (300, 15, 3), dtype=np.uint8))  # 15x300, 1:20
    for name, im in imgs.items():
        im.save(os.path.join(d, name + ".png"))
    imgs["coffee_jpeg"] = None
    imgs["coffee"].save(os.path.join(d, "coffee_jpeg.jpg"), quality=90)
    # Reload from disk so the goldens see exactly the committed bytes.
    out = {}
    for name in imgs:
        path = os.path.join(d, name + (".jpg" if name.endswith("_jpeg") else ".png"))
        out[name] = Image.open(path)
        out[name].load()
        log("image", name, out[name].mode, out[name].size)
    return out


def reference_clip_pixels(img, cfg):
    """CLIPImageProcessor's slow (PIL) path, written out: RGB, shortest edge, BICUBIC, center crop, rescale, normalize."""
    img = img.convert("RGB")
    w, h = img.size
    se = cfg["size"]["shortest_edge"]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = se, int(se * long / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    img = img.resize((nw, nh), Image.BICUBIC)
    ch, cw = cfg["crop_size"]["height"], cfg["crop_size"]["width"]
    top, left = (nh - ch) // 2, (nw - cw) // 2
    arr = np.asarray(img).astype(np.float32)
    # HF pads with zeros when the crop is larger than the image
    canvas = np.zeros((ch, cw, 3), np.float32)
    t0, l0 = max(top, 0), max(left, 0)
    sub = arr[t0:t0 + ch, l0:l0 + cw]
    canvas[t0 - top:t0 - top + sub.shape[0], l0 - left:l0 - left + sub.shape[1]] = sub
    x = canvas * np.float32(cfg["rescale_factor"])
    x = (x - np.array(cfg["image_mean"], np.float32)) / np.array(cfg["image_std"], np.float32)
    return x.transpose(2, 0, 1).astype(np.float32)


def slow_clip_processor(cfg):
    """The PIL-backed CLIP image processor of this transformers version, whatever it is called here."""
    kw = dict(size=cfg["size"], crop_size=cfg["crop_size"], image_mean=cfg["image_mean"], image_std=cfg["image_std"],
              do_center_crop=True, do_resize=True, do_rescale=True, do_normalize=True, do_convert_rgb=True,
              resample=3, rescale_factor=cfg["rescale_factor"])
    candidates = []
    for name in ["CLIPImageProcessorPil", "CLIPImageProcessor"]:
        cls = getattr(transformers, name, None)
        if cls is not None:
            candidates.append((name, cls))
    for name, cls in candidates:
        for extra in [{}, {"backend": "pil"}]:
            try:
                p = cls(**kw, **extra)
                fast = "Fast" in type(p).__name__ or "torchvision" in str(getattr(p, "backend", ""))
                log("image processor candidate", name, extra, type(p).__name__, "fast" if fast else "pil")
                if not fast:
                    return p
            except Exception as e:
                log("image processor candidate failed", name, extra, repr(e)[:200])
    return None


# ---------------------------------------------------------------- models
CASES = [
    # name, vision, text, llava extras, layout
    dict(name="llava15-336-mha",
         vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=336,
                     patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5),
         text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=4, rope_theta=10000.0, tie_word_embeddings=False),
         llava=dict(vision_feature_layer=-2, vision_feature_select_strategy="default", projector_hidden_act="gelu"),
         dtype="float32", layout="v4", images=["astronaut", "coffee", "chelsea", "camera", "rgba", "palette", "one",
                                                 "wide", "tall", "coffee_jpeg"]),
    dict(name="llava-224-gqa-full-tied",
         vision=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3, image_size=224,
                     patch_size=16, hidden_act="gelu", layer_norm_eps=1e-5),
         text=dict(hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=8,
                   num_key_value_heads=2, rope_theta=500000.0, tie_word_embeddings=True,
                   rope_scaling=dict(rope_type="linear", factor=2.0)),
         llava=dict(vision_feature_layer=-1, vision_feature_select_strategy="full", projector_hidden_act="gelu"),
         dtype="bfloat16", layout="v5", images=["chelsea", "wide"]),
    dict(name="llava-30-mqa-llama3rope",
         vision=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=4, num_attention_heads=2, image_size=30,
                     patch_size=6, hidden_act="quick_gelu", layer_norm_eps=1e-5),
         text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=1, rope_theta=500000.0, tie_word_embeddings=False,
                   rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                     original_max_position_embeddings=64)),
         llava=dict(vision_feature_layer=-3, vision_feature_select_strategy="default", projector_hidden_act="gelu"),
         dtype="float16", layout="v5", images=["astronaut", "coffee", "chelsea", "camera", "rgba", "palette", "one",
                                                "wide", "tall", "coffee_jpeg"]),
]


def clip_preprocessor_config(image_size):
    return {
        "crop_size": {"height": image_size, "width": image_size},
        "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        # The goldens come from the PIL processor: naming it makes Retina's --image-processor-backend auto pick PIL.
        "image_processor_type": "CLIPImageProcessorPil",
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3, "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": image_size},
    }


def text_config(case, vocab_size, image_token_id, pad_id):
    t = dict(case["text"])
    rs = t.pop("rope_scaling", None)
    theta = t.pop("rope_theta")
    rp = {"rope_type": "default", "rope_theta": theta}
    if rs:
        rp.update(rs)
        rp["rope_theta"] = theta
    common = dict(vocab_size=vocab_size, max_position_embeddings=4096, rms_norm_eps=1e-5, hidden_act="silu",
                  bos_token_id=1, eos_token_id=2, pad_token_id=pad_id, initializer_range=0.2, attention_bias=False,
                  mlp_bias=False, **t)
    if int(transformers.__version__.split(".")[0]) >= 5:
        return transformers.LlamaConfig(rope_parameters=rp, **common)
    return transformers.LlamaConfig(rope_theta=theta, rope_scaling=rs, **common)


def to_v4_layout(case_dir):
    """Rewrites a saved checkpoint into transformers 4.x spellings: keys and config fields."""
    from safetensors.torch import load_file, save_file
    path = os.path.join(case_dir, "model.safetensors")
    sd = load_file(path)
    new = {}
    for k, v in sd.items():
        nk = k
        if nk.startswith("model.language_model."):
            nk = "language_model.model." + nk[len("model.language_model."):]
        elif nk.startswith("model.vision_tower.vision_model."):
            nk = "vision_tower.vision_model." + nk[len("model.vision_tower.vision_model."):]
        elif nk.startswith("model.vision_tower."):
            nk = "vision_tower.vision_model." + nk[len("model.vision_tower."):]
        elif nk.startswith("model.multi_modal_projector."):
            nk = "multi_modal_projector." + nk[len("model.multi_modal_projector."):]
        elif nk == "lm_head.weight":
            nk = "language_model.lm_head.weight"
        elif nk.startswith("vision_tower.") and not nk.startswith("vision_tower.vision_model."):
            # transformers 5.x save_pretrained already writes language_model.model.* / multi_modal_projector.*, but
            # its CLIP vision tower has no vision_model level: 4.x checkpoints have vision_tower.vision_model.*
            nk = "vision_tower.vision_model." + nk[len("vision_tower."):]
        new[nk] = v.contiguous()
    # split into two shards with an index, as large checkpoints are
    keys = sorted(new)
    half = len(keys) // 2
    shards = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
    weight_map = {}
    total = 0
    for fname, ks in shards.items():
        save_file({k: new[k] for k in ks}, os.path.join(case_dir, fname), metadata={"format": "pt"})
        for k in ks:
            weight_map[k] = fname
            total += new[k].numel() * new[k].element_size()
    os.remove(path)
    with open(os.path.join(case_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    cpath = os.path.join(case_dir, "config.json")
    c = json.load(open(cpath))
    if "image_token_id" in c:
        c["image_token_index"] = c.pop("image_token_id")
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    tc = c.get("text_config", {})
    if "dtype" in tc:
        tc["torch_dtype"] = tc.pop("dtype")
    rp = tc.pop("rope_parameters", None)
    if rp:
        tc["rope_theta"] = rp.get("rope_theta", 10000.0)
        if rp.get("rope_type", "default") != "default":
            tc["rope_scaling"] = {k: v for k, v in rp.items() if k != "rope_theta"}
    vc = c.get("vision_config", {})
    if "dtype" in vc:
        vc["torch_dtype"] = vc.pop("dtype")
    json.dump(c, open(cpath, "w"), indent=2)


def greedy_float64(model, inputs, n):
    ids = inputs["input_ids"]
    toks, margins = [], []
    with torch.no_grad():
        for _ in range(n):
            out = model(input_ids=ids, pixel_values=inputs["pixel_values"], attention_mask=torch.ones_like(ids))
            logits = out.logits[0, -1]
            top2 = torch.topk(logits, 2)
            margins.append(float(top2.values[0] - top2.values[1]))
            nxt = int(top2.indices[0])
            toks.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return toks, margins


def make_case(case, tok, images, out):
    name = case["name"]
    log("=== case", name)
    d = os.path.join(out, "models", name)
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(SEED)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    image_token_id = tok.token_to_id("<image>")
    pad_id = tok.token_to_id("<pad>")
    vcfg = transformers.CLIPVisionConfig(initializer_range=0.2, initializer_factor=1.0, projection_dim=32,
                                         **case["vision"])
    tcfg = text_config(case, vocab_size, image_token_id, pad_id)
    # transformers 5 validates image_seq_length as an int (None is rejected): use the real number of image tokens.
    n_img_tokens = ((case["vision"]["image_size"] // case["vision"]["patch_size"]) ** 2
                    + (1 if case["llava"]["vision_feature_select_strategy"] == "full" else 0))
    cfg = transformers.LlavaConfig(vision_config=vcfg, text_config=tcfg, image_token_index=image_token_id,
                                   image_seq_length=n_img_tokens, tie_word_embeddings=case["text"]["tie_word_embeddings"],
                                   **case["llava"])
    model = transformers.LlavaForConditionalGeneration(cfg).eval()
    # Make the random weights larger than the default init so logits separate clearly between tokens.
    randomize_weights(model)
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[case["dtype"]]
    # Non-persistent buffers (the rotary inv_freq) are not saved and get recomputed on load; keep them at full
    # precision so the in-memory comparison model below does not carry float16/bfloat16-rounded copies of them.
    fresh_buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    model.to(dtype)
    model.save_pretrained(d, safe_serialization=True)
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                                  unk_token="<unk>", pad_token="<pad>", add_bos_token=True,
                                                  add_eos_token=False, model_max_length=4096,
                                                  clean_up_tokenization_spaces=False)
    pcfg = clip_preprocessor_config(case["vision"]["image_size"])
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": pad_id,
                   "transformers_version": transformers.__version__}, f, indent=2)
    if case["layout"] == "v4":
        hf_tok.chat_template = LIST_TEMPLATE
        hf_tok.save_pretrained(d)
        tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
        tc["chat_template"] = LIST_TEMPLATE
        tc["add_bos_token"] = True
        tc["add_eos_token"] = False
        # transformers 4.x knows no "TokenizersBackend" class and no "backend" field: spell it as 4.x wrote it.
        tc.pop("backend", None)
        tc["tokenizer_class"] = "PreTrainedTokenizerFast"
        json.dump(tc, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=2)
        for extra in ["chat_template.jinja", "chat_template.json"]:
            if os.path.exists(os.path.join(d, extra)):
                os.remove(os.path.join(d, extra))
        json.dump(pcfg, open(os.path.join(d, "preprocessor_config.json"), "w"), indent=2)
        to_v4_layout(d)
    else:
        hf_tok.save_pretrained(d)
        tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
        tc.pop("chat_template", None)
        tc["add_bos_token"] = True
        json.dump(tc, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=2)
        with open(os.path.join(d, "chat_template.jinja"), "w") as f:
            f.write(LIST_TEMPLATE)
        json.dump(pcfg, open(os.path.join(d, "preprocessor_config.json"), "w"), indent=2)
    log("files", sorted(os.listdir(d)))

    # Reload from disk in float64: the goldens come from exactly the committed weights.
    ref = transformers.LlavaForConditionalGeneration.from_pretrained(d, dtype=torch.float64).eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(d)
    log("reloaded text config rope:", getattr(ref.config.text_config, "rope_parameters", None),
        getattr(ref.config.text_config, "rope_scaling", None), "tokenizer class", type(ref_tok).__name__)
    mem = model.to(torch.float64).eval()
    with torch.no_grad():
        for n, b in mem.named_buffers():
            if b.is_floating_point():
                b.copy_(fresh_buffers[n].to(b.dtype))

    proc = slow_clip_processor(pcfg)
    golden_pixels = {}
    max_ref_diff = 0.0
    for iname in case["images"]:
        mine = reference_clip_pixels(images[iname], pcfg)
        if proc is not None:
            hf = proc(images=images[iname], return_tensors="np")["pixel_values"][0].astype(np.float32)
            diff = float(np.abs(hf - mine).max())
            max_ref_diff = max(max_ref_diff, diff)
            golden_pixels[iname] = hf
        else:
            golden_pixels[iname] = mine
    log("pixel goldens", name, "HF processor" if proc is not None else "PIL reference",
        "max |hf - written-out reference| =", max_ref_diff)
    np.savez_compressed(os.path.join(out, "golden", "pixels_" + name + ".npz"), **golden_pixels)

    strategy = case["llava"]["vision_feature_select_strategy"]
    n_patches = (case["vision"]["image_size"] // case["vision"]["patch_size"]) ** 2
    num_image_tokens = n_patches + (1 if strategy == "full" else 0)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    rendered = ref_tok.apply_chat_template(messages, chat_template=LIST_TEMPLATE, add_generation_prompt=True,
                                           tokenize=False)
    expanded = rendered.replace("<image>", "<image>" * num_image_tokens)
    input_ids = ref_tok(expanded, add_special_tokens=True, return_tensors="pt")["input_ids"]
    assert int((input_ids == image_token_id).sum()) == num_image_tokens
    results = {"case": name, "transformers": transformers.__version__, "torch": torch.__version__,
               "rendered_prompt": rendered, "num_image_tokens": num_image_tokens, "image_token_id": image_token_id,
               "eos_token_id": 2, "prompts": []}
    for iname in case["images"][:3]:
        pv = torch.from_numpy(golden_pixels[iname]).unsqueeze(0).to(torch.float64)
        inputs = {"input_ids": input_ids, "pixel_values": pv}
        with torch.no_grad():
            out_ = ref(input_ids=input_ids, pixel_values=pv, attention_mask=torch.ones_like(input_ids))
        last = out_.logits[0, -1].tolist()
        with torch.no_grad():
            mem_out = mem(input_ids=input_ids, pixel_values=pv, attention_mask=torch.ones_like(input_ids))
        reload_diff = float((mem_out.logits - out_.logits).abs().max())
        log("reloaded vs in-memory logits max diff", reload_diff)
        assert reload_diff < 1e-9, "checkpoint on disk does not reproduce the model: %g" % reload_diff
        toks, margins = greedy_float64(ref, inputs, NUM_GREEDY)
        cut = toks.index(2) if 2 in toks else len(toks)
        text = ref_tok.decode(toks[:cut], skip_special_tokens=True)
        log(name, iname, "greedy", toks, "min margin %.3g" % min(margins), "text", repr(text))
        results["prompts"].append({"image": iname, "input_ids": input_ids[0].tolist(), "last_logits": last,
                                   "greedy_tokens": toks, "min_margin": min(margins), "text_until_eos": text})
    # cross-check: HF generate (with cache) agrees with the full-recompute loop
    with torch.no_grad():
        g = ref.generate(input_ids=input_ids, pixel_values=torch.from_numpy(golden_pixels[case["images"][0]])
                         .unsqueeze(0).to(torch.float64), attention_mask=torch.ones_like(input_ids),
                         max_new_tokens=NUM_GREEDY, min_new_tokens=NUM_GREEDY, do_sample=False, eos_token_id=None)
    gen = g[0, input_ids.shape[1]:].tolist()
    log("generate() agrees with loop:", gen == results["prompts"][0]["greedy_tokens"])
    results["generate_agrees"] = gen == results["prompts"][0]["greedy_tokens"]
    with open(os.path.join(out, "golden", name + ".json"), "w") as f:
        json.dump(results, f, indent=1)


def tokenizer_goldens(tok, out):
    from transformers import PreTrainedTokenizerFast
    texts = ["USER: <image>\nWhat is shown in this image? ASSISTANT:", "Hello world", " leading space",
             "Le café est chaud. 猫がいます。", "emoji \U0001F600 end", "tabs\tand\nnewlines", "",
             "<s>USER: hi</s>"]
    res = []
    for t in texts:
        enc = tok.encode(t, add_special_tokens=False)
        res.append({"text": t, "ids": enc.ids, "decoded": tok.decode(enc.ids, skip_special_tokens=False)})
    with open(os.path.join(out, "golden", "tokenizer.json"), "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)


def main():
    log("transformers", transformers.__version__, "torch", torch.__version__)
    for sub in ["images", "models", "golden"]:
        os.makedirs(os.path.join(OUT, sub), exist_ok=True)
    images = make_images(os.path.join(OUT, "images"))
    tok = build_tokenizer()
    log("vocab", tok.get_vocab_size(with_added_tokens=True))
    tokenizer_goldens(tok, OUT)
    for case in CASES:
        try:
            make_case(case, tok, images, OUT)
        except Exception:
            log("CASE FAILED", case["name"], traceback.format_exc())
    with open(os.path.join(OUT, "golden", "make_fixtures.log"), "w") as f:
        f.write("\n".join(LOG) + "\n")

# ---------------------------------------------------------------- later cases (--only next,multi)
NEXT_TILE = 30
NEXT_CASE = dict(
    name="llava-next-tiny",
    vision=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2,
                image_size=NEXT_TILE, patch_size=6, hidden_act="quick_gelu", layer_norm_eps=1e-5),
    text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=False),
    llava=dict(vision_feature_layer=-2, vision_feature_select_strategy="default", projector_hidden_act="gelu"),
    # (height, width) in pixels, as HF spells image_grid_pinpoints: 1x2, 2x1, 2x2, 3x1 and 1x3 tiles
    pinpoints=[[NEXT_TILE, 2 * NEXT_TILE], [2 * NEXT_TILE, NEXT_TILE], [2 * NEXT_TILE, 2 * NEXT_TILE],
               [3 * NEXT_TILE, NEXT_TILE], [NEXT_TILE, 3 * NEXT_TILE]],
    images=["astronaut", "coffee", "chelsea", "wide", "tall", "one", "camera", "rgba"],
    prompt_images=["astronaut", "coffee", "chelsea", "wide", "tall", "one"],
    multi=["coffee", "wide"])


def load_committed_images(fixtures):
    out = {}
    for fname in sorted(os.listdir(os.path.join(fixtures, "images"))):
        name = fname.rsplit(".", 1)[0]
        out[name] = Image.open(os.path.join(fixtures, "images", fname))
        out[name].load()
        log("image", name, out[name].mode, out[name].size)
    return out


def hf_tokenizer(tok):
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                                unk_token="<unk>", pad_token="<pad>", add_bos_token=True,
                                                add_eos_token=False, model_max_length=4096,
                                                clean_up_tokenization_spaces=False)


def check_tokenizer_is_committed(tok, fixtures, out):
    """The later cases must share the committed vocabulary: rebuild it and compare the saved bytes."""
    import hashlib
    import tempfile
    committed = os.path.join(fixtures, "models", "llava-30-mqa-llama3rope", "tokenizer.json")
    with tempfile.TemporaryDirectory() as td:
        hf_tokenizer(tok).save_pretrained(td)
        mine = open(os.path.join(td, "tokenizer.json"), "rb").read()
    theirs = open(committed, "rb").read()
    log("tokenizer.json sha256 rebuilt", hashlib.sha256(mine).hexdigest(), "committed",
        hashlib.sha256(theirs).hexdigest())
    assert mine == theirs, "rebuilt tokenizer.json differs from the committed one"
    with tempfile.TemporaryDirectory() as td:
        os.makedirs(os.path.join(td, "golden"))
        tokenizer_goldens(tok, td)
        a = open(os.path.join(td, "golden", "tokenizer.json"), "rb").read()
    b = open(os.path.join(fixtures, "golden", "tokenizer.json"), "rb").read()
    assert a == b, "tokenizer goldens differ from the committed ones"
    log("tokenizer identical to the committed one")


def greedy_float64_kw(model, inputs, n):
    """greedy_float64 for models that take more image inputs than pixel_values (image_sizes)."""
    ids = inputs["input_ids"]
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    toks, margins = [], []
    with torch.no_grad():
        for _ in range(n):
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)
            logits = out.logits[0, -1]
            top2 = torch.topk(logits, 2)
            margins.append(float(top2.values[0] - top2.values[1]))
            nxt = int(top2.indices[0])
            toks.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return toks, margins


randomize_weights = functools.partial(fixture_common.randomize_weights, seed=SEED)


def slow_next_processor(kw):
    names = sorted(n for n in dir(transformers) if "LlavaNext" in n)
    log("transformers LlavaNext names:", names)
    for name in ["LlavaNextImageProcessorPil", "LlavaNextImageProcessor"]:
        cls = getattr(transformers, name, None)
        if cls is None:
            continue
        for extra in [{}, {"backend": "pil"}]:
            try:
                p = cls(**kw, **extra)
                fast = "Fast" in type(p).__name__ or "torchvision" in str(getattr(p, "backend", ""))
                log("next image processor candidate", name, extra, type(p).__name__, "fast" if fast else "pil")
                if not fast:
                    return p
            except Exception as e:
                log("next image processor candidate failed", name, extra, repr(e)[:200])
    raise RuntimeError("no PIL-backed LlavaNext image processor")


def count_image_tokens_by_model(ref, pv, sizes):
    """Fallback: the number of features HF's model packs for one image."""
    m = ref.model if hasattr(ref, "model") else ref
    cfg = ref.config
    feats = m.get_image_features(pixel_values=pv, image_sizes=sizes,
                                 vision_feature_layer=cfg.vision_feature_layer,
                                 vision_feature_select_strategy=cfg.vision_feature_select_strategy)
    if hasattr(feats, "pooler_output") and feats.pooler_output is not None:
        feats = feats.pooler_output
    if isinstance(feats, (list, tuple)):
        return int(feats[0].shape[0])
    return int(feats.shape[0])


def make_next_case(case, tok, images, out):
    name = case["name"]
    log("=== case", name)
    d = os.path.join(out, "models", name)
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(SEED)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    image_token_id = tok.token_to_id("<image>")
    pad_id = tok.token_to_id("<pad>")
    vcfg = transformers.CLIPVisionConfig(initializer_range=0.2, initializer_factor=1.0, projection_dim=16,
                                         **case["vision"])
    tcfg = text_config(case, vocab_size, image_token_id, pad_id)
    n_base = (case["vision"]["image_size"] // case["vision"]["patch_size"]) ** 2
    common = dict(vision_config=vcfg, text_config=tcfg, image_grid_pinpoints=case["pinpoints"],
                  image_seq_length=n_base, tie_word_embeddings=False, **case["llava"])
    try:
        cfg = transformers.LlavaNextConfig(image_token_id=image_token_id, **common)
    except TypeError:
        cfg = transformers.LlavaNextConfig(image_token_index=image_token_id, **common)
    got = getattr(cfg, "image_token_id", None)
    if got is None:
        got = getattr(cfg, "image_token_index", None)
    assert got == image_token_id, "image token id not taken: %r" % got
    model = transformers.LlavaNextForConditionalGeneration(cfg).eval()
    randomize_weights(model)
    log("params", [(n, tuple(p.shape)) for n, p in model.named_parameters() if "newline" in n])
    fresh_buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    model.save_pretrained(d, safe_serialization=True)
    hf_tok = hf_tokenizer(tok)
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": pad_id,
                   "transformers_version": transformers.__version__}, f, indent=2)
    hf_tok.save_pretrained(d)
    tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
    tc.pop("chat_template", None)
    tc["add_bos_token"] = True
    json.dump(tc, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=2)
    with open(os.path.join(d, "chat_template.jinja"), "w") as f:
        f.write(LIST_TEMPLATE)
    tile = case["vision"]["image_size"]
    pkw = dict(size={"shortest_edge": tile}, crop_size={"height": tile, "width": tile},
               image_grid_pinpoints=case["pinpoints"], image_mean=[0.48145466, 0.4578275, 0.40821073],
               image_std=[0.26862954, 0.26130258, 0.27577711], do_resize=True, do_center_crop=True,
               do_rescale=True, do_normalize=True, do_convert_rgb=True, do_pad=True, resample=3,
               rescale_factor=0.00392156862745098)
    proc = slow_next_processor(pkw)
    proc.save_pretrained(d)
    # The goldens come from the PIL processor: name it, so Retina's --image-processor-backend auto picks PIL.
    pc_path = os.path.join(d, "preprocessor_config.json")
    pc = json.load(open(pc_path))
    pc["image_processor_type"] = "LlavaNextImageProcessorPil"
    json.dump(pc, open(pc_path, "w"), indent=2)
    for extra in ["processor_config.json"]:
        if os.path.exists(os.path.join(d, extra)):
            log("processor wrote", extra, open(os.path.join(d, extra)).read())
    log("preprocessor_config.json as HF writes it:", open(os.path.join(d, "preprocessor_config.json")).read())
    log("files", sorted(os.listdir(d)))

    ref = transformers.LlavaNextForConditionalGeneration.from_pretrained(d, dtype=torch.float64).eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(d)
    mem = model.to(torch.float64).eval()
    with torch.no_grad():
        for n, b in mem.named_buffers():
            if b.is_floating_point():
                b.copy_(fresh_buffers[n].to(b.dtype))
    try:
        reproc = transformers.AutoImageProcessor.from_pretrained(d)
        log("AutoImageProcessor reloads", type(reproc).__name__)
    except Exception as e:
        log("AutoImageProcessor reload failed", repr(e)[:200])

    processor = None
    try:
        processor = transformers.LlavaNextProcessor(image_processor=proc, tokenizer=ref_tok,
                                                    patch_size=case["vision"]["patch_size"],
                                                    vision_feature_select_strategy="default",
                                                    num_additional_image_tokens=1, chat_template=LIST_TEMPLATE,
                                                    image_token="<image>")
        log("LlavaNextProcessor", type(processor).__name__)
    except Exception:
        log("LlavaNextProcessor failed", traceback.format_exc())

    golden_pixels = {}
    per_image = {}
    for iname in case["images"]:
        r = proc(images=images[iname], return_tensors="np")
        pv = np.asarray(r["pixel_values"])[0].astype(np.float32)          # (num_patches, 3, tile, tile)
        sizes = [int(x) for x in np.asarray(r["image_sizes"])[0]]          # (height, width)
        golden_pixels[iname] = pv
        from transformers.image_processing_utils import select_best_resolution
        best = select_best_resolution(sizes, case["pinpoints"])
        per_image[iname] = {"image_size": sizes, "num_tiles": int(pv.shape[0]), "best_resolution": list(best)}
        log("next pixels", iname, pv.shape, sizes, "best", best)
    np.savez_compressed(os.path.join(out, "golden", "pixels_" + name + ".npz"), **golden_pixels)

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    rendered = ref_tok.apply_chat_template(messages, chat_template=LIST_TEMPLATE, add_generation_prompt=True,
                                           tokenize=False)
    for iname in case["images"]:
        pv = torch.from_numpy(golden_pixels[iname]).unsqueeze(0).to(torch.float64)
        sizes = torch.tensor([per_image[iname]["image_size"]])
        try:
            n_model = count_image_tokens_by_model(ref, pv, sizes)
        except Exception:
            n_model = None
            log("model token count failed", traceback.format_exc())
        n_proc = None
        if processor is not None:
            enc = processor(images=images[iname], text=rendered, return_tensors="pt")
            n_proc = int((enc["input_ids"] == image_token_id).sum())
            pdiff = float(np.abs(enc["pixel_values"][0].numpy().astype(np.float32) - golden_pixels[iname]).max())
            log("processor pixels vs image processor", iname, pdiff)
        log("num image tokens", iname, "processor", n_proc, "model", n_model)
        assert n_proc is not None or n_model is not None
        assert n_proc is None or n_model is None or n_proc == n_model
        per_image[iname]["num_image_tokens"] = n_proc if n_proc is not None else n_model

    results = {"case": name, "transformers": transformers.__version__, "torch": torch.__version__,
               "rendered_prompt": rendered, "image_token_id": image_token_id, "eos_token_id": 2,
               "image_grid_pinpoints": case["pinpoints"], "images": per_image, "prompts": []}

    def run_prompt(inames, text):
        n_tokens = [per_image[i]["num_image_tokens"] for i in inames]
        expanded = text
        for k in n_tokens:
            expanded = expanded.replace("<image>", "\0" * k, 1)
        expanded = expanded.replace("\0", "<image>")
        input_ids = ref_tok(expanded, add_special_tokens=True, return_tensors="pt")["input_ids"]
        assert int((input_ids == image_token_id).sum()) == sum(n_tokens)
        if processor is not None:
            enc = processor(images=[images[i] for i in inames], text=text, return_tensors="pt")
            assert enc["input_ids"].tolist() == input_ids.tolist(), "processor input_ids differ"
        max_tiles = max(per_image[i]["num_tiles"] for i in inames)
        pv = torch.zeros((len(inames), max_tiles, 3, tile, tile), dtype=torch.float64)
        for j, i in enumerate(inames):
            t = torch.from_numpy(golden_pixels[i]).to(torch.float64)
            pv[j, :t.shape[0]] = t
        sizes = torch.tensor([per_image[i]["image_size"] for i in inames])
        inputs = {"input_ids": input_ids, "pixel_values": pv, "image_sizes": sizes}
        with torch.no_grad():
            o = ref(input_ids=input_ids, pixel_values=pv, image_sizes=sizes, attention_mask=torch.ones_like(input_ids))
            mo = mem(input_ids=input_ids, pixel_values=pv, image_sizes=sizes, attention_mask=torch.ones_like(input_ids))
        reload_diff = float((mo.logits - o.logits).abs().max())
        log("reloaded vs in-memory logits max diff", reload_diff)
        assert reload_diff < 1e-9
        toks, margins = greedy_float64_kw(ref, inputs, NUM_GREEDY)
        cut = toks.index(2) if 2 in toks else len(toks)
        text_out = ref_tok.decode(toks[:cut], skip_special_tokens=True)
        log(name, inames, "tokens", n_tokens, "greedy", toks, "min margin %.3g" % min(margins))
        return {"images": inames, "num_image_tokens": n_tokens, "input_ids": input_ids[0].tolist(),
                "last_logits": o.logits[0, -1].tolist(), "greedy_tokens": toks, "min_margin": min(margins),
                "text_until_eos": text_out}

    for iname in case["prompt_images"]:
        results["prompts"].append(run_prompt([iname], rendered))
    mm = [{"role": "user", "content": [{"type": "image"} for _ in case["multi"]] + [{"type": "text", "text": PROMPT}]}]
    mrendered = ref_tok.apply_chat_template(mm, chat_template=LIST_TEMPLATE, add_generation_prompt=True,
                                            tokenize=False)
    multi = run_prompt(case["multi"], mrendered)
    multi["rendered_prompt"] = mrendered
    results["multi_image_prompt"] = multi
    with open(os.path.join(out, "golden", name + ".json"), "w") as f:
        json.dump(results, f, indent=1)


def make_multi_case(fixtures, images, out, image_names=("coffee", "chelsea")):
    """Two images in one user message on the committed llava15-336-mha checkpoint (read, never rewritten)."""
    name = "llava15-336-mha"
    log("=== multi-image", name, image_names)
    d = os.path.join(fixtures, "models", name)
    ref = transformers.LlavaForConditionalGeneration.from_pretrained(d, dtype=torch.float64).eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(d)
    pix = np.load(os.path.join(fixtures, "golden", "pixels_" + name + ".npz"))
    cfg = json.load(open(os.path.join(d, "preprocessor_config.json")))
    proc = slow_clip_processor(cfg)
    for i in image_names:
        again = proc(images=images[i], return_tensors="np")["pixel_values"][0].astype(np.float32)
        log("committed pixels reproduce", i, float(np.abs(again - pix[i]).max()))
        assert np.array_equal(again, pix[i])
    image_token_id = ref.config.image_token_id if hasattr(ref.config, "image_token_id") else ref.config.image_token_index
    n = 576
    messages = [{"role": "user", "content": [{"type": "image"} for _ in image_names]
                 + [{"type": "text", "text": PROMPT}]}]
    rendered = ref_tok.apply_chat_template(messages, chat_template=LIST_TEMPLATE, add_generation_prompt=True,
                                           tokenize=False)
    expanded = rendered.replace("<image>", "<image>" * n)
    input_ids = ref_tok(expanded, add_special_tokens=True, return_tensors="pt")["input_ids"]
    assert int((input_ids == image_token_id).sum()) == n * len(image_names)
    pv = torch.stack([torch.from_numpy(pix[i]) for i in image_names]).to(torch.float64)
    with torch.no_grad():
        o = ref(input_ids=input_ids, pixel_values=pv, attention_mask=torch.ones_like(input_ids))
    toks, margins = greedy_float64(ref, {"input_ids": input_ids, "pixel_values": pv}, NUM_GREEDY)
    cut = toks.index(2) if 2 in toks else len(toks)
    text = ref_tok.decode(toks[:cut], skip_special_tokens=True)
    log(name, "multi", image_names, "greedy", toks, "min margin %.3g" % min(margins))
    with torch.no_grad():
        g = ref.generate(input_ids=input_ids, pixel_values=pv, attention_mask=torch.ones_like(input_ids),
                         max_new_tokens=NUM_GREEDY, min_new_tokens=NUM_GREEDY, do_sample=False, eos_token_id=None)
    gen = g[0, input_ids.shape[1]:].tolist()
    log("generate() agrees with loop:", gen == toks)
    results = {"case": name, "transformers": transformers.__version__, "torch": torch.__version__,
               "rendered_prompt": rendered, "num_image_tokens": n, "image_token_id": image_token_id,
               "eos_token_id": 2, "images": list(image_names), "generate_agrees": gen == toks,
               "prompts": [{"images": list(image_names), "input_ids": input_ids[0].tolist(),
                            "last_logits": o.logits[0, -1].tolist(), "greedy_tokens": toks,
                            "min_margin": min(margins), "text_until_eos": text}]}
    with open(os.path.join(out, "golden", name + "-multi.json"), "w") as f:
        json.dump(results, f, indent=1)


def main_only(only, fixtures, out):
    log("transformers", transformers.__version__, "torch", torch.__version__, "only", sorted(only))
    for sub in ["models", "golden"]:
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    images = load_committed_images(fixtures)
    tok = build_tokenizer()
    check_tokenizer_is_committed(tok, fixtures, out)
    failed = False
    for key, fn in [("next", lambda: make_next_case(NEXT_CASE, tok, images, out)),
                    ("multi", lambda: make_multi_case(fixtures, images, out))]:
        if key in only:
            try:
                fn()
            except Exception:
                failed = True
                log("CASE FAILED", key, traceback.format_exc())
    with open(os.path.join(out, "golden", "make_fixtures_" + "_".join(sorted(only)) + ".log"), "w") as f:
        f.write("\n".join(LOG) + "\n")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    if ONLY is None:
        main()
    else:
        main_only(ONLY, FIXTURES, OUT)
