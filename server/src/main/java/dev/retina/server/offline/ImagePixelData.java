package dev.retina.server.offline;

import dev.retina.vision.RgbImage;

import java.nio.file.Path;

/**
 * An image given as pixels: exactly one of a decoded {@link RgbImage}, encoded file bytes (PNG, JPEG, ...) or a file
 * path. The {@link LLM} decodes and preprocesses it exactly as the server does an {@code image_url}.
 */
public record ImagePixelData(RgbImage image, byte[] encoded, Path path) implements ImageData {
    public ImagePixelData {
        int given = (image != null ? 1 : 0) + (encoded != null ? 1 : 0) + (path != null ? 1 : 0);
        if (given != 1) throw new IllegalArgumentException("give exactly one of image, encoded bytes and path");
    }

    public static ImagePixelData of(RgbImage image) {
        return new ImagePixelData(image, null, null);
    }

    public static ImagePixelData of(byte[] encoded) {
        return new ImagePixelData(null, encoded, null);
    }

    public static ImagePixelData of(Path path) {
        return new ImagePixelData(null, null, path);
    }
}
