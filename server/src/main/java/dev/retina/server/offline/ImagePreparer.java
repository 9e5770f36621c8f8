package dev.retina.server.offline;

import dev.retina.engine.ImageInput;
import dev.retina.server.config.ImageInputType;
import dev.retina.server.config.VlmConfig;
import dev.retina.server.input.DecodedImageLoader;
import dev.retina.server.input.ImageDetail;
import dev.retina.server.input.ImagePipeline;
import dev.retina.vision.ImageDecoder;
import dev.retina.vision.ImageException;
import dev.retina.vision.RgbImage;

import java.io.IOException;
import java.nio.file.Files;

/**
 * Image preparation for offline prompts: checks each {@link ImageData} against the model's
 * {@code image_input_type} (and feature shape), decodes pixel images under the server's {@code --max-image-pixels}
 * and preprocesses them with the serving loader into the engine's {@link ImageInput}. Called from any thread that
 * calls {@link LLM#generate}/{@link LLM#submit}; it keeps no mutable state.
 */
final class ImagePreparer {
    private final VlmConfig.Resolved vlm;
    private final int hiddenSize;               // the text model's, the width of ImageFeatureData
    private final ImagePipeline images;         // null: no pixel images (disabled, image_features, no processor config)
    private final ImageDecoder decoder;         // the server's --max-image-pixels

    ImagePreparer(VlmConfig.Resolved vlm, int hiddenSize, ImagePipeline images, long maxImagePixels) {
        this.vlm = vlm;
        this.hiddenSize = hiddenSize;
        this.images = images;
        this.decoder = new ImageDecoder(maxImagePixels);
    }

    /**
     * The engine input for the prompt's image {@code index} (the index only names it in errors).
     *
     * @throws IllegalArgumentException when the image does not fit this model's input type or cannot be decoded
     */
    ImageInput prepare(ImageData image, int index) {
        int numImageTokens = vlm.imageFeatureSize();
        ImageInputType type = vlm.imageInputType();
        return switch (image) {
            case ImageFeatureData f -> {
                if (type != ImageInputType.IMAGE_FEATURES)
                    throw new IllegalArgumentException("image " + index + " is ImageFeatureData, but this LLM takes "
                            + type.cliName() + " (build it with image_input_type image_features)");
                if (f.numImageTokens() != numImageTokens || f.hiddenSize() != hiddenSize)
                    throw new IllegalArgumentException("image " + index + ": image features have shape "
                            + f.shapeString() + ", expected (" + numImageTokens + ", " + hiddenSize + ")");
                yield new ImageInput(null, 0, 0, f.features(), numImageTokens, null);
            }
            case ImagePixelData p -> {
                if (type != ImageInputType.PIXEL_VALUES)
                    throw new IllegalArgumentException("image " + index + " is ImagePixelData, but this LLM takes "
                            + "image_features (give ImageFeatureData)");
                if (images == null)
                    throw new IllegalArgumentException("this LLM has no image processor (disabled, or no "
                            + "preprocessor_config.json or processor_config.json in " + vlm.imageProcessor() + ")");
                DecodedImageLoader loader = images.loader();
                // AUTO detail: the full anyres grid for LLaVA-NeXT, as the server's default.
                yield loader.prepare(decode(p, index), ImageDetail.AUTO);
            }
        };
    }

    private RgbImage decode(ImagePixelData p, int index) {
        if (p.image() != null) return p.image();
        try {
            byte[] bytes = p.encoded() != null ? p.encoded() : Files.readAllBytes(p.path());
            return decoder.read(bytes);
        } catch (ImageException | IOException e) {
            throw new IllegalArgumentException("image " + index + (p.path() != null ? " (" + p.path() + ")" : "")
                    + ": " + e.getMessage(), e);
        }
    }
}
