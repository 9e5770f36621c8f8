package dev.retina.server;

import dev.retina.server.config.Device;
import dev.retina.server.config.Dtype;
import dev.retina.server.config.LoadFormat;
import dev.retina.server.config.ServerConfig;
import picocli.CommandLine.Option;

/** Which model to load and how, shared by {@code retina serve} and {@code retina bench} (a Picocli mixin). */
public final class ModelOptions {
    @Option(names = "--model", defaultValue = ServerConfig.DEMO_MODEL,
            description = "HF checkpoint directory (config.json, *.safetensors, tokenizer.json, ...), a Hugging Face "
                    + "model id (org/name: serve fetches it into HF_HOME first), or a config-only directory with "
                    + "--load-format dummy. 'demo' = the demo model bundled in the jar (models/retina-demo: simple "
                    + "pictures of coloured shapes only).")
    String model;

    @Option(names = "--dtype", defaultValue = "auto", description = "auto|float32|float16 (auto: float16 on GPU, float32 on CPU).")
    Dtype dtype;

    @Option(names = "--device", defaultValue = "auto", description = "auto|cpu|gpu.")
    Device device;

    @Option(names = "--max-model-len", description = "Longest prompt plus completion (default: the checkpoint's max_position_embeddings).")
    Integer maxModelLen;

    @Option(names = "--seed", defaultValue = "0", description = "Random seed: sampling, dummy weights (bench: also its "
            + "prompts, pixels and arrivals).")
    long seed;

    @Option(names = "--load-format", defaultValue = "auto", description = "auto|safetensors|dummy (dummy: random weights from config.json).")
    LoadFormat loadFormat;
}
