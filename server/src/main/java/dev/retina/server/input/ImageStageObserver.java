package dev.retina.server.input;

import dev.retina.vision.ImageDecoder;
import dev.retina.vision.ImageException;
import dev.retina.vision.ImageFetcher;
import dev.retina.vision.RgbImage;

/**
 * Told how long each image stage took (fetch with its byte count, decode, preprocess) and why an image failed;
 * metrics implement it. Called from image-loading threads; implementations are thread-safe and quick.
 */
public interface ImageStageObserver {
    ImageStageObserver NONE = new ImageStageObserver() {
    };

    default void fetched(long nanos, long numBytes) {
    }

    default void failed(ImageException.Reason reason) {
    }

    default void decoded(long nanos) {
    }

    default void preprocessed(long nanos) {
    }

    /** Fetches and decodes {@code url}, reporting both stages (and the failure cause) to this observer. */
    default RgbImage fetchAndDecode(ImageFetcher fetcher, ImageDecoder decoder, String url) throws ImageException {
        try {
            long t0 = System.nanoTime();
            byte[] bytes = fetcher.fetch(url);
            long t1 = System.nanoTime();
            fetched(t1 - t0, bytes.length);
            RgbImage image = decoder.read(bytes);
            decoded(System.nanoTime() - t1);
            return image;
        } catch (ImageException e) {
            failed(e.reason());
            throw e;
        }
    }
}
