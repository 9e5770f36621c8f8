package dev.retina.engine.model;

import java.util.Map;

/**
 * Test-only scalar reference of HF's LlavaForConditionalGeneration in double precision, loop by loop as
 * modeling_clip.py / modeling_llava.py / modeling_llama.py read, without the KV cache: the independent check of the
 * DJL plumbing (transposes, head grouping, fusing, rotary halves) on tiny checkpoints.
 */
final class NaiveLlava {
    private final LlavaConfig c;
    private final Map<String, TinyCheckpoint.Tensor> w;

    NaiveLlava(LlavaConfig config, Map<String, TinyCheckpoint.Tensor> weights) {
        this.c = config;
        this.w = weights;
    }

    private double[] p(String name) {
        float[] f = w.get(name).values();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return d;
    }

    /** y = W x + b for each row of x; W (out, in) row-major. */
    private double[][] linear(double[][] x, String prefix, boolean bias) {
        double[] wt = p(prefix + ".weight");
        double[] b = bias ? p(prefix + ".bias") : null;
        int in = x[0].length;
        int out = wt.length / in;
        double[][] y = new double[x.length][out];
        for (int t = 0; t < x.length; t++)
            for (int o = 0; o < out; o++) {
                double s = b == null ? 0 : b[o];
                for (int i = 0; i < in; i++) s += wt[o * in + i] * x[t][i];
                y[t][o] = s;
            }
        return y;
    }

    private double[][] layerNorm(double[][] x, String prefix, double eps) {
        double[] g = p(prefix + ".weight");
        double[] b = p(prefix + ".bias");
        double[][] y = new double[x.length][];
        for (int t = 0; t < x.length; t++) {
            double mean = 0, var = 0;
            for (double v : x[t]) mean += v;
            mean /= x[t].length;
            for (double v : x[t]) var += (v - mean) * (v - mean);
            var /= x[t].length;
            y[t] = new double[x[t].length];
            for (int i = 0; i < x[t].length; i++) y[t][i] = (x[t][i] - mean) / Math.sqrt(var + eps) * g[i] + b[i];
        }
        return y;
    }

    private double[][] rmsNorm(double[][] x, String prefix) {
        double[] g = p(prefix + ".weight");
        double[][] y = new double[x.length][];
        for (int t = 0; t < x.length; t++) {
            double ms = 0;
            for (double v : x[t]) ms += v * v;
            ms /= x[t].length;
            y[t] = new double[x[t].length];
            for (int i = 0; i < x[t].length; i++) y[t][i] = x[t][i] / Math.sqrt(ms + c.textConfig().rmsNormEps()) * g[i];
        }
        return y;
    }

    private static double act(double x, String name) {
        return switch (name) {
            case "gelu" -> 0.5 * x * (1 + erf(x / Math.sqrt(2)));
            case "quick_gelu" -> x / (1 + Math.exp(-1.702 * x));
            case "silu" -> x / (1 + Math.exp(-x));
            default -> throw new IllegalArgumentException(name);
        };
    }

    /** erf by its Taylor series (|x| < 3) or continued fraction: ~1e-15, plenty against float32. */
    static double erf(double x) {
        double ax = Math.abs(x);
        double r;
        if (ax < 3) {
            double sum = ax, term = ax;
            for (int n = 1; n < 80; n++) {
                term *= -ax * ax / n;
                sum += term / (2 * n + 1);
            }
            r = 2 / Math.sqrt(Math.PI) * sum;
        } else {
            double f = 0;
            for (int n = 60; n >= 1; n--) f = n / 2.0 / (ax + f);
            r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
        }
        return x < 0 ? -r : r;
    }

    private static double[][] map(double[][] x, String name) {
        double[][] y = new double[x.length][];
        for (int t = 0; t < x.length; t++) {
            y[t] = new double[x[t].length];
            for (int i = 0; i < y[t].length; i++) y[t][i] = act(x[t][i], name);
        }
        return y;
    }

    private static double[][] add(double[][] a, double[][] b) {
        double[][] y = new double[a.length][a[0].length];
        for (int t = 0; t < a.length; t++) for (int i = 0; i < a[0].length; i++) y[t][i] = a[t][i] + b[t][i];
        return y;
    }

    /** Multi-head attention; kv head of head h is h / (heads / kvHeads); causal if asked. */
    private static double[][] attention(double[][] q, double[][] k, double[][] v, int heads, int kvHeads, int d,
                                        boolean causal) {
        int n = q.length;
        double[][] out = new double[n][heads * d];
        for (int h = 0; h < heads; h++) {
            int kh = h / (heads / kvHeads);
            for (int i = 0; i < n; i++) {
                int last = causal ? i : n - 1;
                double[] s = new double[last + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= last; j++) {
                    double dot = 0;
                    for (int e = 0; e < d; e++) dot += q[i][h * d + e] * k[j][kh * d + e];
                    s[j] = dot / Math.sqrt(d);
                    max = Math.max(max, s[j]);
                }
                double z = 0;
                for (int j = 0; j <= last; j++) z += s[j] = Math.exp(s[j] - max);
                for (int j = 0; j <= last; j++)
                    for (int e = 0; e < d; e++) out[i][h * d + e] += s[j] / z * v[j][kh * d + e];
            }
        }
        return out;
    }

    /** (numImageTokens, textHidden) features of one (3, H, W) image. */
    double[][] imageFeatures(float[] pixels) {
        var vc = c.visionConfig();
        int ps = vc.patchSize(), g = vc.imageSize() / ps, hid = vc.hiddenSize(), size = vc.imageSize();
        double[] conv = p("vision_tower.embeddings.patch_embedding.weight");
        double[] cls = p("vision_tower.embeddings.class_embedding");
        double[] pos = p("vision_tower.embeddings.position_embedding.weight");
        double[][] x = new double[g * g + 1][hid];
        for (int o = 0; o < hid; o++) x[0][o] = cls[o] + pos[o];
        for (int gy = 0; gy < g; gy++)
            for (int gx = 0; gx < g; gx++)
                for (int o = 0; o < hid; o++) {
                    double s = 0;
                    for (int ch = 0; ch < 3; ch++)
                        for (int ky = 0; ky < ps; ky++)
                            for (int kx = 0; kx < ps; kx++)
                                s += conv[((o * 3 + ch) * ps + ky) * ps + kx]
                                        * pixels[(ch * size + gy * ps + ky) * size + gx * ps + kx];
                    x[1 + gy * g + gx][o] = s + pos[(1 + gy * g + gx) * hid + o];
                }
        double[][][] hs = new double[vc.numHiddenLayers() + 1][][];
        hs[0] = layerNorm(x, "vision_tower.pre_layrnorm", vc.layerNormEps());
        for (int l = 0; l < c.numVisionLayersToRun(); l++) {
            String pre = "vision_tower.encoder.layers." + l + ".";
            double[][] h = layerNorm(hs[l], pre + "layer_norm1", vc.layerNormEps());
            double[][] a = attention(linear(h, pre + "self_attn.q_proj", true), linear(h, pre + "self_attn.k_proj", true),
                    linear(h, pre + "self_attn.v_proj", true), vc.numAttentionHeads(), vc.numAttentionHeads(),
                    vc.headDim(), false);
            double[][] r = add(hs[l], linear(a, pre + "self_attn.out_proj", true));
            double[][] m = linear(map(linear(layerNorm(r, pre + "layer_norm2", vc.layerNormEps()), pre + "mlp.fc1", true),
                    vc.hiddenAct()), pre + "mlp.fc2", true);
            hs[l + 1] = add(r, m);
        }
        int skip = c.visionFeatureSelectStrategy().equals("default") ? 1 : 0;
        int layers = c.visionFeatureLayers().size();
        double[][] feats = new double[g * g + 1 - skip][hid * layers];
        for (int li = 0; li < layers; li++) {
            double[][] sel = hs[c.resolveVisionLayer(c.visionFeatureLayers().get(li))];
            for (int t = 0; t < feats.length; t++) System.arraycopy(sel[t + skip], 0, feats[t], li * hid, hid);
        }
        return linear(map(linear(feats, "multi_modal_projector.linear_1", true), c.projectorHiddenAct()),
                "multi_modal_projector.linear_2", true);
    }

    /** Logits at every position for a prompt (image tokens replaced by the image's features in order). */
    double[][] logits(int[] ids, float[] pixels) {
        var tc = c.textConfig();
        int hid = tc.hiddenSize(), d = tc.headDim();
        double[] embed = p("language_model.embed_tokens.weight");
        double[][] img = pixels == null ? null : imageFeatures(pixels);
        double[][] x = new double[ids.length][hid];
        int k = 0;
        for (int t = 0; t < ids.length; t++) {
            if (ids[t] == c.imageTokenIndex() && img != null) x[t] = img[k++].clone();
            else for (int i = 0; i < hid; i++) x[t][i] = embed[ids[t] * hid + i];
        }
        float[] inv = RotaryEmbedding.inverseFrequencies(tc.rope(), d);
        for (int l = 0; l < tc.numHiddenLayers(); l++) {
            String pre = "language_model.layers." + l + ".";
            double[][] h = rmsNorm(x, pre + "input_layernorm");
            double[][] q = linear(h, pre + "self_attn.q_proj", false);
            double[][] kk = linear(h, pre + "self_attn.k_proj", false);
            double[][] v = linear(h, pre + "self_attn.v_proj", false);
            rope(q, tc.numAttentionHeads(), d, inv);
            rope(kk, tc.numKeyValueHeads(), d, inv);
            double[][] a = attention(q, kk, v, tc.numAttentionHeads(), tc.numKeyValueHeads(), d, true);
            double[][] r = add(x, linear(a, pre + "self_attn.o_proj", false));
            double[][] n = rmsNorm(r, pre + "post_attention_layernorm");
            double[][] gate = map(linear(n, pre + "mlp.gate_proj", false), "silu");
            double[][] up = linear(n, pre + "mlp.up_proj", false);
            for (int t = 0; t < gate.length; t++) for (int i = 0; i < gate[t].length; i++) gate[t][i] *= up[t][i];
            x = add(r, linear(gate, pre + "mlp.down_proj", false));
        }
        double[][] normed = rmsNorm(x, "language_model.norm");
        return linear(normed, w.containsKey("lm_head.weight") ? "lm_head" : "language_model.embed_tokens", false);
    }

    /** In place: x * cos + rotate_half(x) * sin per head, position = row index. */
    private static void rope(double[][] x, int heads, int d, float[] inv) {
        int half = d / 2;
        for (int t = 0; t < x.length; t++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < half; i++) {
                    double angle = (double) t * inv[i];
                    double a = x[t][h * d + i], b = x[t][h * d + half + i];
                    x[t][h * d + i] = a * Math.cos(angle) - b * Math.sin(angle);
                    x[t][h * d + half + i] = b * Math.cos(angle) + a * Math.sin(angle);
                }
    }
}
