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
 * @param modelType                   {@code "llava"} (LLaVA-1.5: one fixed-size image) or {@code "llava_next"}
 *                                    (LLaVA-NeXT: anyres tiles, a per-image number of tokens)
 * @param imageGridPinpoints          LLaVA-NeXT's candidate resolutions, each {height, width} in pixels; empty for
 *                                    llava
 */
public record LlavaConfig(VisionConfig visionConfig, TextConfig textConfig, int imageTokenIndex,
                          List<Integer> visionFeatureLayers, String visionFeatureSelectStrategy,
                          String projectorHiddenAct, boolean multimodalProjectorBias, boolean tieWordEmbeddings,
                          String dtype, String modelType, List<int[]> imageGridPinpoints) {
    public static final String LLAVA = "llava";
    public static final String LLAVA_NEXT = "llava_next";

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
        if (!modelType.equals(LLAVA) && !modelType.equals(LLAVA_NEXT))
            throw new IllegalArgumentException("unsupported model_type " + modelType + " (supported: llava, llava_next)");
        List<int[]> pins = new ArrayList<>();
        for (int[] p : imageGridPinpoints) {
            if (p.length != 2 || p[0] % visionConfig.imageSize() != 0 || p[1] % visionConfig.imageSize() != 0
                    || p[0] < 1 || p[1] < 1)
                throw new IllegalArgumentException("image_grid_pinpoints entries must be positive multiples of the "
                        + "vision image_size " + visionConfig.imageSize());
            pins.add(p.clone());
        }
        imageGridPinpoints = List.copyOf(pins);
        if (modelType.equals(LLAVA_NEXT)) {
            if (imageGridPinpoints.isEmpty()) throw new IllegalArgumentException("llava_next needs image_grid_pinpoints");
            // HF's pack_image_features lays the tile features out as a patch grid; the CLS row does not fit it.
            if (!visionFeatureSelectStrategy.equals("default"))
                throw new IllegalArgumentException("llava_next supports only vision_feature_select_strategy default");
        }
    }

    /** A LLaVA-1.5 config (model_type llava, no pinpoints): the constructor before LLaVA-NeXT. */
    public LlavaConfig(VisionConfig visionConfig, TextConfig textConfig, int imageTokenIndex,
                       List<Integer> visionFeatureLayers, String visionFeatureSelectStrategy, String projectorHiddenAct,
                       boolean multimodalProjectorBias, boolean tieWordEmbeddings, String dtype) {
        this(visionConfig, textConfig, imageTokenIndex, visionFeatureLayers, visionFeatureSelectStrategy,
                projectorHiddenAct, multimodalProjectorBias, tieWordEmbeddings, dtype, LLAVA, List.of());
    }

    @Override
    public List<int[]> imageGridPinpoints() {
        return imageGridPinpoints.stream().map(int[]::clone).toList();
    }

    public boolean isNext() {
        return modelType.equals(LLAVA_NEXT);
    }

    private static void checkAct(String what, String act) {
        if (!Set.of("gelu", "quick_gelu").contains(act))
            throw new IllegalArgumentException("unsupported " + what + " " + act + " (supported: gelu, quick_gelu)");
    }

    /**
     * Placeholder tokens per image for LLaVA-1.5: one per patch, plus the CLS token under the "full" strategy. For
     * LLaVA-NeXT this is the base tile's share only; use {@link #numImageTokens(int, int)}.
     */
    public int numImageTokens() {
        return visionConfig.numPatches() + (visionFeatureSelectStrategy.equals("full") ? 1 : 0);
    }

    /**
     * Placeholder tokens for one image of this size, as HF's processors count them. LLaVA-1.5: the fixed
     * {@link #numImageTokens()}. LLaVA-NeXT ({@code LlavaNextProcessor._get_number_of_features}): the base tile's
     * patches, plus the tile grid's patches after unpadding to the image's aspect ratio, plus one newline per row.
     */
    public int numImageTokens(int imageHeight, int imageWidth) {
        if (!isNext()) return numImageTokens();
        int[] rowsCols = unpaddedFeatureGrid(imageHeight, imageWidth);
        return visionConfig.numPatches() + rowsCols[0] * (rowsCols[1] + 1);
    }

    /** LLaVA-NeXT tiles per image: the base tile plus the grid of the best pinpoint. */
    public int numTiles(int imageHeight, int imageWidth) {
        int[] grid = tileGrid(imageHeight, imageWidth);
        return 1 + grid[0] * grid[1];
    }

    /** HF's {@code get_anyres_image_grid_shape}: {rows, cols} of tiles for an image of this size. */
    public int[] tileGrid(int imageHeight, int imageWidth) {
        int[] best = selectBestResolution(imageHeight, imageWidth, imageGridPinpoints);
        return new int[] {best[0] / visionConfig.imageSize(), best[1] / visionConfig.imageSize()};
    }

    /**
     * {rows, cols} of the grid's patch features after HF's {@code unpad_image}: the (rows * side, cols * side)
     * feature map with the letterbox padding rows (or columns) removed, symmetrically, as
     * {@code padding = (current - int(round(original * scale, 7))) // 2}.
     */
    public int[] unpaddedFeatureGrid(int imageHeight, int imageWidth) {
        if (imageHeight < 1 || imageWidth < 1)
            throw new IllegalArgumentException("image must be at least 1x1, got " + imageWidth + "x" + imageHeight);
        int[] grid = tileGrid(imageHeight, imageWidth);
        int side = visionConfig.imageSize() / visionConfig.patchSize();
        int currentHeight = grid[0] * side;
        int currentWidth = grid[1] * side;
        double originalAspect = (double) imageWidth / imageHeight;
        double currentAspect = (double) currentWidth / currentHeight;
        if (originalAspect > currentAspect) {
            int newHeight = roundTo7ThenTruncate(imageHeight * ((double) currentWidth / imageWidth));
            currentHeight -= 2 * Math.floorDiv(currentHeight - newHeight, 2);
        } else {
            int newWidth = roundTo7ThenTruncate(imageWidth * ((double) currentHeight / imageHeight));
            currentWidth -= 2 * Math.floorDiv(currentWidth - newWidth, 2);
        }
        return new int[] {currentHeight, currentWidth};
    }

    /** Python's {@code int(round(x, 7))}: round the exact double half-to-even at 7 decimals, then truncate. */
    static int roundTo7ThenTruncate(double x) {
        return new java.math.BigDecimal(x).setScale(7, java.math.RoundingMode.HALF_EVEN).intValue();
    }

    /**
     * HF's {@code select_best_resolution}: the pinpoint keeping the most pixels after an aspect-preserving downscale
     * into it, ties broken by the least wasted area, then by order.
     *
     * @return {height, width}
     */
    static int[] selectBestResolution(int height, int width, List<int[]> pinpoints) {
        int[] best = null;
        long maxEffective = 0;
        double minWasted = Double.POSITIVE_INFINITY;
        for (int[] p : pinpoints) {
            double scale = Math.min((double) p[1] / width, (double) p[0] / height);
            long effective = Math.min((long) (width * scale) * (long) (height * scale), (long) width * height);
            long wasted = (long) p[0] * p[1] - effective;
            if (effective > maxEffective || (effective == maxEffective && wasted < minWasted)) {
                maxEffective = effective;
                minWasted = wasted;
                best = p;
            }
        }
        if (best == null) throw new IllegalArgumentException("no pinpoint for a " + width + "x" + height + " image");
        return best.clone();
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
        String modelType = string(root, "model_type", LLAVA);
        List<int[]> pinpoints = new ArrayList<>();
        if (present(root, "image_grid_pinpoints")) {
            for (JsonElement p : root.getAsJsonArray("image_grid_pinpoints")) {
                var pair = p.getAsJsonArray();
                pinpoints.add(new int[] {pair.get(0).getAsInt(), pair.get(1).getAsInt()});
            }
        } else if (modelType.equals(LLAVA_NEXT)) {
            // HF LlavaNextConfig's default, for 336-pixel tiles
            int[][] dflt = {{336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};
            for (int[] p : dflt) pinpoints.add(p);
        }
        if (modelType.equals(LLAVA)) pinpoints.clear(); // LLaVA-1.5 ignores any pinpoints a config carries
        return new LlavaConfig(vc, tc, imageToken, layers,
                string(root, "vision_feature_select_strategy", "default"), string(root, "projector_hidden_act", "gelu"),
                bool(root, "multimodal_projector_bias", true), tie, dtype, modelType, pinpoints);
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
