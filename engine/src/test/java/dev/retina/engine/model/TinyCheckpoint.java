package dev.retina.engine.model;

import ai.djl.util.JsonUtils;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/** Test factory: tiny random LLaVA checkpoints (config.json + safetensors) in either transformers layout. */
final class TinyCheckpoint {
    /** A tensor to write: float values, shape, stored dtype (F32, F16 or BF16). */
    record Tensor(float[] values, long[] shape, String dtype) {
    }

    private TinyCheckpoint() {
    }

    /** Tiny config: vision 28/7 (16 patches), 2 vision layers, 2 text layers, GQA 4 heads over 2 KV heads. */
    static JsonObject config(boolean v5, boolean tied, String strategy, int featureLayer) {
        JsonObject vision = new JsonObject();
        vision.addProperty("hidden_size", 16);
        vision.addProperty("intermediate_size", 32);
        vision.addProperty("num_hidden_layers", 2);
        vision.addProperty("num_attention_heads", 2);
        vision.addProperty("image_size", 28);
        vision.addProperty("patch_size", 7);
        vision.addProperty("hidden_act", "quick_gelu");
        vision.addProperty("model_type", "clip_vision_model");
        JsonObject text = new JsonObject();
        text.addProperty("vocab_size", 64);
        text.addProperty("hidden_size", 32);
        text.addProperty("intermediate_size", 48);
        text.addProperty("num_hidden_layers", 2);
        text.addProperty("num_attention_heads", 4);
        text.addProperty("num_key_value_heads", 2);
        text.addProperty("max_position_embeddings", 128);
        text.addProperty("rms_norm_eps", 1e-5);
        text.addProperty("model_type", "llama");
        JsonObject root = new JsonObject();
        if (v5) {
            JsonObject rope = new JsonObject();
            rope.addProperty("rope_type", "linear");
            rope.addProperty("rope_theta", 10000.0);
            rope.addProperty("factor", 2.0);
            text.add("rope_parameters", rope);
            text.addProperty("tie_word_embeddings", tied);
            root.addProperty("image_token_id", 60);
            root.addProperty("dtype", "float32");
        } else {
            text.addProperty("rope_theta", 10000.0);
            JsonObject scaling = new JsonObject();
            scaling.addProperty("type", "linear");
            scaling.addProperty("factor", 2.0);
            text.add("rope_scaling", scaling);
            root.addProperty("image_token_index", 60);
            root.addProperty("torch_dtype", "float32");
            root.addProperty("tie_word_embeddings", tied);
        }
        root.add("vision_config", vision);
        root.add("text_config", text);
        root.addProperty("vision_feature_layer", featureLayer);
        root.addProperty("vision_feature_select_strategy", strategy);
        root.addProperty("projector_hidden_act", "gelu");
        return root;
    }

    /** Random weights in canonical (5.x, no model. prefix) names for a config made by {@link #config}. */
    static Map<String, Tensor> weights(LlavaConfig c, long seed, String dtype) {
        Random rnd = new Random(seed);
        Map<String, Tensor> w = new TreeMap<>();
        var v = c.visionConfig();
        var t = c.textConfig();
        int vh = v.hiddenSize();
        int th = t.hiddenSize();
        put(w, rnd, "vision_tower.embeddings.patch_embedding.weight", dtype, 0.2f, vh, 3, v.patchSize(), v.patchSize());
        put(w, rnd, "vision_tower.embeddings.class_embedding", dtype, 0.5f, vh);
        put(w, rnd, "vision_tower.embeddings.position_embedding.weight", dtype, 0.5f, v.numPatches() + 1, vh);
        norm(w, rnd, "vision_tower.pre_layrnorm", dtype, vh, true);
        norm(w, rnd, "vision_tower.post_layernorm", dtype, vh, true);
        for (int i = 0; i < v.numHiddenLayers(); i++) {
            String l = "vision_tower.encoder.layers." + i + ".";
            for (String p : new String[] {"q_proj", "k_proj", "v_proj", "out_proj"}) {
                put(w, rnd, l + "self_attn." + p + ".weight", dtype, 0.25f, vh, vh);
                put(w, rnd, l + "self_attn." + p + ".bias", dtype, 0.05f, vh);
            }
            norm(w, rnd, l + "layer_norm1", dtype, vh, true);
            norm(w, rnd, l + "layer_norm2", dtype, vh, true);
            put(w, rnd, l + "mlp.fc1.weight", dtype, 0.25f, v.intermediateSize(), vh);
            put(w, rnd, l + "mlp.fc1.bias", dtype, 0.05f, v.intermediateSize());
            put(w, rnd, l + "mlp.fc2.weight", dtype, 0.18f, vh, v.intermediateSize());
            put(w, rnd, l + "mlp.fc2.bias", dtype, 0.05f, vh);
        }
        put(w, rnd, "multi_modal_projector.linear_1.weight", dtype, 0.25f, th, c.projectorInputSize());
        put(w, rnd, "multi_modal_projector.linear_1.bias", dtype, 0.05f, th);
        put(w, rnd, "multi_modal_projector.linear_2.weight", dtype, 0.18f, th, th);
        put(w, rnd, "multi_modal_projector.linear_2.bias", dtype, 0.05f, th);
        int q = t.numAttentionHeads() * t.headDim();
        int kv = t.numKeyValueHeads() * t.headDim();
        put(w, rnd, "language_model.embed_tokens.weight", dtype, 0.5f, t.vocabSize(), th);
        for (int i = 0; i < t.numHiddenLayers(); i++) {
            String l = "language_model.layers." + i + ".";
            put(w, rnd, l + "self_attn.q_proj.weight", dtype, 0.18f, q, th);
            put(w, rnd, l + "self_attn.k_proj.weight", dtype, 0.18f, kv, th);
            put(w, rnd, l + "self_attn.v_proj.weight", dtype, 0.18f, kv, th);
            put(w, rnd, l + "self_attn.o_proj.weight", dtype, 0.18f, th, q);
            put(w, rnd, l + "mlp.gate_proj.weight", dtype, 0.18f, t.intermediateSize(), th);
            put(w, rnd, l + "mlp.up_proj.weight", dtype, 0.18f, t.intermediateSize(), th);
            put(w, rnd, l + "mlp.down_proj.weight", dtype, 0.15f, th, t.intermediateSize());
            norm(w, rnd, l + "input_layernorm", dtype, th, false);
            norm(w, rnd, l + "post_attention_layernorm", dtype, th, false);
        }
        norm(w, rnd, "language_model.norm", dtype, th, false);
        if (!c.tieWordEmbeddings()) put(w, rnd, "lm_head.weight", dtype, 0.18f, t.vocabSize(), th);
        return w;
    }

    private static void put(Map<String, Tensor> w, Random rnd, String name, String dtype, float std, long... shape) {
        long n = 1;
        for (long d : shape) n *= d;
        float[] values = new float[(int) n];
        for (int i = 0; i < values.length; i++) values[i] = round(std * (float) rnd.nextGaussian(), dtype);
        w.put(name, new Tensor(values, shape, dtype));
    }

    private static void norm(Map<String, Tensor> w, Random rnd, String prefix, String dtype, int size, boolean bias) {
        float[] weight = new float[size];
        for (int i = 0; i < size; i++) weight[i] = round(1f + 0.1f * (float) rnd.nextGaussian(), dtype);
        w.put(prefix + ".weight", new Tensor(weight, new long[] {size}, dtype));
        if (bias) put(w, rnd, prefix + ".bias", dtype, 0.05f, size);
    }

    /** The value the stored dtype can hold (so one weight set can be written in any dtype with equal meaning). */
    static float round(float x, String dtype) {
        return switch (dtype) {
            case "F32" -> x;
            case "F16" -> Float.float16ToFloat(Float.floatToFloat16(x));
            case "BF16" -> Float.intBitsToFloat(Float.floatToRawIntBits(x) & 0xFFFF0000);
            default -> throw new IllegalArgumentException(dtype);
        };
    }

    /** Stored key of a canonical name in the given layout. */
    static String storedName(String canonical, boolean v5) {
        if (v5) return canonical.equals("lm_head.weight") ? canonical : "model." + canonical;
        if (canonical.equals("lm_head.weight")) return "language_model.lm_head.weight";
        if (canonical.startsWith("language_model.")) return "language_model.model." + canonical.substring(15);
        if (canonical.startsWith("vision_tower.")) return "vision_tower.vision_model." + canonical.substring(13);
        return canonical;
    }

    /** Writes config.json and the weights (one file, or two shards with an index). */
    static Path write(Path dir, JsonObject config, Map<String, Tensor> weights, boolean v5, boolean sharded)
            throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), JsonUtils.GSON_PRETTY.toJson(config));
        Map<String, Tensor> stored = new TreeMap<>();
        weights.forEach((k, t) -> stored.put(storedName(k, v5), t));
        if (!sharded) {
            writeSafetensors(dir.resolve("model.safetensors"), stored);
            return dir;
        }
        Map<String, Tensor> a = new TreeMap<>();
        Map<String, Tensor> b = new TreeMap<>();
        JsonObject weightMap = new JsonObject();
        int i = 0;
        for (var e : stored.entrySet()) {
            boolean first = i++ < stored.size() / 2;
            (first ? a : b).put(e.getKey(), e.getValue());
            weightMap.addProperty(e.getKey(), first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
        }
        writeSafetensors(dir.resolve("model-00001-of-00002.safetensors"), a);
        writeSafetensors(dir.resolve("model-00002-of-00002.safetensors"), b);
        JsonObject index = new JsonObject();
        index.add("metadata", new JsonObject());
        index.add("weight_map", weightMap);
        Files.writeString(dir.resolve("model.safetensors.index.json"), JsonUtils.GSON_PRETTY.toJson(index));
        return dir;
    }

    static void writeSafetensors(Path file, Map<String, Tensor> tensors) throws IOException {
        JsonObject header = new JsonObject();
        JsonObject meta = new JsonObject();
        meta.addProperty("format", "pt");
        header.add("__metadata__", meta);
        Map<String, byte[]> data = new LinkedHashMap<>();
        long offset = 0;
        for (var e : tensors.entrySet()) {
            Tensor t = e.getValue();
            byte[] bytes = encode(t);
            JsonObject entry = new JsonObject();
            entry.addProperty("dtype", t.dtype());
            JsonArray shape = new JsonArray();
            for (long d : t.shape()) shape.add(d);
            entry.add("shape", shape);
            JsonArray offsets = new JsonArray();
            offsets.add(offset);
            offsets.add(offset + bytes.length);
            entry.add("data_offsets", offsets);
            header.add(e.getKey(), entry);
            data.put(e.getKey(), bytes);
            offset += bytes.length;
        }
        byte[] json = JsonUtils.GSON_COMPACT.toJson(header).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        try (OutputStream out = Files.newOutputStream(file)) {
            out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array());
            out.write(json);
            for (int i = json.length; i < padded; i++) out.write(' ');
            for (byte[] b : data.values()) out.write(b);
        }
    }

    private static byte[] encode(Tensor t) {
        float[] v = t.values();
        ByteBuffer b;
        switch (t.dtype()) {
            case "F32" -> {
                b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
                for (float x : v) b.putFloat(x);
            }
            case "F16" -> {
                b = ByteBuffer.allocate(2 * v.length).order(ByteOrder.LITTLE_ENDIAN);
                for (float x : v) b.putShort(Float.floatToFloat16(x));
            }
            case "BF16" -> {
                b = ByteBuffer.allocate(2 * v.length).order(ByteOrder.LITTLE_ENDIAN);
                for (float x : v) b.putShort((short) (Float.floatToRawIntBits(x) >>> 16));
            }
            default -> throw new IllegalArgumentException(t.dtype());
        }
        return b.array();
    }
}
