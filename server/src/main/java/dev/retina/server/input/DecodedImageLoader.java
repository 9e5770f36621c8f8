package dev.retina.server.input;

import dev.retina.engine.ImageInput;
import dev.retina.vision.ImageDecoder;
import dev.retina.vision.ImageException;
import dev.retina.vision.ImageFetcher;
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

    /**
     * What every loader's {@link #load} does: fetch and decode (timed by the observer), refusals as API errors
     * naming {@code param}, then {@link #prepare} (timed as preprocessing).
     */
    static ImageInput fetchDecodePrepare(DecodedImageLoader loader, ImageFetcher fetcher, ImageDecoder decoder,
                                         ImageStageObserver observer, String url, ImageDetail detail, String param) {
        RgbImage image;
        try {
            image = observer.fetchAndDecode(fetcher, decoder, url);
        } catch (ImageException e) {
            throw ImageErrors.toApi(e, param);
        }
        long t0 = System.nanoTime();
        ImageInput input = loader.prepare(image, detail);
        observer.preprocessed(System.nanoTime() - t0);
        return input;
    }
}
