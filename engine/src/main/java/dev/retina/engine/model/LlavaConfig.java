package dev.retina.engine.model;

import ai.djl.util.JsonUtils;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * A LLaVA checkpoint's {@code config.json}, in transformers 4.x or 5.x spellings. Missing fields take the defaults
 * of HF's {@code LlavaConfig}, {@code CLIPVisionConfig} and {@code LlamaConfig}. Immutable.
 *
 * @param imageTokenIndex             id of the {@code <image>} placeholder token ({@code image_token_index} in 4.x,
 *                                    {@code image_token_id} in 5.x)
 * @param visionFeatureLayers         HF {@code hidden_states} indices whose features are concatenated (an int in
 *                                    config.json becomes a list of one); negative counts from the end
 * @param visionFeatureSelectStrategy "default" drops the CLS token, "full" keeps it
 * @param tieWordEmbeddings           lm_head shares embed_tokens' weight
 * @param dtype                       the checkpoint's {@code torch_dtype}/{@code dtype}, or null
 */
public record LlavaConfig(VisionConfig visionConfig, TextConfig textConfig, int imageTokenIndex,
                          List<Integer> visionFeatureLayers, String visionFeatureSelectStrategy,
                          String projectorHiddenAct, boolean multimodalProjectorBias, boolean tieWordEmbeddings,
                          String dtype) {

    /** CLIP vision tower settings (HF {@code CLIPVisionConfig}). */
    public record VisionConfig(int hiddenSize, int intermediateSize, int numHiddenLayers, int numAttentionHeads,
                               int numChannels, int imageSize, int patchSize, String hiddenAct, double layerNormEps) {
        public VisionConfig {
            if (hiddenSize % numAttentionHeads != 0)
                throw new IllegalArgumentException("vision hidden_size not divisible by num_attention_heads");
            if (imageSize % patchSize != 0)
                throw new IllegalArgumentException("vision image_size not divisible by patch_size");
            checkAct("vision hidden_act", hiddenAct);
        }

        public int headDim() {
            return hiddenSize / numAttentionHeads;
        }

        /** Patches per image: (imageSize / patchSize)^2; the embeddings add one CLS token in front. */
        public int numPatches() {
            int side = imageSize / patchSize;
            return side * side;
        }
    }

    /**
     * Rotary embedding settings: {@code rope_theta} + {@code rope_scaling} (4.x) or {@code rope_parameters} (5.x).
     *
     * @param ropeType "default", "linear" or "llama3"
     */
    public record RopeParameters(String ropeType, double ropeTheta, double factor, double lowFreqFactor,
                                 double highFreqFactor, int originalMaxPositionEmbeddings) {
        public RopeParameters {
            if (!Set.of("default", "linear", "llama3").contains(ropeType))
                throw new IllegalArgumentException("unsupported rope_type " + ropeType
                        + " (supported: default, linear, llama3)");
        }
    }

    /** Llama language model settings (HF {@code LlamaConfig}). */
    public record TextConfig(int vocabSize, int hiddenSize, int intermediateSize, int numHiddenLayers,
                             int numAttentionHeads, int numKeyValueHeads, int headDim, String hiddenAct,
                             int maxPositionEmbeddings, double rmsNormEps, RopeParameters rope,
                             boolean attentionBias, boolean mlpBias) {
        public TextConfig {
            if (numAttentionHeads % numKeyValueHeads != 0)
                throw new IllegalArgumentException("num_attention_heads not divisible by num_key_value_heads");
            if (!hiddenAct.equals("silu"))
                throw new IllegalArgumentException("unsupported text hidden_act " + hiddenAct + " (only silu)");
        }
    }

    public LlavaConfig {
        visionFeatureLayers = List.copyOf(visionFeatureLayers);
        if (visionFeatureLayers.isEmpty()) throw new IllegalArgumentException("empty vision_feature_layer");
        for (int layer : visionFeatureLayers) {
            int n = visionConfig.numHiddenLayers();
            if (layer < -(n + 1) || layer > n)
                throw new IllegalArgumentException("vision_feature_layer " + layer + " outside [-" + (n + 1) + ", " + n + "]");
        }
        if (!visionFeatureSelectStrategy.equals("default") && !visionFeatureSelectStrategy.equals("full"))
            throw new IllegalArgumentException("unknown vision_feature_select_strategy " + visionFeatureSelectStrategy);
        checkAct("projector_hidden_act", projectorHiddenAct);
    }

    private static void checkAct(String what, String act) {
        if (!Set.of("gelu", "quick_gelu").contains(act))
            throw new IllegalArgumentException("unsupported " + what + " " + act + " (supported: gelu, quick_gelu)");
    }

    /** Placeholder tokens per image: one per patch, plus the CLS token under the "full" strategy. */
    public int numImageTokens() {
        return visionConfig.numPatches() + (visionFeatureSelectStrategy.equals("full") ? 1 : 0);
    }

    /** How many CLIP encoder layers must run to produce every selected hidden state. */
    public int numVisionLayersToRun() {
        int max = 0;
        for (int layer : visionFeatureLayers) max = Math.max(max, resolveVisionLayer(layer));
        return max;
    }

    /** HF hidden_states index made non-negative: 0 is the embeddings, n the last layer's output. */
    public int resolveVisionLayer(int layer) {
        return layer < 0 ? visionConfig.numHiddenLayers() + 1 + layer : layer;
    }

    /** Width of the features the projector reads: the vision hidden size per selected layer. */
    public int projectorInputSize() {
        return visionConfig.hiddenSize() * visionFeatureLayers.size();
    }

    public static LlavaConfig load(Path modelDir) throws IOException {
        return fromJson(Files.readString(modelDir.resolve("config.json")));
    }

    public static LlavaConfig fromJson(String json) {
        JsonObject root = JsonUtils.GSON.fromJson(json, JsonObject.class);
        JsonObject vision = root.has("vision_config") ? root.getAsJsonObject("vision_config") : null;
        JsonObject text = root.has("text_config") ? root.getAsJsonObject("text_config") : new JsonObject();
        VisionConfig vc = vision == null
                // HF LlavaConfig's own default tower: CLIP ViT-L/14 at 336
                ? new VisionConfig(1024, 4096, 24, 16, 3, 336, 14, "quick_gelu", 1e-5)
                : new VisionConfig(
                        integer(vision, "hidden_size", 768), integer(vision, "intermediate_size", 3072),
                        integer(vision, "num_hidden_layers", 12), integer(vision, "num_attention_heads", 12),
                        integer(vision, "num_channels", 3), integer(vision, "image_size", 224),
                        integer(vision, "patch_size", 32), string(vision, "hidden_act", "quick_gelu"),
                        number(vision, "layer_norm_eps", 1e-5));

        int hidden = integer(text, "hidden_size", 4096);
        int heads = integer(text, "num_attention_heads", 32);
        JsonElement kvHeads = text.get("num_key_value_heads");
        JsonElement headDim = text.get("head_dim");
        TextConfig tc = new TextConfig(
                integer(text, "vocab_size", 32000), hidden, integer(text, "intermediate_size", 11008),
                integer(text, "num_hidden_layers", 32), heads,
                kvHeads == null || kvHeads.isJsonNull() ? heads : kvHeads.getAsInt(),
                headDim == null || headDim.isJsonNull() ? hidden / heads : headDim.getAsInt(),
                string(text, "hidden_act", "silu"), integer(text, "max_position_embeddings", 2048),
                number(text, "rms_norm_eps", 1e-6), rope(text),
                bool(text, "attention_bias", false), bool(text, "mlp_bias", false));

        int imageToken = root.has("image_token_id") ? root.get("image_token_id").getAsInt()
                : integer(root, "image_token_index", 32000);
        List<Integer> layers = new ArrayList<>();
        JsonElement vfl = root.get("vision_feature_layer");
        if (vfl == null || vfl.isJsonNull()) layers.add(-2);
        else if (vfl.isJsonArray()) vfl.getAsJsonArray().forEach(e -> layers.add(e.getAsInt()));
        else layers.add(vfl.getAsInt());
        // 4.x puts tie_word_embeddings at the top level (and LlamaConfig's False in text_config); 5.x in either.
        boolean tie = root.has("tie_word_embeddings") ? bool(root, "tie_word_embeddings", false)
                : bool(text, "tie_word_embeddings", false);
        String dtype = string(root, "dtype", string(root, "torch_dtype",
                string(text, "dtype", string(text, "torch_dtype", null))));
        return new LlavaConfig(vc, tc, imageToken, layers,
                string(root, "vision_feature_select_strategy", "default"), string(root, "projector_hidden_act", "gelu"),
                bool(root, "multimodal_projector_bias", true), tie, dtype);
    }

    private static RopeParameters rope(JsonObject text) {
        JsonObject params;
        double theta;
        if (text.has("rope_parameters") && text.get("rope_parameters").isJsonObject()) {
            params = text.getAsJsonObject("rope_parameters");
            theta = number(params, "rope_theta", number(text, "rope_theta", 10000.0));
        } else {
            params = text.has("rope_scaling") && text.get("rope_scaling").isJsonObject()
                    ? text.getAsJsonObject("rope_scaling") : new JsonObject();
            theta = number(text, "rope_theta", 10000.0);
        }
        // Early 4.x configs spell the key "type".
        String type = string(params, "rope_type", string(params, "type", "default"));
        return new RopeParameters(type, theta, number(params, "factor", 1.0), number(params, "low_freq_factor", 1.0),
                number(params, "high_freq_factor", 4.0),
                integer(params, "original_max_position_embeddings", integer(text, "max_position_embeddings", 2048)));
    }

    private static boolean present(JsonObject o, String key) {
        return o.has(key) && !o.get(key).isJsonNull();
    }

    private static int integer(JsonObject o, String key, int dflt) {
        return present(o, key) ? o.get(key).getAsInt() : dflt;
    }

    private static double number(JsonObject o, String key, double dflt) {
        return present(o, key) ? o.get(key).getAsDouble() : dflt;
    }

    private static String string(JsonObject o, String key, String dflt) {
        return present(o, key) ? o.get(key).getAsString() : dflt;
    }

    private static boolean bool(JsonObject o, String key, boolean dflt) {
        return present(o, key) ? o.get(key).getAsBoolean() : dflt;
    }
}
