package dev.retina.server.config;

/** vLLM 0.4's {@code --image-input-type}: what the model receives for each image. */
public enum ImageInputType {
    /** Preprocessed pixels, (numChannels, imageSize, imageSize) per image; the vision tower runs in the engine. */
    PIXEL_VALUES,
    /** Precomputed image features, (imageFeatureSize, textHiddenSize) per image; the vision tower is skipped. */
    IMAGE_FEATURES;

    public String cliName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
