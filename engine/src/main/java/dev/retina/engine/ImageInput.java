package dev.retina.engine;

/**
 * One image of a request, already preprocessed off the engine thread. Plain Java arrays: the engine turns them into
 * tensors on its own thread, so callers never touch DJL.
 *
 * <p>Three kinds: a single CLIP image (LLaVA-1.5, or LLaVA-NeXT's base tile alone with {@code detail: low}),
 * {@code numTiles = 1}; LLaVA-NeXT anyres tiles, {@code numTiles > 1}, tile 0 the whole image, encoded and packed
 * with the original {@code imageHeight x imageWidth}; or precomputed features ({@code imageFeatures}).
 *
 * @param pixelValues    (numTiles, 3, height, width) float32, row-major, normalised; null when {@code imageFeatures}
 *                       is given
 * @param height         height of one tile in pixels (0 for features)
 * @param width          width of one tile in pixels (0 for features)
 * @param imageFeatures  (numImageTokens, textHiddenSize) float32, row-major, precomputed; null for pixel input
 * @param numImageTokens how many placeholder tokens this image occupies in the prompt
 * @param contentHash    identity of the image content and of how it was preprocessed (the encoder cache's key); null
 *                       means "do not cache"
 * @param numTiles       tiles in pixelValues; 1 for a single image and for features
 * @param imageHeight    the original image's height (LLaVA-NeXT packs the grid features by it)
 * @param imageWidth     the original image's width
 */
public record ImageInput(float[] pixelValues, int height, int width, float[] imageFeatures, int numImageTokens,
                         String contentHash, int numTiles, int imageHeight, int imageWidth) {
    public ImageInput {
        if ((pixelValues == null) == (imageFeatures == null))
            throw new IllegalArgumentException("exactly one of pixelValues and imageFeatures must be given");
        if (numTiles < 1) throw new IllegalArgumentException("numTiles must be >= 1, got " + numTiles);
        if (pixelValues != null && (long) pixelValues.length != (long) numTiles * 3 * height * width)
            throw new IllegalArgumentException("pixelValues has " + pixelValues.length + " values, expected " + numTiles
                    + "*3*" + height + "*" + width);
        if (numImageTokens < 1) throw new IllegalArgumentException("numImageTokens must be >= 1");
        if (imageFeatures != null && (imageFeatures.length == 0 || imageFeatures.length % numImageTokens != 0))
            throw new IllegalArgumentException("imageFeatures has " + imageFeatures.length + " values, not a multiple of "
                    + numImageTokens + " image tokens");
    }

    /** One single-tile image, as before tiles existed (original size = tile size). */
    public ImageInput(float[] pixelValues, int height, int width, float[] imageFeatures, int numImageTokens,
                      String contentHash) {
        this(pixelValues, height, width, imageFeatures, numImageTokens, contentHash, 1, height, width);
    }

    public static ImageInput ofPixels(float[] chw, int height, int width, int numImageTokens) {
        return new ImageInput(chw, height, width, null, numImageTokens, null);
    }

    /**
     * LLaVA-NeXT anyres input.
     *
     * @param tiles (numTiles, 3, tileSize, tileSize), tile 0 the whole image
     */
    public static ImageInput ofTiles(float[] tiles, int numTiles, int tileSize, int imageHeight, int imageWidth,
                                     int numImageTokens, String contentHash) {
        return new ImageInput(tiles, tileSize, tileSize, null, numImageTokens, contentHash, numTiles, imageHeight,
                imageWidth);
    }

    /**
     * Precomputed image features, placed as they are at the image's placeholder tokens.
     *
     * @param features (numImageTokens, textHiddenSize) row-major
     */
    public static ImageInput ofFeatures(float[] features, int numImageTokens) {
        return new ImageInput(null, 0, 0, features, numImageTokens, null, 1, 0, 0);
    }

    /** This input with another cache key. */
    public ImageInput withContentHash(String hash) {
        return new ImageInput(pixelValues, height, width, imageFeatures, numImageTokens, hash, numTiles, imageHeight,
                imageWidth);
    }

    /** True for LLaVA-NeXT anyres tiles (encoded with the grid packing). */
    public boolean isTiled() {
        return numTiles > 1;
    }
}
