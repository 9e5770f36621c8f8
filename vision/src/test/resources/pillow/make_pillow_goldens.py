#!/usr/bin/env python3
"""Writes the Pillow cross-check set for vision's tests: small encoded images and the SHA-256 of what Pillow makes
of them. Run with any Python that has Pillow (no numpy needed), from this directory:  python3 make_pillow_goldens.py

decode.txt:  FILE WIDTH HEIGHT SHA256   of ImageOps.exif_transpose(Image.open(FILE)).convert("RGB").tobytes()
resize.txt:  FILE NEW_WIDTH NEW_HEIGHT SHA256   of Image.open(FILE).convert("RGB").resize((w, h), BICUBIC).tobytes()
"""
import hashlib
import os
import random

import PIL
from PIL import Image, ImageOps

random.seed(5)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def smooth(w, h):
    data = bytes((x * 3 + y * 5 + c * 40 + random.randint(0, 20)) % 256 for y in range(h) for x in range(w)
                 for c in range(3))
    return Image.frombytes("RGB", (w, h), data)


def noise(w, h):
    return Image.frombytes("RGB", (w, h), bytes(random.randint(0, 255) for _ in range(w * h * 3)))


decode = []


def dec(name, im, fmt, **kw):
    im.save(name, fmt, **kw)
    rgb = ImageOps.exif_transpose(Image.open(name)).convert("RGB")
    decode.append("%s %d %d %s" % (name, rgb.size[0], rgb.size[1], sha(rgb.tobytes())))


base = smooth(61, 47)
dec("rgb.png", base, "PNG")
dec("l.png", base.convert("L"), "PNG")
dec("la.png", Image.merge("LA", (base.convert("L"), base.getchannel(0))), "PNG")
rgba = base.convert("RGBA")
rgba.putalpha(base.getchannel(1))
dec("rgba.png", rgba, "PNG")
p = base.convert("P", palette=Image.ADAPTIVE, colors=37)
dec("p.png", p, "PNG")
dec("ptrans.png", p, "PNG", transparency=3)
dec("one.png", base.convert("1"), "PNG")
i16 = Image.frombytes("I;16", (61, 47), bytes(random.randint(0, 3) if k % 2 else random.randint(0, 255)
                                              for k in range(61 * 47 * 2)))
dec("i16.png", i16, "PNG")
dec("p.gif", p, "GIF")
dec("rgb.bmp", base, "BMP")
dec("p.bmp", p, "BMP")
dec("rgb.tif", base, "TIFF")
dec("l.jpg", base.convert("L"), "JPEG", quality=90)
dec("q90_420.jpg", base, "JPEG", quality=90)
dec("q75_444.jpg", base, "JPEG", quality=75, subsampling=0)
dec("q95_422.jpg", base, "JPEG", quality=95, subsampling=1)
for o in range(1, 9):
    ex = Image.Exif()
    ex[0x0112] = o
    dec("exif%d.jpg" % o, base, "JPEG", quality=90, exif=ex.tobytes())
    dec("exif%d.png" % o, base, "PNG", exif=ex.tobytes())

# WebP through libwebp (lossy with and without alpha, lossless), CMYK JPEG (Pillow writes Adobe-inverted CMYK;
# convert("RGB") uses its own formula, no ICC), and a GIF whose only frame is smaller than its logical screen.
dec("lossy.webp", base, "WEBP", quality=80)
dec("lossy_alpha.webp", rgba, "WEBP", quality=70)
dec("lossless.webp", base, "WEBP", lossless=True)
dec("lossless_alpha.webp", rgba, "WEBP", lossless=True)
cmyk = Image.merge("CMYK", (base.getchannel(0), base.getchannel(1), base.getchannel(2),
                            base.convert("L").point(lambda v: v // 3)))
dec("cmyk.jpg", cmyk, "JPEG", quality=90)
dec("cmyk_q75_444.jpg", cmyk, "JPEG", quality=75, subsampling=0)


def offset_gif(name, im, screen, offset, transparency=None):
    """Saves im (mode P) as a one-frame GIF, then widens the logical screen and moves the frame by patching bytes."""
    kw = {} if transparency is None else {"transparency": transparency}
    im.save(name, "GIF", **kw)
    b = bytearray(open(name, "rb").read())
    b[6:10] = bytes([screen[0] & 255, screen[0] >> 8, screen[1] & 255, screen[1] >> 8])
    i = b.index(b"\x2c", 13 + 3 * (2 << (b[10] & 7)) if b[10] & 0x80 else 13)  # image descriptor
    b[i + 1:i + 5] = bytes([offset[0] & 255, offset[0] >> 8, offset[1] & 255, offset[1] >> 8])
    open(name, "wb").write(bytes(b))
    rgb = ImageOps.exif_transpose(Image.open(name)).convert("RGB")
    decode.append("%s %d %d %s" % (name, rgb.size[0], rgb.size[1], sha(rgb.tobytes())))


small = base.crop((0, 0, 20, 15)).convert("P", palette=Image.ADAPTIVE, colors=16)
offset_gif("offset.gif", small, (31, 24), (7, 5))
offset_gif("offset_trans.gif", small, (31, 24), (3, 8), transparency=2)

resize = []
inputs = {"smooth_200x133.png": smooth(200, 133), "noise_64x48.png": noise(64, 48), "noise_40x3.png": noise(40, 3),
          "one_1x1.png": noise(1, 1)}
for name, im in inputs.items():
    im.save(name, "PNG")
targets = {"smooth_200x133.png": [(505, 336), (224, 149), (30, 20), (200, 57), (71, 133), (336, 336)],
           "noise_64x48.png": [(448, 336), (30, 22), (7, 5), (64, 200), (13, 48)],
           "noise_40x3.png": [(6720 // 20, 25), (5, 1), (40, 1)],
           "one_1x1.png": [(336, 336), (30, 30)]}
for name, sizes in targets.items():
    for (w, h) in sizes:
        out = Image.open(name).convert("RGB").resize((w, h), Image.BICUBIC)
        resize.append("%s %d %d %s" % (name, w, h, sha(out.tobytes())))

header = "# Pillow %s\n" % PIL.__version__
open("decode.txt", "w").write(header + "\n".join(decode) + "\n")
open("resize.txt", "w").write(header + "\n".join(resize) + "\n")
