package dev.retina.vision;

/**
 * Pillow's {@code Image.resize(size, Image.BICUBIC)} for mode RGB, bit for bit (Pillow's {@code Resample.c}): a
 * separable convolution with the a = -0.5 cubic kernel, widened by the scale when shrinking (antialias), weights in
 * 22-bit fixed point, horizontal pass first into uint8, then vertical. Stateless; safe from any thread.
 */
public final class PillowResize {
    /** Pillow's {@code PRECISION_BITS} for 8-bit images: 32 - 8 - 2. */
    private static final int PRECISION_BITS = 22;
    private static final double BICUBIC_SUPPORT = 2.0;
    private static final double A = -0.5;

    private PillowResize() {
    }

    /** One axis' filter: for output i, source indices {@code start[i] .. start[i]+count[i]-1} with fixed-point weights. */
    private record Coefficients(int kernelSize, int[] start, int[] count, int[] weights) {
    }

    /** Resizes {@code src} to {@code newWidth x newHeight} exactly as Pillow's BICUBIC does (box = whole image). */
    public static RgbImage resizeBicubic(RgbImage src, int newWidth, int newHeight) {
        if (newWidth < 1 || newHeight < 1)
            throw new IllegalArgumentException("target size must be at least 1x1, got " + newWidth + "x" + newHeight);
        int inWidth = src.width();
        int inHeight = src.height();
        if (inWidth == newWidth && inHeight == newHeight) return src; // Pillow returns a copy; images are immutable
        boolean needHorizontal = newWidth != inWidth;
        boolean needVertical = newHeight != inHeight;
        Coefficients horizontal = coefficients(inWidth, newWidth);
        Coefficients vertical = coefficients(inHeight, newHeight);

        byte[] pixels = src.rgb();
        int width = inWidth;
        int[] verticalStart = vertical.start();
        if (needHorizontal) {
            // Only the source rows the vertical pass reads are resized horizontally; its bounds shift to match.
            int firstRow = vertical.start()[0];
            int lastRow = vertical.start()[newHeight - 1] + vertical.count()[newHeight - 1];
            pixels = resampleHorizontal(pixels, inWidth, firstRow, lastRow - firstRow, newWidth, horizontal);
            width = newWidth;
            verticalStart = vertical.start().clone();
            for (int i = 0; i < newHeight; i++) verticalStart[i] -= firstRow;
        }
        if (needVertical) {
            pixels = resampleVertical(pixels, width, newHeight, verticalStart, vertical);
        }
        return new RgbImage(newWidth, newHeight, pixels);
    }

    /** Pillow's {@code bicubic_filter}; the operation order is kept so the doubles match to the last bit. */
    private static double bicubic(double x) {
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((A + 2.0) * x - (A + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * A;
        return 0.0;
    }

    /** Pillow's {@code precompute_coeffs} followed by {@code normalize_coeffs_8bpc}. */
    private static Coefficients coefficients(int inSize, int outSize) {
        double scale = (double) inSize / outSize;
        double filterScale = Math.max(scale, 1.0);
        double support = BICUBIC_SUPPORT * filterScale;
        int kernelSize = (int) Math.ceil(support) * 2 + 1;
        int[] start = new int[outSize];
        int[] count = new int[outSize];
        int[] weights = new int[outSize * kernelSize];
        double[] k = new double[kernelSize];
        double invFilterScale = 1.0 / filterScale;
        for (int i = 0; i < outSize; i++) {
            double center = (i + 0.5) * scale;
            int min = (int) (center - support + 0.5);
            if (min < 0) min = 0;
            int max = (int) (center + support + 0.5);
            if (max > inSize) max = inSize;
            max -= min;
            double sum = 0.0;
            for (int j = 0; j < max; j++) {
                double w = bicubic((j + min - center + 0.5) * invFilterScale);
                k[j] = w;
                sum += w;
            }
            for (int j = 0; j < max; j++) {
                double w = sum != 0.0 ? k[j] / sum : k[j];
                weights[i * kernelSize + j] = w < 0
                        ? (int) (-0.5 + w * (1 << PRECISION_BITS))
                        : (int) (0.5 + w * (1 << PRECISION_BITS));
            }
            start[i] = min;
            count[i] = max;
        }
        return new Coefficients(kernelSize, start, count, weights);
    }

    /** Pillow's {@code clip8}: fixed-point accumulator to 0..255. */
    private static int clip8(int acc) {
        if (acc >= (1 << PRECISION_BITS << 8)) return 255;
        if (acc <= 0) return 0;
        return acc >> PRECISION_BITS;
    }

    private static byte[] resampleHorizontal(byte[] in, int inWidth, int firstRow, int numRows, int outWidth,
                                             Coefficients c) {
        byte[] out = new byte[numRows * outWidth * 3];
        int kernelSize = c.kernelSize();
        int[] weights = c.weights();
        int half = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < numRows; y++) {
            int inRow = (y + firstRow) * inWidth * 3;
            int outPos = y * outWidth * 3;
            for (int x = 0; x < outWidth; x++) {
                int min = c.start()[x];
                int n = c.count()[x];
                int kOff = x * kernelSize;
                int r = half, g = half, b = half;
                int p = inRow + min * 3;
                for (int j = 0; j < n; j++, p += 3) {
                    int w = weights[kOff + j];
                    r += (in[p] & 0xFF) * w;
                    g += (in[p + 1] & 0xFF) * w;
                    b += (in[p + 2] & 0xFF) * w;
                }
                out[outPos++] = (byte) clip8(r);
                out[outPos++] = (byte) clip8(g);
                out[outPos++] = (byte) clip8(b);
            }
        }
        return out;
    }

    private static byte[] resampleVertical(byte[] in, int width, int outHeight, int[] start, Coefficients c) {
        int rowBytes = width * 3;
        byte[] out = new byte[outHeight * rowBytes];
        int kernelSize = c.kernelSize();
        int[] weights = c.weights();
        int half = 1 << (PRECISION_BITS - 1);
        int[] acc = new int[rowBytes];
        for (int y = 0; y < outHeight; y++) {
            java.util.Arrays.fill(acc, half);
            int min = start[y];
            int n = c.count()[y];
            int kOff = y * kernelSize;
            // Row-at-a-time accumulation: the same integer sums as Pillow's per-pixel loop, in cache order.
            for (int j = 0; j < n; j++) {
                int w = weights[kOff + j];
                int p = (min + j) * rowBytes;
                for (int i = 0; i < rowBytes; i++) acc[i] += (in[p + i] & 0xFF) * w;
            }
            int o = y * rowBytes;
            for (int i = 0; i < rowBytes; i++) out[o + i] = (byte) clip8(acc[i]);
        }
        return out;
    }
}
