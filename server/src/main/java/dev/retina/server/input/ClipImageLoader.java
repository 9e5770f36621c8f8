package dev.retina.server.input;

import dev.retina.engine.ImageInput;
import dev.retina.vision.ClipImageProcessor;
import dev.retina.vision.ImageDecoder;
import dev.retina.vision.ImageFetcher;
import dev.retina.vision.RgbImage;

/**
 * LLaVA-1.5's image path: fetch the URL, decode to RGB, CLIP-preprocess to (3, H, W) floats, key it for the encoder
 * cache. {@code detail} changes nothing (one resolution). Thread-safe.
 */
public final class ClipImageLoader implements DecodedImageLoader {
    private final ImageFetcher fetcher;
    private final ImageDecoder decoder;
    private final ClipImageProcessor processor;
    private final int numImageTokens;
    private final ImageStageObserver observer;

    public ClipImageLoader(ImageFetcher fetcher, ImageDecoder decoder, ClipImageProcessor processor, int numImageTokens) {
        this(fetcher, decoder, processor, numImageTokens, ImageStageObserver.NONE);
    }

    public ClipImageLoader(ImageFetcher fetcher, ImageDecoder decoder, ClipImageProcessor processor, int numImageTokens,
                           ImageStageObserver observer) {
        this.observer = observer;
        this.fetcher = fetcher;
        this.decoder = decoder;
        this.processor = processor;
        this.numImageTokens = numImageTokens;
    }

    @Override
    public ImageInput load(String url, ImageDetail detail, String param) {
        return DecodedImageLoader.fetchDecodePrepare(this, fetcher, decoder, observer, url, detail, param);
    }

    @Override
    public ImageInput prepare(RgbImage image, ImageDetail detail) {
        float[] chw = processor.preprocess(image); // (3, outputHeight, outputWidth)
        return new ImageInput(chw, processor.outputHeight(), processor.outputWidth(), null, numImageTokens,
                ContentHash.of(image, "clip"), 1, image.height(), image.width());
    }
}
