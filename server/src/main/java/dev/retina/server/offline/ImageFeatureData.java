package dev.retina.server.offline;

/**
 * Precomputed image features (the projector's output), accepted only when the {@link LLM} was built with
 * {@code image_input_type image_features}; the vision tower is then skipped.
 *
 * @param features (numImageTokens, hiddenSize) float32, row-major
 */
public record ImageFeatureData(float[] features, int numImageTokens, int hiddenSize) implements ImageData {
    public ImageFeatureData {
        if (features == null) throw new IllegalArgumentException("features must not be null");
        if (numImageTokens < 1 || hiddenSize < 1)
            throw new IllegalArgumentException("shape (" + numImageTokens + ", " + hiddenSize + ") must be positive");
        if ((long) numImageTokens * hiddenSize != features.length)
            throw new IllegalArgumentException("features hold " + features.length + " values, shape (" + numImageTokens
                    + ", " + hiddenSize + ") needs " + (long) numImageTokens * hiddenSize);
    }

    /** "(576, 4096)". */
    public String shapeString() {
        return "(" + numImageTokens + ", " + hiddenSize + ")";
    }
}
