package dev.retina.engine.model;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LlavaConfigTest {
    @Test
    void transformers4And5SpellingsGiveTheSameConfig() {
        LlavaConfig v4 = LlavaConfig.fromJson(TinyCheckpoint.config(false, true, "full", -1).toString());
        LlavaConfig v5 = LlavaConfig.fromJson(TinyCheckpoint.config(true, true, "full", -1).toString());
        assertEquals(v4, v5);
        assertEquals(60, v5.imageTokenIndex());
        assertEquals("linear", v5.textConfig().rope().ropeType());
        assertEquals(2.0, v5.textConfig().rope().factor());
        assertTrue(v5.tieWordEmbeddings());
        assertEquals("float32", v5.dtype());
        assertEquals(2, v5.textConfig().numKeyValueHeads());
        assertEquals(8, v5.textConfig().headDim());
    }

    @Test
    void missingFieldsTakeHuggingFaceDefaults() {
        // llava-hf/llava-1.5-7b-hf's config.json, abridged the way it ships: most text fields left to LlamaConfig.
        String json = """
                {"architectures": ["LlavaForConditionalGeneration"], "image_token_index": 32000,
                 "model_type": "llava", "projector_hidden_act": "gelu",
                 "text_config": {"max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                                 "torch_dtype": "float16", "vocab_size": 32064},
                 "torch_dtype": "float16", "vision_config": {"hidden_size": 1024, "image_size": 336,
                 "intermediate_size": 4096, "model_type": "clip_vision_model", "num_attention_heads": 16,
                 "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768, "vocab_size": 32000},
                 "vision_feature_layer": -2, "vision_feature_select_strategy": "default"}""";
        LlavaConfig c = LlavaConfig.fromJson(json);
        assertEquals(576, c.numImageTokens());
        assertEquals(23, c.numVisionLayersToRun()); // hidden_states[-2] of 24 layers
        assertEquals(4096, c.textConfig().hiddenSize());
        assertEquals(11008, c.textConfig().intermediateSize());
        assertEquals(32, c.textConfig().numKeyValueHeads());
        assertEquals(128, c.textConfig().headDim());
        assertEquals(10000.0, c.textConfig().rope().ropeTheta());
        assertEquals("default", c.textConfig().rope().ropeType());
        assertEquals("quick_gelu", c.visionConfig().hiddenAct());
        assertEquals(1e-5, c.visionConfig().layerNormEps());
        assertEquals(32064, c.textConfig().vocabSize());
        assertEquals(false, c.tieWordEmbeddings());
        assertEquals("float16", c.dtype());
    }

    @Test
    void featureLayerListAndLlama3Rope() {
        String json = """
                {"image_token_id": 5, "vision_feature_layer": [-2, -5], "vision_feature_select_strategy": "full",
                 "vision_config": {"hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 6,
                                   "image_size": 30, "patch_size": 6},
                 "text_config": {"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 1,
                    "head_dim": 16, "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                    "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}}""";
        LlavaConfig c = LlavaConfig.fromJson(json);
        assertEquals(List.of(-2, -5), c.visionFeatureLayers());
        assertEquals(26, c.numImageTokens());
        assertEquals(5, c.numVisionLayersToRun());
        assertEquals(32, c.projectorInputSize());
        assertEquals(16, c.textConfig().headDim());
        assertEquals(64, c.textConfig().rope().originalMaxPositionEmbeddings());
        float[] inv = RotaryEmbedding.inverseFrequencies(c.textConfig().rope(), 16);
        // Highest frequency (wavelength 2*pi < 64/4) is kept; lowest (wavelength > 64) is divided by the factor.
        assertEquals(1.0f, inv[0]);
        float plain = 1.0f / (float) Math.pow(500000.0f, 14f / 16f);
        assertEquals(plain / 8f, inv[7], 1e-12f);
    }

    @Test
    void rejectsWhatItCannotRun() {
        String dynamic = """
                {"text_config": {"rope_scaling": {"type": "dynamic", "factor": 2.0}}}""";
        assertThrows(IllegalArgumentException.class, () -> LlavaConfig.fromJson(dynamic));
        String badLayer = """
                {"vision_feature_layer": -30}""";
        assertThrows(IllegalArgumentException.class, () -> LlavaConfig.fromJson(badLayer));
    }

    @Test
    void kvCacheBlockBytes() {
        LlavaConfig c = LlavaConfig.fromJson("{}"); // Llama-2-7B defaults: 32 layers, 32 KV heads, head dim 128
        assertEquals(2L * 32 * 16 * 32 * 128 * 2, KvCache.bytesPerBlock(c, 16, ai.djl.ndarray.types.DataType.FLOAT16));
    }

    /** llava_next: pinpoints read, per-image counts as LlavaNextProcessor computes them for 336/14 towers. */
    @Test
    void llavaNextConfigCountsTokensPerImage() {
        String json = "{\"model_type\": \"llava_next\", \"vision_config\": {\"image_size\": 336, \"patch_size\": 14,"
                + " \"hidden_size\": 64, \"num_attention_heads\": 4}}";
        LlavaConfig c = LlavaConfig.fromJson(json);
        assertTrue(c.isNext());
        assertEquals(5, c.imageGridPinpoints().size()); // HF's default pinpoints
        // llava-v1.6 on a 672x672 image: 2x2 grid, 48x48 features, no unpadding: 576 + 48 * 49
        assertEquals(576 + 48 * 49, c.numImageTokens(672, 672));
        // 1000x500 (w x h): best 336x672 -> 1x2 tiles, 24x48 features; rows kept int(round(500 * 48 / 1000, 7)) = 24
        assertEquals(576 + 24 * 49, c.numImageTokens(500, 1000));
        assertEquals(3, c.numTiles(500, 1000));
        // LLaVA-1.5 configs keep their fixed count whatever the size
        LlavaConfig v15 = LlavaConfig.fromJson(json.replace("llava_next", "llava"));
        assertEquals(576, v15.numImageTokens(500, 1000));
        assertTrue(v15.imageGridPinpoints().isEmpty());
        assertThrows(IllegalArgumentException.class, () -> LlavaConfig.fromJson(
                json.replace("{\"model_type\"", "{\"vision_feature_select_strategy\": \"full\", \"model_type\"")));
        assertThrows(IllegalArgumentException.class, () -> LlavaConfig.fromJson(
                json.replace("{\"model_type\"", "{\"image_grid_pinpoints\": [[336, 500]], \"model_type\"")));
    }

    @Test
    void roundsLikePythonRoundSevenDecimals() {
        assertEquals(6, LlavaConfig.roundTo7ThenTruncate(400 * (10.0 / 600)));  // 6.666..., truncated
        assertEquals(5, LlavaConfig.roundTo7ThenTruncate(4.99999999));          // rounds up to 5.0000000 first
        assertEquals(4, LlavaConfig.roundTo7ThenTruncate(4.9999999));
    }
}
