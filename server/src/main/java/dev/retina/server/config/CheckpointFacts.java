package dev.retina.server.config;

/**
 * The facts a LLaVA checkpoint fixes that the command line may also state; {@link VlmConfig#resolve} checks the
 * flags against them. Implemented over the model's config.json (and by tests with plain values).
 */
public interface CheckpointFacts {
    /** {@code image_token_index} of config.json: the id of the {@code <image>} placeholder. */
    int imageTokenId();

    /** {@code vision_config.image_size}: pixel inputs are (numChannels, imageSize, imageSize). */
    int visionImageSize();

    /** {@code vision_config.num_channels} (3 for RGB). */
    int visionNumChannels();

    /** How many prompt positions one image fills: (imageSize / patchSize)^2, plus one with the "full" strategy. */
    int numImageTokens();

    /** {@code text_config.hidden_size}: the width of precomputed image features. */
    int textHiddenSize();

    /** {@code text_config.max_position_embeddings}: the longest context the model was built for. */
    int maxPositionEmbeddings();

    /**
     * True for LLaVA-NeXT ({@code model_type} llava_next): images are tiled at any size ("anyres"), so
     * {@code --image-input-shape}'s H,W is a resize target, not a check, and {@link #numImageTokens()} is only the
     * base tile's share.
     */
    default boolean anyres() {
        return false;
    }
}
