#!/usr/bin/env python3
"""Hugging Face transformers baseline for Retina's benchmarks, on the same GPU.

Builds a llava-1.5-7b-shaped LlavaForConditionalGeneration with random fp16 weights (no download), then times
greedy generation of OUTPUT_LEN tokens after a PROMPT_LEN-token prompt (576 image tokens + text) at batch 1 and at
static batches, printing a table: TTFT (prefill + first token), TPOT (mean time per later token), requests/s and
output tokens/s. Usage: python3 tools/bench_hf.py [--batches 1,32,64] [--prompt-len 606] [--output-len 128]
"""
import argparse
import time

import torch
import transformers


def build(device):
    vision = transformers.CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                           num_attention_heads=16, image_size=336, patch_size=14,
                                           hidden_act="quick_gelu", projection_dim=768)
    text = transformers.LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                    num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                                    rms_norm_eps=1e-5, pad_token_id=32001)
    cfg = transformers.LlavaConfig(vision_config=vision, text_config=text, image_token_index=32000,
                                   image_seq_length=576, vision_feature_layer=-2,
                                   vision_feature_select_strategy="default", projector_hidden_act="gelu")
    with torch.device(device):
        model = transformers.LlavaForConditionalGeneration(cfg).to(torch.float16).eval()
    return model


def inputs(batch, prompt_len, device):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 32000, (batch, prompt_len), generator=g)
    ids[:, 1:577] = 32000
    ids[:, 0] = 1
    pixels = torch.randn(batch, 3, 336, 336, generator=g).to(torch.float16)
    return ids.to(device), pixels.to(device)


def timed_generate(model, ids, pixels, new_tokens):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=ids, pixel_values=pixels, attention_mask=torch.ones_like(ids),
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                             eos_token_id=None, pad_token_id=32001)
    torch.cuda.synchronize()
    assert out.shape[1] == ids.shape[1] + new_tokens
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,32,64")
    ap.add_argument("--prompt-len", type=int, default=606)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    device = "cuda"
    t0 = time.perf_counter()
    model = build(device)
    print(f"transformers {transformers.__version__} torch {torch.__version__} {torch.cuda.get_device_name()}; "
          f"model built in {time.perf_counter() - t0:.1f}s", flush=True)
    ids, px = inputs(1, a.prompt_len, device)
    timed_generate(model, ids, px, 4)  # warm-up
    rows = []
    for b in [int(x) for x in a.batches.split(",")]:
        ids, px = inputs(b, a.prompt_len, device)
        ttft = sorted(timed_generate(model, ids, px, 1) for _ in range(a.repeats))[a.repeats // 2]
        total = timed_generate(model, ids, px, a.output_len)
        tpot = (total - ttft) / (a.output_len - 1)
        rows.append((b, ttft * 1e3, tpot * 1e3, b / total, b * a.output_len / total))
        print(f"batch {b}: ttft {ttft * 1e3:.1f} ms, tpot {tpot * 1e3:.2f} ms, total {total:.2f} s", flush=True)
        del ids, px
        torch.cuda.empty_cache()
    print(f"\nHF transformers, llava-1.5-7b shape, fp16, prompt {a.prompt_len} (576 image), output {a.output_len}")
    print(f"{'batch':>6} {'TTFT ms':>9} {'TPOT ms':>9} {'req/s':>8} {'out tok/s':>10}")
    for b, ttft, tpot, rps, tps in rows:
        print(f"{b:>6} {ttft:>9.1f} {tpot:>9.2f} {rps:>8.2f} {tps:>10.0f}")


if __name__ == "__main__":
    main()
