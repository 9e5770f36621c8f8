package dev.retina.vision;

import java.util.Locale;

/**
 * Which of transformers 5's two image-processor backends Retina reproduces bit for bit. {@link #TORCHVISION} is
 * what {@code AutoImageProcessor}, {@code AutoProcessor} and {@code LlavaProcessor} give by default in transformers 5
 * ({@code CLIPImageProcessor}, {@code LlavaNextImageProcessor}): uint8 tensors resized by PyTorch's antialiased
 * bicubic kernel (16-bit fixed-point weights), then a fused rescale-and-normalize in float32. {@link #PIL} is
 * {@code CLIPImageProcessorPil} / {@code LlavaNextImageProcessorPil} (transformers 4's slow processors): Pillow's
 * BICUBIC (22-bit weights), rescale in float64, normalize in float32. Pixels differ by up to ~0.03.
 */
public enum ImageProcessorBackend {
    PIL("pil"),
    TORCHVISION("torchvision");

    private final String cliName;

    ImageProcessorBackend(String cliName) {
        this.cliName = cliName;
    }

    public String cliName() {
        return cliName;
    }

    /** Parses "pil" or "torchvision" (case-insensitive). */
    public static ImageProcessorBackend parse(String text) {
        for (ImageProcessorBackend b : values()) if (b.cliName.equals(text.toLowerCase(Locale.ROOT))) return b;
        throw new IllegalArgumentException("image processor backend must be pil or torchvision, got '" + text + "'");
    }

    /**
     * The backend transformers 5 loads for a preprocessor_config.json whose {@code image_processor_type} is
     * {@code type}: the PIL one for a {@code ...Pil} class, else torchvision (its default, also for the older
     * {@code ...Fast} names).
     */
    public static ImageProcessorBackend forProcessorType(String type) {
        return type != null && type.endsWith("Pil") ? PIL : TORCHVISION;
    }
}
