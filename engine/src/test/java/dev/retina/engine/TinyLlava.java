package dev.retina.engine;

import ai.djl.Device;
import dev.retina.engine.model.LlavaModel;
import dev.retina.engine.model.LoadFormat;
import dev.retina.engine.model.ModelLoadConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** A tiny LLaVA-1.5-shaped model with dummy weights on CPU, and random prompts and pixels for it. */
final class TinyLlava {
    static final int IMAGE_TOKEN = 60;
    static final int NUM_IMAGE_TOKENS = 16; // 28/7 = 4x4 patches, CLS dropped
    static final int SIDE = 28;
    // Vision 28/7, 2+2 layers, GQA 4 heads over 2 KV heads (head_dim 8).
    static final String CONFIG = """
            {"vision_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 2, "image_size": 28, "patch_size": 7, "hidden_act": "quick_gelu",
              "model_type": "clip_vision_model"},
             "text_config": {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
              "rms_norm_eps": 1e-5, "model_type": "llama", "rope_theta": 10000.0},
             "image_token_index": 60, "torch_dtype": "float32", "tie_word_embeddings": false,
             "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "projector_hidden_act": "gelu"}
            """;

    private TinyLlava() {
    }

    static LlavaModel load(Path dir, long seed) throws IOException {
        Files.writeString(dir.resolve("config.json"), CONFIG);
        return LlavaModel.load(dir, new ModelLoadConfig(Device.cpu(), null, LoadFormat.DUMMY, seed));
    }

    /** BOS, 2-7 text ids, optionally one image's placeholder run, 3-10 text ids. */
    static int[] prompt(SplittableRandom rnd, boolean withImage) {
        List<Integer> ids = new ArrayList<>(List.of(1));
        for (int i = 0, n = 2 + rnd.nextInt(6); i < n; i++) ids.add(3 + rnd.nextInt(50));
        if (withImage) for (int i = 0; i < NUM_IMAGE_TOKENS; i++) ids.add(IMAGE_TOKEN);
        for (int i = 0, n = 3 + rnd.nextInt(8); i < n; i++) ids.add(3 + rnd.nextInt(50));
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    static ImageInput image(SplittableRandom rnd) {
        float[] p = new float[3 * SIDE * SIDE];
        for (int i = 0; i < p.length; i++) p[i] = (float) rnd.nextGaussian();
        return ImageInput.ofPixels(p, SIDE, SIDE, NUM_IMAGE_TOKENS);
    }
}
