#!/usr/bin/env python3
"""Goldens for Retina's torchvision image-processor backend (transformers 5's default CLIPImageProcessor and
LlavaNextImageProcessor), computed by torch/torchvision/transformers where they are installed:

    python3 tools/torchvision_goldens.py OUT_DIR

Writes OUT_DIR/torchvision_resize.npz: for each committed fixture image (converted to RGB as transformers does) and a
list of target sizes, the uint8 tensor that torchvision's antialiased bicubic resize gives (key IMAGE__HxW, shape
(3, H, W)); and OUT_DIR/torchvision_pixels.npz / .json: pixel_values of both backends of CLIPImageProcessor and
LlavaNextImageProcessor for small configs (full float32 arrays), with SHA-256 hashes of the float32 bytes for the
336 and 224 configs.
"""
import hashlib
import json
import os
import sys

import numpy as np
import torch
import transformers
from PIL import Image
from torchvision.transforms.v2 import functional as F
from torchvision.transforms import InterpolationMode

OUT = sys.argv[1]
IMAGES = "src/test/resources/fixtures/images"
SIZES = [(17, 23), (64, 64), (45, 90), (100, 37), (3, 200), (120, 5), (31, 31), (7, 7)]
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(np.asarray(a, dtype="<f4")).tobytes()).hexdigest()


def clip_cfg(s, next_=False, pins=None):
    c = dict(size={"shortest_edge": s}, crop_size={"height": s, "width": s}, image_mean=MEAN, image_std=STD,
             do_resize=True, do_center_crop=True, do_rescale=True, do_normalize=True, do_convert_rgb=True,
             resample=3, rescale_factor=0.00392156862745098)
    if next_:
        c.update(image_grid_pinpoints=pins, do_pad=True)
    return c


def main():
    os.makedirs(OUT, exist_ok=True)
    resize, pixels, meta = {}, {}, {"transformers": transformers.__version__, "torch": torch.__version__,
                                    "hashes": {}}
    names = sorted(os.listdir(IMAGES))
    for f in names:
        n = f.rsplit(".", 1)[0]
        im = Image.open(os.path.join(IMAGES, f))
        im.load()
        t = F.pil_to_tensor(im.convert("RGB"))
        for (h, w) in SIZES:
            resize["%s__%dx%d" % (n, h, w)] = F.resize(t, [h, w], interpolation=InterpolationMode.BICUBIC,
                                                        antialias=True).numpy()
    pins = [[30, 60], [60, 30], [60, 60], [90, 30], [30, 90]]
    configs = {"clip30": ("clip", clip_cfg(30)), "clip224": ("clip", clip_cfg(224)),
               "clip336": ("clip", clip_cfg(336)), "next30": ("next", clip_cfg(30, True, pins)),
               "next336": ("next", clip_cfg(336, True, [[336, 672], [672, 336], [672, 672], [1008, 336],
                                                         [336, 1008]]))}
    for cname, (kind, cfg) in configs.items():
        tv = (transformers.LlavaNextImageProcessor if kind == "next" else transformers.CLIPImageProcessor)(**cfg)
        pil = getattr(transformers, "LlavaNextImageProcessorPil" if kind == "next" else "CLIPImageProcessorPil")(**cfg)
        meta["hashes"][cname] = {"classes": [type(tv).__name__, type(pil).__name__]}
        for f in names:
            n = f.rsplit(".", 1)[0]
            im = Image.open(os.path.join(IMAGES, f))
            im.load()
            rec = {}
            for tag, p in (("torchvision", tv), ("pil", pil)):
                pv = p(images=[im], return_tensors="pt")["pixel_values"][0].numpy().astype(np.float32)
                rec[tag] = {"shape": list(pv.shape), "sha256": sha(pv)}
                if cname.endswith("30"):
                    pixels["%s__%s__%s" % (cname, tag, n)] = pv
            meta["hashes"][cname][n] = rec
    np.savez_compressed(os.path.join(OUT, "torchvision_resize.npz"), **resize)
    np.savez_compressed(os.path.join(OUT, "torchvision_pixels.npz"), **pixels)
    json.dump(meta, open(os.path.join(OUT, "torchvision_pixels.json"), "w"), indent=1)
    print("resize goldens", len(resize), "pixel arrays", len(pixels))


if __name__ == "__main__":
    main()
