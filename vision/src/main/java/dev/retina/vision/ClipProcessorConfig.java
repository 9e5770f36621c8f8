package dev.retina.vision;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The settings of Hugging Face's {@code CLIPImageProcessor}, read from a checkpoint's {@code preprocessor_config.json}
 * (transformers 4.x) or the {@code image_processor} object of {@code processor_config.json} (5.x). Absent keys take
 * CLIPImageProcessor's defaults. Validated on construction; immutable.
 *
 * @param shortestEdge  {@code size.shortest_edge} (resize the short side to it), or 0 when {@code size} is
 *                      {@code {height, width}}
 * @param resizeHeight  {@code size.height} when resizing to a fixed size, else 0
 * @param resizeWidth   {@code size.width} when resizing to a fixed size, else 0
 * @param cropHeight    {@code crop_size.height}
 * @param cropWidth     {@code crop_size.width}
 * @param resample      PIL resampling filter; only 3 (BICUBIC) is supported
 * @param imageMean     per-channel mean, 3 values (R, G, B)
 * @param imageStd      per-channel std, 3 values (R, G, B)
 */
public record ClipProcessorConfig(int shortestEdge, int resizeHeight, int resizeWidth, int cropHeight, int cropWidth,
                                  boolean doResize, boolean doCenterCrop, boolean doRescale, double rescaleFactor,
                                  boolean doNormalize, double[] imageMean, double[] imageStd, boolean doConvertRgb,
                                  int resample) {
    public static final String PREPROCESSOR_CONFIG = "preprocessor_config.json";
    public static final String PROCESSOR_CONFIG = "processor_config.json";
    /** PIL's {@code Image.BICUBIC}. */
    public static final int BICUBIC = 3;
    static final double[] OPENAI_CLIP_MEAN = {0.48145466, 0.4578275, 0.40821073};
    static final double[] OPENAI_CLIP_STD = {0.26862954, 0.26130258, 0.27577711};
    private static final ObjectMapper JSON = new ObjectMapper();

    public ClipProcessorConfig {
        if (doResize) {
            boolean bySide = shortestEdge > 0 && resizeHeight == 0 && resizeWidth == 0;
            boolean fixed = shortestEdge == 0 && resizeHeight > 0 && resizeWidth > 0;
            if (!bySide && !fixed)
                throw new IllegalArgumentException("size must be {shortest_edge} or {height, width} with positive values");
        }
        if (doCenterCrop && (cropHeight < 1 || cropWidth < 1))
            throw new IllegalArgumentException("crop_size must be positive, got " + cropHeight + "x" + cropWidth);
        if (resample != BICUBIC)
            throw new IllegalArgumentException("resample=" + resample + " is not supported: Retina implements only "
                    + "PIL BICUBIC (3), which every CLIP/LLaVA checkpoint uses");
        if (imageMean == null || imageMean.length != 3 || imageStd == null || imageStd.length != 3)
            throw new IllegalArgumentException("image_mean and image_std must have 3 values");
        for (double s : imageStd) if (!(s != 0.0)) throw new IllegalArgumentException("image_std must be non-zero");
        if (!Double.isFinite(rescaleFactor)) throw new IllegalArgumentException("rescale_factor must be finite");
        imageMean = imageMean.clone();
        imageStd = imageStd.clone();
    }

    @Override
    public double[] imageMean() {
        return imageMean.clone();
    }

    @Override
    public double[] imageStd() {
        return imageStd.clone();
    }

    /**
     * The tile side LLaVA-NeXT cuts images into (HF's {@code patch_size} in LlavaNextImageProcessor):
     * {@code crop_size.height}, else {@code size.height}, else {@code size.shortest_edge}.
     */
    public int tileSize() {
        if (cropHeight > 0) return cropHeight;
        if (resizeHeight > 0) return resizeHeight;
        return shortestEdge;
    }

    /**
     * Loads a config from a file, or from a checkpoint directory: {@code preprocessor_config.json} first, then
     * {@code processor_config.json} (whose {@code image_processor} object holds the settings).
     */
    public static ClipProcessorConfig load(Path fileOrDirectory) throws IOException {
        return parseFile(configFile(fileOrDirectory), ClipProcessorConfig::fromJson);
    }

    /**
     * The backend transformers 5's {@code AutoImageProcessor} would load for this config file or checkpoint
     * directory ({@link ImageProcessorBackend#forProcessorType} of its {@code image_processor_type}).
     */
    public static ImageProcessorBackend defaultBackend(Path fileOrDirectory) throws IOException {
        JsonNode type = parseFile(configFile(fileOrDirectory), ClipProcessorConfig::settingsRoot).path("image_processor_type");
        return ImageProcessorBackend.forProcessorType(type.isTextual() ? type.asText() : null);
    }

    /** Whether a checkpoint directory holds an image processor config ({@link #configFile} would find one). */
    public static boolean isPresentIn(Path directory) {
        return Files.isRegularFile(directory.resolve(PREPROCESSOR_CONFIG))
                || Files.isRegularFile(directory.resolve(PROCESSOR_CONFIG));
    }

    /** The config file of a checkpoint directory ({@code preprocessor_config.json}, else {@code processor_config.json}), or the file given. */
    static Path configFile(Path fileOrDirectory) throws IOException {
        if (!Files.isDirectory(fileOrDirectory)) return fileOrDirectory;
        Path file = fileOrDirectory.resolve(PREPROCESSOR_CONFIG);
        if (!Files.isRegularFile(file)) file = fileOrDirectory.resolve(PROCESSOR_CONFIG);
        if (!Files.isRegularFile(file))
            throw new IOException("no " + PREPROCESSOR_CONFIG + " or " + PROCESSOR_CONFIG + " in " + fileOrDirectory);
        return file;
    }

    /** Parses {@code file} with {@code parser}, naming the file in any error. */
    static <T> T parseFile(Path file, java.util.function.Function<String, T> parser) throws IOException {
        try {
            return parser.apply(Files.readString(file));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file.getFileName() + ": " + e.getMessage(), e);
        }
    }

    /** The JSON object holding the settings; a root with an {@code image_processor} object (5.x) is unwrapped. */
    static JsonNode settingsRoot(String json) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException("not valid JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException("config must be a JSON object");
        return root.path("image_processor").isObject() ? root.get("image_processor") : root;
    }

    /** Parses a preprocessor config; a root with an {@code image_processor} object (5.x processor_config) is unwrapped. */
    public static ClipProcessorConfig fromJson(String json) {
        JsonNode root = settingsRoot(json);

        int shortestEdge = 224, resizeHeight = 0, resizeWidth = 0;
        JsonNode size = root.get("size");
        if (size != null && !size.isNull()) {
            if (size.isInt()) { // legacy int: CLIPImageProcessor reads it as {shortest_edge: n}
                shortestEdge = size.asInt();
            } else if (size.isObject()) {
                if (present(size, "longest_edge") || present(size, "max_height") || present(size, "max_width"))
                    throw new IllegalArgumentException("size " + size + " is not supported: use shortest_edge or "
                            + "height/width");
                if (present(size, "shortest_edge")) {
                    shortestEdge = intField(size, "shortest_edge");
                } else if (present(size, "height") && present(size, "width")) {
                    shortestEdge = 0;
                    resizeHeight = intField(size, "height");
                    resizeWidth = intField(size, "width");
                } else {
                    throw new IllegalArgumentException("size must have shortest_edge or height and width, got " + size);
                }
            } else {
                throw new IllegalArgumentException("size must be an int or an object, got " + size);
            }
        }
        int cropHeight = 224, cropWidth = 224;
        JsonNode crop = root.get("crop_size");
        if (crop != null && !crop.isNull()) {
            if (crop.isInt()) { // legacy int: a square crop
                cropHeight = cropWidth = crop.asInt();
            } else if (crop.isObject() && present(crop, "height") && present(crop, "width")) {
                cropHeight = intField(crop, "height");
                cropWidth = intField(crop, "width");
            } else {
                throw new IllegalArgumentException("crop_size must be an int or {height, width}, got " + crop);
            }
        }
        return new ClipProcessorConfig(shortestEdge, resizeHeight, resizeWidth, cropHeight, cropWidth,
                bool(root, "do_resize", true), bool(root, "do_center_crop", true), bool(root, "do_rescale", true),
                number(root, "rescale_factor", 1 / 255.0), bool(root, "do_normalize", true),
                triple(root, "image_mean", OPENAI_CLIP_MEAN), triple(root, "image_std", OPENAI_CLIP_STD),
                bool(root, "do_convert_rgb", true), resample(root.get("resample")));
    }

    /** A key with a non-null value (transformers 5.x may write unused size keys as null). */
    private static boolean present(JsonNode node, String name) {
        JsonNode v = node.get(name);
        return v != null && !v.isNull();
    }

    private static int intField(JsonNode node, String name) {
        JsonNode v = node.get(name);
        if (v == null || !v.canConvertToExactIntegral() || !v.canConvertToInt())
            throw new IllegalArgumentException(name + " must be an integer, got " + v);
        return v.asInt();
    }

    private static boolean bool(JsonNode root, String name, boolean fallback) {
        JsonNode v = root.get(name);
        if (v == null || v.isNull()) return fallback;
        if (!v.isBoolean()) throw new IllegalArgumentException(name + " must be true or false, got " + v);
        return v.asBoolean();
    }

    private static double number(JsonNode root, String name, double fallback) {
        JsonNode v = root.get(name);
        if (v == null || v.isNull()) return fallback;
        if (!v.isNumber()) throw new IllegalArgumentException(name + " must be a number, got " + v);
        return v.asDouble();
    }

    /** A per-channel list of 3, or one number for every channel (HF accepts both). */
    private static double[] triple(JsonNode root, String name, double[] fallback) {
        JsonNode v = root.get(name);
        if (v == null || v.isNull()) return fallback.clone();
        if (v.isNumber()) return new double[] {v.asDouble(), v.asDouble(), v.asDouble()};
        if (!v.isArray() || v.size() != 3)
            throw new IllegalArgumentException(name + " must be a number or a list of 3 numbers, got " + v);
        double[] out = new double[3];
        for (int i = 0; i < 3; i++) {
            if (!v.get(i).isNumber()) throw new IllegalArgumentException(name + " must hold numbers, got " + v);
            out[i] = v.get(i).asDouble();
        }
        return out;
    }

    private static int resample(JsonNode v) {
        if (v == null || v.isNull()) return BICUBIC;
        if (v.isInt()) return v.asInt();
        if (v.isTextual() && v.asText().equalsIgnoreCase("bicubic")) return BICUBIC;
        throw new IllegalArgumentException("resample=" + v + " is not supported: Retina implements only PIL BICUBIC (3)");
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ClipProcessorConfig c && shortestEdge == c.shortestEdge && resizeHeight == c.resizeHeight
                && resizeWidth == c.resizeWidth && cropHeight == c.cropHeight && cropWidth == c.cropWidth
                && doResize == c.doResize && doCenterCrop == c.doCenterCrop && doRescale == c.doRescale
                && Double.compare(rescaleFactor, c.rescaleFactor) == 0 && doNormalize == c.doNormalize
                && Arrays.equals(imageMean, c.imageMean) && Arrays.equals(imageStd, c.imageStd)
                && doConvertRgb == c.doConvertRgb && resample == c.resample;
    }

    @Override
    public int hashCode() {
        return 31 * (31 * Arrays.hashCode(imageMean) + Arrays.hashCode(imageStd)) + shortestEdge + 7 * cropHeight;
    }

    @Override
    public String toString() {
        return "ClipProcessorConfig[size=" + (shortestEdge > 0 ? "shortest_edge " + shortestEdge
                : resizeHeight + "x" + resizeWidth) + ", crop=" + cropHeight + "x" + cropWidth + ", doResize=" + doResize
                + ", doCenterCrop=" + doCenterCrop + ", doRescale=" + doRescale + ", rescaleFactor=" + rescaleFactor
                + ", doNormalize=" + doNormalize + ", mean=" + Arrays.toString(imageMean) + ", std="
                + Arrays.toString(imageStd) + ", resample=" + resample + "]";
    }
}
