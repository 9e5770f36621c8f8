package dev.retina.engine;

/**
 * One image of a request, already preprocessed off the engine thread. Plain Java arrays: the engine turns them into
 * tensors on its own thread, so callers never touch DJL.
 *
 * @param pixelValues   (3, height, width) float32, CHW, normalised; null when {@code imageFeatures} is given
 * @param imageFeatures (numImageTokens, textHiddenSize) float32, row-major, precomputed; null for pixel input
 * @param numImageTokens how many placeholder tokens this image occupies in the prompt
 * @param contentHash   identity of the image content (for the encoder cache); may be null
 */
public record ImageInput(float[] pixelValues, int height, int width, float[] imageFeatures, int numImageTokens,
                         String contentHash) {
    public ImageInput {
        if ((pixelValues == null) == (imageFeatures == null))
            throw new IllegalArgumentException("exactly one of pixelValues and imageFeatures must be given");
        if (pixelValues != null && pixelValues.length != 3 * height * width)
            throw new IllegalArgumentException("pixelValues has " + pixelValues.length + " values, expected 3*" + height
                    + "*" + width);
        if (numImageTokens < 1) throw new IllegalArgumentException("numImageTokens must be >= 1");
    }

    public static ImageInput ofPixels(float[] chw, int height, int width, int numImageTokens) {
        return new ImageInput(chw, height, width, null, numImageTokens, null);
    }
}
