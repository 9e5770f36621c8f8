package dev.retina.vision;

/**
 * Antialiased bicubic resizing of RGB images, bit for bit as the two backends of transformers 5 do it: a separable
 * convolution with the a = -0.5 cubic kernel, widened by the scale when shrinking, weights in fixed point, horizontal
 * pass first into uint8, then vertical (a pass is skipped when its size is unchanged).
 * <ul>
 * <li>{@link #pillow}: Pillow's {@code Image.resize(size, Image.BICUBIC)} ({@code Resample.c}): 22-bit weights in
 *     int32.</li>
 * <li>{@link #torchvision}: torchvision's {@code resize(uint8 tensor, BICUBIC, antialias=True)}, i.e. PyTorch's
 *     {@code _upsample_bicubic2d_aa} uint8 kernel: the same weights in double, then rounded to int16 with the most
 *     fractional bits ({@code <= 22}) that keep the pass's largest weight below 2^15.</li>
 * </ul>
 * Stateless; safe from any thread.
 */
public final class BicubicResize {
    /** Pillow's {@code PRECISION_BITS} for 8-bit images: 32 - 8 - 2. */
    private static final int PRECISION_BITS = 22;
    private static final double BICUBIC_SUPPORT = 2.0;
    private static final double A = -0.5;

    private BicubicResize() {
    }

    /**
     * One axis' filter: for output i, source indices {@code start[i] .. start[i]+count[i]-1} with fixed-point weights
     * of {@code precision} fractional bits.
     */
    private record Coefficients(int kernelSize, int[] start, int[] count, int[] weights, int precision) {
    }

    /** Resizes {@code src} with the given backend's arithmetic. */
    public static RgbImage resize(RgbImage src, int newWidth, int newHeight, ImageProcessorBackend backend) {
        return resize(src, newWidth, newHeight, backend == ImageProcessorBackend.TORCHVISION);
    }

    /** Resizes {@code src} to {@code newWidth x newHeight} exactly as Pillow's BICUBIC does (box = whole image). */
    public static RgbImage pillow(RgbImage src, int newWidth, int newHeight) {
        return resize(src, newWidth, newHeight, false);
    }

    /** Resizes {@code src} exactly as torchvision's antialiased bicubic resize of a uint8 tensor does. */
    public static RgbImage torchvision(RgbImage src, int newWidth, int newHeight) {
        return resize(src, newWidth, newHeight, true);
    }

    private static RgbImage resize(RgbImage src, int newWidth, int newHeight, boolean int16) {
        if (newWidth < 1 || newHeight < 1)
            throw new IllegalArgumentException("target size must be at least 1x1, got " + newWidth + "x" + newHeight);
        int inWidth = src.width();
        int inHeight = src.height();
        if (inWidth == newWidth && inHeight == newHeight) return src; // Pillow returns a copy; images are immutable
        boolean needHorizontal = newWidth != inWidth;
        boolean needVertical = newHeight != inHeight;
        Coefficients horizontal = coefficients(inWidth, newWidth, int16);
        Coefficients vertical = coefficients(inHeight, newHeight, int16);

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

    /**
     * Pillow's {@code precompute_coeffs} followed by {@code normalize_coeffs_8bpc}; with {@code int16}, PyTorch's
     * {@code _compute_index_ranges_int16_weights} (same double weights, precision from the largest one).
     */
    private static Coefficients coefficients(int inSize, int outSize, boolean int16) {
        double scale = (double) inSize / outSize;
        double filterScale = Math.max(scale, 1.0);
        double support = BICUBIC_SUPPORT * filterScale;
        int kernelSize = (int) Math.ceil(support) * 2 + 1;
        int[] start = new int[outSize];
        int[] count = new int[outSize];
        double[] normalized = new double[outSize * kernelSize];
        double[] k = new double[kernelSize];
        double maxWeight = 0.0;
        double invFilterScale = 1.0 / filterScale;
        for (int i = 0; i < outSize; i++) {
            double center = (i + 0.5) * scale;
            int min = (int) (center - support + 0.5);
            if (min < 0) min = 0;
            int max = (int) (center + support + 0.5);
            if (max > inSize) max = inSize;
            max -= min;
            if (max > kernelSize) max = kernelSize; // PyTorch clamps; Pillow's sizes never exceed it
            double sum = 0.0;
            for (int j = 0; j < max; j++) {
                double w = bicubic((j + min - center + 0.5) * invFilterScale);
                k[j] = w;
                sum += w;
            }
            for (int j = 0; j < max; j++) {
                double w = sum != 0.0 ? k[j] / sum : k[j];
                normalized[i * kernelSize + j] = w;
                maxWeight = Math.max(maxWeight, w);
            }
            start[i] = min;
            count[i] = max;
        }
        int precision = PRECISION_BITS;
        if (int16) {
            for (precision = 0; precision < PRECISION_BITS; precision++) {
                int next = (int) (0.5 + maxWeight * (1 << (precision + 1)));
                if (next >= (1 << 15)) break;
            }
        }
        int[] weights = new int[outSize * kernelSize];
        for (int i = 0; i < outSize; i++) {
            for (int j = 0; j < count[i]; j++) {
                double w = normalized[i * kernelSize + j] * (1 << precision);
                weights[i * kernelSize + j] = w < 0 ? (int) (-0.5 + w) : (int) (0.5 + w);
            }
        }
        return new Coefficients(kernelSize, start, count, weights, precision);
    }

    /** Pillow's {@code clip8} (and PyTorch's shift-then-saturate): fixed-point accumulator to 0..255. */
    private static int clip8(int acc, int precision) {
        int v = acc >> precision;
        return v < 0 ? 0 : Math.min(v, 255);
    }

    private static byte[] resampleHorizontal(byte[] in, int inWidth, int firstRow, int numRows, int outWidth,
                                             Coefficients c) {
        byte[] out = new byte[numRows * outWidth * 3];
        int kernelSize = c.kernelSize();
        int[] weights = c.weights();
        int precision = c.precision();
        int half = 1 << (precision - 1);
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
                out[outPos++] = (byte) clip8(r, precision);
                out[outPos++] = (byte) clip8(g, precision);
                out[outPos++] = (byte) clip8(b, precision);
            }
        }
        return out;
    }

    private static byte[] resampleVertical(byte[] in, int width, int outHeight, int[] start, Coefficients c) {
        int rowBytes = width * 3;
        byte[] out = new byte[outHeight * rowBytes];
        int kernelSize = c.kernelSize();
        int[] weights = c.weights();
        int precision = c.precision();
        int half = 1 << (precision - 1);
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
            for (int i = 0; i < rowBytes; i++) out[o + i] = (byte) clip8(acc[i], precision);
        }
        return out;
    }
}
