package dev.retina.server.input;

import dev.retina.engine.ImageInput;
import dev.retina.server.protocol.ApiException;
import dev.retina.vision.ClipImageProcessor;
import dev.retina.vision.ImageDecoder;
import dev.retina.vision.ImageException;
import dev.retina.vision.ImageFetcher;
import dev.retina.vision.RgbImage;

import java.util.Locale;

/** LLaVA-1.5's image path: fetch the URL, decode to RGB, CLIP-preprocess to (3, H, W) floats. Thread-safe. */
public final class ClipImageLoader implements ImageLoader {
    private final ImageFetcher fetcher;
    private final ImageDecoder decoder;
    private final ClipImageProcessor processor;
    private final int numImageTokens;

    public ClipImageLoader(ImageFetcher fetcher, ImageDecoder decoder, ClipImageProcessor processor, int numImageTokens) {
        this.fetcher = fetcher;
        this.decoder = decoder;
        this.processor = processor;
        this.numImageTokens = numImageTokens;
    }

    @Override
    public ImageInput load(String url, String param) {
        try {
            RgbImage image = decoder.read(fetcher.fetch(url));
            float[] chw = processor.preprocess(image); // (3, outputHeight, outputWidth)
            return ImageInput.ofPixels(chw, processor.outputHeight(), processor.outputWidth(), numImageTokens);
        } catch (ImageException e) {
            throw toApi(e, param);
        }
    }

    /** The status each failure kind gets; the vision module's message is user-safe by contract. */
    static ApiException toApi(ImageException e, String param) {
        int status = switch (e.reason()) {
            case TIMEOUT -> 504;
            case NOT_AN_IMAGE, UNDECODABLE -> 422;
            case BAD_URL, UNSUPPORTED_SCHEME, FORBIDDEN, FETCH_FAILED, HTTP_STATUS, TOO_LARGE, TOO_MANY_PIXELS -> 400;
        };
        return new ApiException(status, ApiException.INVALID_REQUEST, e.getMessage(), param,
                "image_" + e.reason().name().toLowerCase(Locale.ROOT));
    }
}
