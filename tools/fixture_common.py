"""What tools/make_fixtures.py and tools/parity_sweep.py share: the tokenizer training corpus and the weight draw."""
import math

import torch

BASE_CORPUS = [
    "USER: What is shown in this image? ASSISTANT: The image shows a cat sitting on a red chair.",
    "USER: Describe the picture in detail. ASSISTANT: A woman in a space suit holds a helmet and a flag.",
    "A cup of coffee with a heart drawn in the foam, on a saucer, on a wooden table.",
    "The quick brown fox jumps over the lazy dog. What color is the sky? It is blue.",
    "Two photos: the first shows a camera man, the second shows a rocket launch at night.",
    "Please answer briefly. How many people are there? There are three people standing together.",
    "Le café est chaud. Das Bild zeigt eine Katze. 猫がいます。 Ñandú, naïve, façade, über.",
    "Numbers like 1, 2, 3, 42 and 2024 appear in text; so do symbols: {}, [], (), <>, #, @, %.",
    "She said: \"It's a beautiful day!\" and he replied, 'Indeed.' Then they walked to the park.",
    "images, pictures, photographs, drawings, paintings, colors, shapes, animals, people, objects",
]


def randomize_weights(model, seed):
    """Weights larger than the default init, so logits separate clearly between tokens."""
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for pname, p in model.named_parameters():
            if "norm" in pname and pname.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif pname.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif pname.endswith("image_newline"):
                # large enough that a misplaced newline row changes the logits visibly
                p.copy_(1.0 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[-1] if p.dim() > 1 else 1
                if p.dim() == 4:
                    fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                std = 1.0 / math.sqrt(fan_in) if p.dim() > 1 else 0.02
                if "embed" in pname or "embedding" in pname:
                    std = 0.5
                p.copy_(std * torch.randn(p.shape, generator=g))
