package dev.retina.server.input;

import dev.retina.engine.ImageInput;
import dev.retina.vision.RgbImage;

/**
 * An {@link ImageLoader} that can also take an image already decoded, so the offline API ({@code LLM}) preprocesses
 * pixels with exactly the serving path's code (CLIP, or LLaVA-NeXT's static resize and anyres tiles, token count and
 * cache key) without a URL. Thread-safe.
 */
public interface DecodedImageLoader extends ImageLoader {
    /**
     * Model input for a decoded image: everything {@link #load} does after fetching and decoding.
     *
     * @throws IllegalStateException when the processor and the model config disagree about the tiles
     */
    ImageInput prepare(RgbImage image, ImageDetail detail);
}
