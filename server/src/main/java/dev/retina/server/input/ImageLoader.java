package dev.retina.server.input;

import dev.retina.engine.ImageInput;
import dev.retina.server.protocol.ApiException;

/** Turns one {@code image_url} into model input (fetch, decode, preprocess). Thread-safe; blocking. */
@FunctionalInterface
public interface ImageLoader {
    /**
     * @param detail the part's {@code detail} (see {@link ImageDetail})
     * @param param  the request parameter naming this image, for error messages ({@code messages[0].content[1].image_url})
     * @throws ApiException 400/422/504 for images the client got wrong (see {@link ImageErrors})
     */
    ImageInput load(String url, ImageDetail detail, String param);
}
