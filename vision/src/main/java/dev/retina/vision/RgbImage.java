package dev.retina.vision;

/**
 * A decoded image as Pillow's mode "RGB" holds it: interleaved uint8 R, G, B, row-major (HWC). Immutable by
 * convention: no stage of the vision pipeline writes into an image it was given. Safe to share between threads.
 *
 * @param rgb (height, width, 3) uint8, row-major; pixel (x, y) channel c is at {@code (y * width + x) * 3 + c}
 */
public record RgbImage(int width, int height, byte[] rgb) {
    public RgbImage {
        if (width < 1 || height < 1) throw new IllegalArgumentException("image must be at least 1x1, got "
                + width + "x" + height);
        if (rgb == null || (long) rgb.length != 3L * width * height)
            throw new IllegalArgumentException("rgb must hold 3*" + width + "*" + height + " bytes");
    }

    /** Channel {@code c} of pixel (x, y) as 0..255. */
    public int get(int x, int y, int c) {
        return rgb[(y * width + x) * 3 + c] & 0xFF;
    }

    /** A {@code width x height} image filled with one colour. */
    public static RgbImage filled(int width, int height, int r, int g, int b) {
        byte[] rgb = new byte[3 * width * height];
        for (int i = 0; i < rgb.length; i += 3) {
            rgb[i] = (byte) r;
            rgb[i + 1] = (byte) g;
            rgb[i + 2] = (byte) b;
        }
        return new RgbImage(width, height, rgb);
    }

    @Override
    public String toString() {
        return "RgbImage[" + width + "x" + height + "]";
    }
}
