package dev.retina.vision;

/**
 * Hugging Face's {@code CLIPImageProcessor} for one RGB image, in either backend of transformers 5
 * ({@link ImageProcessorBackend}): resize (shortest edge or fixed size, bicubic), center crop (zero padding when the
 * image is smaller than the crop), rescale, normalize, channels first. Immutable; safe from any thread.
 *
 * <p>Arithmetic follows each backend's ops and dtypes so the floats match bit for bit. PIL
 * ({@code CLIPImageProcessorPil}): {@code rescale} multiplies in float64 and casts to float32, {@code normalize}
 * subtracts and divides in float32 with mean and std cast to float32. Torchvision ({@code CLIPImageProcessor}):
 * rescale and normalize fused, {@code (x - mean * (1/scale)) / (std * (1/scale))} on the uint8 levels, all float32
 * (mean and std become float32 tensors before the multiplication).
 */
public final class ClipImageProcessor {
    private final ClipProcessorConfig config;
    private final ImageProcessorBackend backend;
    private final float[] mean; // (3,) float32, as numpy's np.array(mean, dtype=float32) or torch.tensor(mean)
    private final float[] std;  // (3,) float32

    public ClipImageProcessor(ClipProcessorConfig config, ImageProcessorBackend backend) {
        this.config = config;
        this.backend = java.util.Objects.requireNonNull(backend, "backend");
        double[] m = config.imageMean();
        double[] s = config.imageStd();
        this.mean = new float[] {(float) m[0], (float) m[1], (float) m[2]};
        this.std = new float[] {(float) s[0], (float) s[1], (float) s[2]};
    }

    public ImageProcessorBackend backend() {
        return backend;
    }

    public ClipProcessorConfig config() {
        return config;
    }

    /** Height of every output; throws when it depends on the input (no center crop after a shortest-edge resize). */
    public int outputHeight() {
        if (config.doCenterCrop()) return config.cropHeight();
        if (config.doResize() && config.shortestEdge() == 0) return config.resizeHeight();
        throw new IllegalStateException("output height depends on the image: no center crop and no fixed resize");
    }

    /** Width of every output; see {@link #outputHeight()}. */
    public int outputWidth() {
        if (config.doCenterCrop()) return config.cropWidth();
        if (config.doResize() && config.shortestEdge() == 0) return config.resizeWidth();
        throw new IllegalStateException("output width depends on the image: no center crop and no fixed resize");
    }

    /**
     * HF's {@code get_resize_output_image_size(image, size, default_to_square=False)}: the short side becomes
     * {@code size}, the long side {@code int(size * long / short)} (Python true division, then truncation).
     *
     * @return {height, width}
     */
    static int[] shortestEdgeSize(int height, int width, int size) {
        int shortSide = Math.min(width, height);
        int longSide = Math.max(width, height);
        int newLong = (int) ((double) ((long) size * longSide) / shortSide);
        return width <= height ? new int[] {newLong, size} : new int[] {size, newLong};
    }

    /** The resized image (before crop), as HF's {@code resize} step gives it; the input when {@code do_resize} is off. */
    public RgbImage resize(RgbImage image) {
        if (!config.doResize()) return image;
        int[] hw = config.shortestEdge() > 0
                ? shortestEdgeSize(image.height(), image.width(), config.shortestEdge())
                : new int[] {config.resizeHeight(), config.resizeWidth()};
        return BicubicResize.resize(image, hw[1], hw[0], backend);
    }

    /** Preprocesses one image to {@code pixel_values}: (3, outputHeight, outputWidth) float32, CHW. */
    public float[] preprocess(RgbImage image) {
        RgbImage resized = resize(image);
        int inH = resized.height();
        int inW = resized.width();
        int outH = inH, outW = inW, top = 0, left = 0;
        if (config.doCenterCrop()) {
            outH = config.cropHeight();
            outW = config.cropWidth();
            // HF center_crop: top = (h - ch) // 2 (floor); a crop larger than the image reads zeros outside it,
            // where each backend's zero padding puts the image: PIL pads ceil((ch - h) / 2) before it,
            // torchvision (ch - h) // 2.
            top = cropOffset(inH, outH);
            left = cropOffset(inW, outW);
        }
        byte[] rgb = resized.rgb();
        int plane = outH * outW;
        float[] pixelValues = new float[3 * plane]; // (3, outH, outW) float32
        float[] values = new float[256 * 3];        // every uint8 level per channel maps to one float
        for (int c = 0; c < 3; c++) for (int v = 0; v < 256; v++) values[c * 256 + v] = convert(v, c);
        float[] zero = {convert(0, 0), convert(0, 1), convert(0, 2)};
        for (int y = 0; y < outH; y++) {
            int sy = y + top;
            boolean rowInside = sy >= 0 && sy < inH;
            for (int x = 0; x < outW; x++) {
                int sx = x + left;
                int o = y * outW + x;
                if (rowInside && sx >= 0 && sx < inW) {
                    int p = (sy * inW + sx) * 3;
                    pixelValues[o] = values[rgb[p] & 0xFF];
                    pixelValues[plane + o] = values[256 + (rgb[p + 1] & 0xFF)];
                    pixelValues[2 * plane + o] = values[512 + (rgb[p + 2] & 0xFF)];
                } else {
                    pixelValues[o] = zero[0];
                    pixelValues[plane + o] = zero[1];
                    pixelValues[2 * plane + o] = zero[2];
                }
            }
        }
        return pixelValues;
    }

    private int cropOffset(int size, int crop) {
        if (size >= crop || backend == ImageProcessorBackend.PIL) return Math.floorDiv(size - crop, 2);
        return -((crop - size) / 2);
    }

    /** One uint8 level of channel {@code c} through HF's rescale and normalize, with the backend's dtypes. */
    private float convert(int level, int c) {
        if (backend == ImageProcessorBackend.TORCHVISION) {
            if (config.doRescale() && config.doNormalize()) {
                float inverse = (float) (1.0 / config.rescaleFactor());
                return ((float) level - mean[c] * inverse) / (std[c] * inverse);
            }
            if (config.doNormalize()) return ((float) level - mean[c]) / std[c];
            if (config.doRescale()) return (float) level * (float) config.rescaleFactor();
            return level;
        }
        float x = config.doRescale() ? (float) (level * config.rescaleFactor()) : (float) level;
        if (config.doNormalize()) x = (x - mean[c]) / std[c];
        return x;
    }
}
