package dev.retina.server.config;

import dev.retina.vision.ImageProcessorBackend;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The vision-language flags of vLLM 0.4 ({@code --image-input-type}, {@code --image-token-id},
 * {@code --image-input-shape}, {@code --image-feature-size}, {@code --image-processor},
 * {@code --image-processor-revision}, {@code --disable-image-processor}), with vLLM's meaning. Built once from the
 * command line and checked on its own in the constructor; {@link #resolve} then checks it against the checkpoint.
 *
 * <p>Everything the checkpoint determines is optional here: a given value is only an assertion, and one that
 * contradicts the checkpoint stops startup with a message naming both values (vLLM 0.4 required these flags and
 * trusted them; a wrong one there produced garbage or a shape error deep in the model).
 *
 * @param imageInputType         what the model receives per image; never null
 * @param imageTokenId           asserted {@code image_token_index}, or null
 * @param imageInputShape        asserted largest image input, {@code N,C,H,W} for pixel values or {@code N,F,D} for
 *                               image features, N being images per prompt; or null
 * @param imageFeatureSize       asserted image tokens per image, or null
 * @param imageProcessor         path of the directory holding preprocessor_config.json; null means the model's
 * @param imageProcessorRevision Hub revision of the image processor; only meaningful for Hub ids, or null
 * @param disableImageProcessor  when true, no image processor is loaded and image URLs cannot be served
 * @param imageProcessorBackend  {@code --image-processor-backend}: whose pixels to reproduce, or null for what
 *                               transformers 5 loads for the checkpoint's preprocessor_config.json (torchvision,
 *                               unless it names a {@code ...Pil} class)
 */
public record VlmConfig(ImageInputType imageInputType, Integer imageTokenId, List<Integer> imageInputShape,
                        Integer imageFeatureSize, String imageProcessor, String imageProcessorRevision,
                        boolean disableImageProcessor, ImageProcessorBackend imageProcessorBackend) {

    /** With the backend transformers 5 would pick ({@code imageProcessorBackend} null). */
    public VlmConfig(ImageInputType imageInputType, Integer imageTokenId, List<Integer> imageInputShape,
                     Integer imageFeatureSize, String imageProcessor, String imageProcessorRevision,
                     boolean disableImageProcessor) {
        this(imageInputType, imageTokenId, imageInputShape, imageFeatureSize, imageProcessor, imageProcessorRevision,
                disableImageProcessor, null);
    }

    public VlmConfig withImageProcessorBackend(ImageProcessorBackend backend) {
        return new VlmConfig(imageInputType, imageTokenId, imageInputShape, imageFeatureSize, imageProcessor,
                imageProcessorRevision, disableImageProcessor, backend);
    }

    public VlmConfig {
        Objects.requireNonNull(imageInputType, "imageInputType");
        if (imageTokenId != null && imageTokenId < 0)
            throw new ConfigException("--image-token-id must be >= 0, got " + imageTokenId);
        if (imageFeatureSize != null && imageFeatureSize < 1)
            throw new ConfigException("--image-feature-size must be >= 1, got " + imageFeatureSize);
        if (imageInputShape != null) {
            imageInputShape = List.copyOf(imageInputShape);
            int expectedDims = imageInputType == ImageInputType.PIXEL_VALUES ? 4 : 3;
            if (imageInputShape.size() != expectedDims || imageInputShape.stream().anyMatch(d -> d < 1))
                throw new ConfigException("--image-input-shape " + join(imageInputShape) + " must be "
                        + (expectedDims == 4 ? "N,C,H,W (e.g. 1,3,336,336)" : "N,F,D (e.g. 1,576,4096)")
                        + " with positive sizes for --image-input-type " + imageInputType.cliName());
            if (imageFeatureSize != null && imageInputType == ImageInputType.IMAGE_FEATURES
                    && !imageInputShape.get(1).equals(imageFeatureSize))
                throw new ConfigException("--image-input-shape " + join(imageInputShape) + " has " + imageInputShape.get(1)
                        + " features per image but --image-feature-size is " + imageFeatureSize);
        }
        if (disableImageProcessor && imageProcessor != null)
            throw new ConfigException("--image-processor " + imageProcessor + " contradicts --disable-image-processor");
    }

    /** The defaults: pixel values, everything else from the checkpoint. */
    public static VlmConfig defaults() {
        return new VlmConfig(ImageInputType.PIXEL_VALUES, null, null, null, null, null, false);
    }

    /** Parses {@code "1,3,336,336"}; spaces around numbers are allowed. */
    public static List<Integer> parseShape(String text) {
        List<Integer> dims = new ArrayList<>();
        for (String part : text.split(",", -1)) {
            try {
                dims.add(Integer.parseInt(part.strip()));
            } catch (NumberFormatException e) {
                throw new ConfigException("--image-input-shape must be comma-separated integers like 1,3,336,336, got '"
                        + text + "'");
            }
        }
        return dims;
    }

    /**
     * Checks every asserted value against the checkpoint and fills in the rest.
     *
     * @param modelDir where the model lives; the default place of the image processor's config
     * @throws ConfigException naming the flag's value and the checkpoint's when they disagree
     */
    public Resolved resolve(CheckpointFacts facts, String modelDir) {
        if (imageTokenId != null && imageTokenId != facts.imageTokenId())
            throw new ConfigException("--image-token-id " + imageTokenId + " contradicts the checkpoint's image_token_index "
                    + facts.imageTokenId());
        if (imageFeatureSize != null && facts.anyres())
            throw new ConfigException("--image-feature-size does not apply to llava_next checkpoints: each image's "
                    + "token count follows from its size");
        if (imageFeatureSize != null && imageFeatureSize != facts.numImageTokens())
            throw new ConfigException("--image-feature-size " + imageFeatureSize + " contradicts the checkpoint's "
                    + facts.numImageTokens() + " image tokens per image");
        List<Integer> expected = imageInputType == ImageInputType.PIXEL_VALUES
                ? List.of(facts.visionNumChannels(), facts.visionImageSize(), facts.visionImageSize())
                : List.of(facts.numImageTokens(), facts.textHiddenSize());
        List<Integer> shape;
        if (imageInputShape == null) {
            shape = new ArrayList<>(List.of(1));
            shape.addAll(expected);
        } else if (facts.anyres() && imageInputType == ImageInputType.PIXEL_VALUES) {
            // LLaVA-NeXT: H,W is the size every image is resized to before tiling (static shape), any size.
            if (imageInputShape.get(1) != facts.visionNumChannels())
                throw new ConfigException("--image-input-shape " + join(imageInputShape) + " has " + imageInputShape.get(1)
                        + " channels, the checkpoint's vision_config.num_channels is " + facts.visionNumChannels());
            shape = imageInputShape;
        } else {
            if (!imageInputShape.subList(1, imageInputShape.size()).equals(expected))
                throw new ConfigException("--image-input-shape " + join(imageInputShape) + " contradicts the checkpoint, which needs "
                        + imageInputShape.get(0) + "," + join(expected) + describe(facts));
            shape = imageInputShape;
        }
        String processor = disableImageProcessor ? null : Objects.requireNonNullElse(imageProcessor, modelDir);
        return new Resolved(imageInputType, facts.imageTokenId(), facts.numImageTokens(), List.copyOf(shape), processor,
                imageProcessorRevision);
    }

    private String describe(CheckpointFacts facts) {
        return imageInputType == ImageInputType.PIXEL_VALUES
                ? " (vision_config.num_channels " + facts.visionNumChannels() + ", vision_config.image_size "
                        + facts.visionImageSize() + ")"
                : " (" + facts.numImageTokens() + " image tokens, text_config.hidden_size " + facts.textHiddenSize() + ")";
    }

    private static String join(List<Integer> dims) {
        return String.join(",", dims.stream().map(String::valueOf).toList());
    }

    /**
     * The VLM settings in force, after checking against the checkpoint.
     *
     * @param imageProcessor where preprocessor_config.json lives, or null when the processor is disabled
     */
    public record Resolved(ImageInputType imageInputType, int imageTokenId, int imageFeatureSize,
                           List<Integer> imageInputShape, String imageProcessor, String imageProcessorRevision) {
        /** Largest number of images one prompt may carry (the N of {@code --image-input-shape}). */
        public int maxImagesPerPrompt() {
            return imageInputShape.get(0);
        }
    }
}
