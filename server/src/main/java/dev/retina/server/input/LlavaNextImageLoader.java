package dev.retina.server.input;

import dev.retina.engine.ImageInput;
import dev.retina.engine.model.LlavaConfig;
import dev.retina.vision.ImageDecoder;
import dev.retina.vision.ImageFetcher;
import dev.retina.vision.LlavaNextImageProcessor;
import dev.retina.vision.BicubicResize;
import dev.retina.vision.RgbImage;

/**
 * LLaVA-NeXT's image path: fetch, decode, optionally resize to the static {@code --image-input-shape} first, then
 * anyres tiles ({@link LlavaNextImageProcessor}); the image's token count comes from the model config
 * ({@link LlavaConfig#numImageTokens(int, int)}) before the request runs. {@link ImageDetail#LOW} keeps only the base
 * tile (the whole image stretched to one tile; the model's base-tile token count). Thread-safe.
 */
public final class LlavaNextImageLoader implements DecodedImageLoader {
    private final ImageStageObserver observer;
    private final ImageFetcher fetcher;
    private final ImageDecoder decoder;
    private final LlavaNextImageProcessor processor;
    private final LlavaConfig config;
    private final int staticHeight; // 0: dynamic (each image at its own size)
    private final int staticWidth;

    /**
     * @param staticHeight with {@code staticWidth}, the size every image is resized to (the backend's bicubic, aspect not
     *                     kept) before tiling, so every image gets the same tiles and token count; 0 for dynamic
     */
    public LlavaNextImageLoader(ImageFetcher fetcher, ImageDecoder decoder, LlavaNextImageProcessor processor,
                                LlavaConfig config, int staticHeight, int staticWidth) {
        this(fetcher, decoder, processor, config, staticHeight, staticWidth, ImageStageObserver.NONE);
    }

    public LlavaNextImageLoader(ImageFetcher fetcher, ImageDecoder decoder, LlavaNextImageProcessor processor,
                                LlavaConfig config, int staticHeight, int staticWidth, ImageStageObserver observer) {
        this.observer = observer;
        if (!config.isNext()) throw new IllegalArgumentException("LlavaNextImageLoader needs a llava_next config");
        if (processor.config().tileSize() != config.visionConfig().imageSize())
            throw new IllegalArgumentException("the image processor makes " + processor.config().tileSize()
                    + "-pixel tiles but the checkpoint's vision_config.image_size is " + config.visionConfig().imageSize());
        this.fetcher = fetcher;
        this.decoder = decoder;
        this.processor = processor;
        this.config = config;
        this.staticHeight = staticHeight;
        this.staticWidth = staticWidth;
    }

    @Override
    public ImageInput load(String url, ImageDetail detail, String param) {
        return DecodedImageLoader.fetchDecodePrepare(this, fetcher, decoder, observer, url, detail, param);
    }

    /** The static {@code --image-input-shape} resize (when set), then {@link #preprocess}. */
    @Override
    public ImageInput prepare(RgbImage image, ImageDetail detail) {
        if (staticHeight > 0 && (image.height() != staticHeight || image.width() != staticWidth))
            image = BicubicResize.resize(image, staticWidth, staticHeight, processor.backend());
        return preprocess(image, detail);
    }

    /** Tiles (or the base tile alone) for a decoded image. */
    ImageInput preprocess(RgbImage image, ImageDetail detail) {
        LlavaNextImageProcessor.Tiles tiles = processor.preprocess(image); // (numTiles, 3, tile, tile)
        String hash = ContentHash.of(image, "next:" + detail.name());
        int tile = tiles.tileSize();
        if (detail == ImageDetail.LOW) {
            float[] base = java.util.Arrays.copyOf(tiles.pixelValues(), 3 * tile * tile); // tile 0: the whole image
            return new ImageInput(base, tile, tile, null, config.numImageTokens(), hash, 1, image.height(),
                    image.width());
        }
        int numImageTokens = config.numImageTokens(image.height(), image.width());
        int expectedTiles = config.numTiles(image.height(), image.width());
        if (tiles.numTiles() != expectedTiles)
            throw new IllegalStateException("the processor made " + tiles.numTiles() + " tiles, the model config expects "
                    + expectedTiles + " (image_grid_pinpoints differ between preprocessor_config.json and config.json)");
        return ImageInput.ofTiles(tiles.pixelValues(), tiles.numTiles(), tile, image.height(), image.width(),
                numImageTokens, hash);
    }
}
