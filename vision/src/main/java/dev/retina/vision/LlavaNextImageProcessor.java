package dev.retina.vision;

import java.util.ArrayList;
import java.util.List;

/**
 * Hugging Face's {@code LlavaNextImageProcessor} (torchvision backend) or {@code LlavaNextImageProcessorPil} for one
 * RGB image ("anyres"), as {@link ImageProcessorBackend} chooses: pick the best pinpoint resolution, resize into it
 * keeping the aspect ratio (the backend's bicubic), pad centered with black (uint8 zeros, before rescale and normalize, so padding becomes
 * {@code -mean/std}), cut into tiles of the tile size in row-major order, and put in front the whole image resized
 * to one tile (stretched, not cropped). Every tile then goes through the CLIP pipeline ({@link ClipImageProcessor}).
 * Immutable; safe from any thread.
 */
public final class LlavaNextImageProcessor {
    /**
     * One image's model input.
     *
     * @param pixelValues  (numTiles, 3, tileSize, tileSize) float32, row-major; tile 0 is the whole image
     * @param numTiles     1 + gridHeight * gridWidth
     * @param tileSize     side of one tile in pixels
     * @param imageHeight  the original image height (HF's {@code image_sizes[i][0]})
     * @param imageWidth   the original image width (HF's {@code image_sizes[i][1]})
     */
    public record Tiles(float[] pixelValues, int numTiles, int tileSize, int imageHeight, int imageWidth) {
    }

    private final LlavaNextProcessorConfig config;
    private final ClipImageProcessor clip;

    public LlavaNextImageProcessor(LlavaNextProcessorConfig config, ImageProcessorBackend backend) {
        this.config = config;
        this.clip = new ClipImageProcessor(config.clip(), backend);
        int tile = config.tileSize();
        if (clip.outputHeight() != tile || clip.outputWidth() != tile)
            throw new IllegalArgumentException("tiles must come out " + tile + "x" + tile + ", the CLIP settings give "
                    + clip.outputHeight() + "x" + clip.outputWidth());
    }

    public ImageProcessorBackend backend() {
        return clip.backend();
    }

    public LlavaNextProcessorConfig config() {
        return config;
    }

    /**
     * HF's {@code select_best_resolution}: the pinpoint that keeps the most of the image's pixels after an
     * aspect-preserving downscale into it ({@code min(int(w*s) * int(h*s), w*h)}), ties broken by the least wasted
     * area, and remaining ties by config order.
     *
     * @return {height, width}
     */
    public static int[] selectBestResolution(int height, int width, List<int[]> pinpoints) {
        int[] best = null;
        long maxEffective = 0;
        double minWasted = Double.POSITIVE_INFINITY;
        for (int[] p : pinpoints) {
            int h = p[0], w = p[1];
            double scale = Math.min((double) w / width, (double) h / height);
            long downW = (long) (width * scale);
            long downH = (long) (height * scale);
            long effective = Math.min(downW * downH, (long) width * height);
            long wasted = (long) w * h - effective;
            if (effective > maxEffective || (effective == maxEffective && wasted < minWasted)) {
                maxEffective = effective;
                minWasted = wasted;
                best = new int[] {h, w};
            }
        }
        if (best == null) throw new IllegalArgumentException("no pinpoint fits a " + width + "x" + height + " image");
        return best;
    }

    /**
     * HF's {@code get_patch_output_size}: the aspect-preserving size inside {@code target}; the side that limits
     * the scale fills the target, the other is {@code min(ceil(side * scale), target)}.
     *
     * @return {height, width}
     */
    static int[] patchOutputSize(int height, int width, int targetHeight, int targetWidth) {
        double scaleW = (double) targetWidth / width;
        double scaleH = (double) targetHeight / height;
        if (scaleW < scaleH) return new int[] {Math.min((int) Math.ceil(height * scaleW), targetHeight), targetWidth};
        return new int[] {targetHeight, Math.min((int) Math.ceil(width * scaleH), targetWidth)};
    }

    /** Preprocesses one decoded RGB image into its tiles. */
    public Tiles preprocess(RgbImage image) {
        int tile = config.tileSize();
        int[] best = selectBestResolution(image.height(), image.width(), config.imageGridPinpoints());
        int[] hw = patchOutputSize(image.height(), image.width(), best[0], best[1]);
        RgbImage resized = BicubicResize.resize(image, hw[1], hw[0], clip.backend());
        RgbImage padded = padCentered(resized, best[0], best[1]);

        List<RgbImage> tiles = new ArrayList<>();
        ClipProcessorConfig c = config.clip();
        // The whole image, stretched to size (height, width), or (shortest_edge, shortest_edge).
        int baseH = c.shortestEdge() > 0 ? c.shortestEdge() : c.resizeHeight();
        int baseW = c.shortestEdge() > 0 ? c.shortestEdge() : c.resizeWidth();
        tiles.add(BicubicResize.resize(image, baseW, baseH, clip.backend()));
        for (int y = 0; y < best[0]; y += tile)       // HF divide_to_patches: rows, then columns
            for (int x = 0; x < best[1]; x += tile)
                tiles.add(crop(padded, x, y, Math.min(tile, best[1] - x), Math.min(tile, best[0] - y)));

        int plane = 3 * tile * tile;
        float[] pixelValues = new float[tiles.size() * plane]; // (numTiles, 3, tile, tile)
        for (int i = 0; i < tiles.size(); i++) {
            float[] one = clip.preprocess(tiles.get(i));
            System.arraycopy(one, 0, pixelValues, i * plane, plane);
        }
        return new Tiles(pixelValues, tiles.size(), tile, image.height(), image.width());
    }

    /** HF {@code _pad_for_patching}: zeros around, {@code (target - size) // 2} before and the rest after. */
    static RgbImage padCentered(RgbImage image, int targetHeight, int targetWidth) {
        if (image.height() == targetHeight && image.width() == targetWidth) return image;
        int top = Math.floorDiv(targetHeight - image.height(), 2);
        int left = Math.floorDiv(targetWidth - image.width(), 2);
        byte[] out = new byte[targetHeight * targetWidth * 3];
        byte[] in = image.rgb();
        for (int y = 0; y < image.height(); y++)
            System.arraycopy(in, y * image.width() * 3, out, ((y + top) * targetWidth + left) * 3, image.width() * 3);
        return new RgbImage(targetWidth, targetHeight, out);
    }

    private static RgbImage crop(RgbImage image, int x0, int y0, int w, int h) {
        byte[] out = new byte[w * h * 3];
        byte[] in = image.rgb();
        for (int y = 0; y < h; y++)
            System.arraycopy(in, ((y0 + y) * image.width() + x0) * 3, out, y * w * 3, w * 3);
        return new RgbImage(w, h, out);
    }
}
