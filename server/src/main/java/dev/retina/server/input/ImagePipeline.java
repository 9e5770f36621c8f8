package dev.retina.server.input;

import dev.retina.engine.model.LlavaConfig;
import dev.retina.server.config.ConfigException;
import dev.retina.server.config.ServerConfig;
import dev.retina.templates.ChatTemplate;
import dev.retina.vision.ClipImageProcessor;
import dev.retina.vision.ClipProcessorConfig;
import dev.retina.vision.ImageDecoder;
import dev.retina.vision.ImageFetcher;
import dev.retina.vision.ImageProcessorBackend;
import dev.retina.vision.LlavaNextImageProcessor;
import dev.retina.vision.LlavaNextProcessorConfig;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;

/**
 * The serving side of images, built once at startup from the flags and the checkpoint: the fetcher under the
 * {@code --allowed-*}/{@code --max-*} policy, the decoder with its pixel cap, the model's preprocessor (CLIP for
 * LLaVA-1.5, anyres tiles for LLaVA-NeXT, loaded from {@code --image-processor} or the model directory), the
 * {@link ImageLoadPool}, and the prompt limits; then the {@link InputProcessor} over them. Owns the fetcher and the
 * pool ({@link #close}).
 */
public final class ImagePipeline implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ImagePipeline.class);

    private final DecodedImageLoader loader;   // null: --disable-image-processor
    private final ImageFetcher fetcher;        // null with loader
    private final ExecutorService pool;
    private final PromptLimits limits;

    private ImagePipeline(DecodedImageLoader loader, ImageFetcher fetcher, ExecutorService pool, PromptLimits limits) {
        this.loader = loader;
        this.fetcher = fetcher;
        this.pool = pool;
        this.limits = limits;
    }

    /**
     * @param resolved the flags checked against {@code llava} ({@link ServerConfig#resolve})
     * @throws ConfigException when the processor config is missing or disagrees with the checkpoint
     */
    public static ImagePipeline create(ServerConfig config, ServerConfig.Resolved resolved, LlavaConfig llava) {
        return create(config, resolved, llava, ImageStageObserver.NONE);
    }

    /** @param observer told each image's stage timings and failure causes (metrics) */
    public static ImagePipeline create(ServerConfig config, ServerConfig.Resolved resolved, LlavaConfig llava,
                                       ImageStageObserver observer) {
        PromptLimits limits = new PromptLimits(resolved.vlm().imageTokenId(), llava.numImageTokens(),
                config.maxImagesPerPrompt(), resolved.maxModelLen());
        String processorDir = resolved.vlm().imageProcessor();
        if (processorDir == null) return new ImagePipeline(null, null, ImageLoadPool.create(1), limits);
        if (resolved.vlm().imageProcessorRevision() != null)
            log.info("--image-processor-revision {} ignored: the image processor is read from the directory {} "
                    + "(Hub downloads are not available)", resolved.vlm().imageProcessorRevision(), processorDir);
        ImageFetcher fetcher = new ImageFetcher(config.media().fetchPolicy(config.imageFetchTimeout(),
                config.maxImageBytes()));
        ImageDecoder decoder = new ImageDecoder(config.media().maxImagePixels());
        DecodedImageLoader loader;
        try {
            ImageProcessorBackend backend = backend(config, Path.of(processorDir));
            log.info("image processor: {} from {}, {} backend", llava.isNext() ? "LLaVA-NeXT anyres" : "CLIP",
                    processorDir, backend.cliName());
            loader = llava.isNext() ? nextLoader(config, llava, Path.of(processorDir), fetcher, decoder, observer, backend)
                    : clipLoader(llava, Path.of(processorDir), fetcher, decoder, observer, backend);
        } catch (RuntimeException e) {
            fetcher.close();
            throw e;
        }
        return new ImagePipeline(loader, fetcher, ImageLoadPool.create(ImageLoadPool.defaultNumThreads()), limits);
    }

    /** {@code --image-processor-backend}, else what transformers 5 loads for the processor config. */
    private static ImageProcessorBackend backend(ServerConfig config, Path dir) {
        if (config.vlm().imageProcessorBackend() != null) return config.vlm().imageProcessorBackend();
        try {
            return ClipProcessorConfig.defaultBackend(dir);
        } catch (IOException | IllegalArgumentException e) {
            throw new ConfigException("image processor config in " + dir + ": " + e.getMessage());
        }
    }

    private static DecodedImageLoader clipLoader(LlavaConfig llava, Path dir, ImageFetcher fetcher, ImageDecoder decoder,
                                          ImageStageObserver observer, ImageProcessorBackend backend) {
        ClipImageProcessor processor;
        try {
            processor = new ClipImageProcessor(ClipProcessorConfig.load(dir), backend);
        } catch (IOException | IllegalArgumentException e) {
            throw new ConfigException("image processor config in " + dir + ": " + e.getMessage());
        }
        int side = llava.visionConfig().imageSize();
        if (processor.outputHeight() != side || processor.outputWidth() != side)
            throw new ConfigException("the image processor makes " + processor.outputHeight() + "x"
                    + processor.outputWidth() + " images but the checkpoint's vision_config.image_size is " + side);
        return new ClipImageLoader(fetcher, decoder, processor, llava.numImageTokens(), observer);
    }

    private static DecodedImageLoader nextLoader(ServerConfig config, LlavaConfig llava, Path dir, ImageFetcher fetcher,
                                          ImageDecoder decoder, ImageStageObserver observer,
                                          ImageProcessorBackend backend) {
        LlavaNextProcessorConfig pc;
        try {
            pc = LlavaNextProcessorConfig.load(dir);
        } catch (IOException | IllegalArgumentException e) {
            throw new ConfigException("image processor config in " + dir + ": " + e.getMessage());
        }
        if (!samePinpoints(pc.imageGridPinpoints(), llava.imageGridPinpoints()))
            throw new ConfigException("image_grid_pinpoints of the image processor (" + describe(pc.imageGridPinpoints())
                    + ") differ from config.json's (" + describe(llava.imageGridPinpoints()) + ")");
        List<Integer> shape = config.vlm().imageInputShape();
        int height = shape == null ? 0 : shape.get(2);
        int width = shape == null ? 0 : shape.get(3);
        try {
            return new LlavaNextImageLoader(fetcher, decoder, new LlavaNextImageProcessor(pc, backend), llava, height, width,
                    observer);
        } catch (IllegalArgumentException e) {
            throw new ConfigException(e.getMessage());
        }
    }

    private static boolean samePinpoints(List<int[]> a, List<int[]> b) {
        if (a.size() != b.size()) return false;
        for (int i = 0; i < a.size(); i++) if (!Arrays.equals(a.get(i), b.get(i))) return false;
        return true;
    }

    private static String describe(List<int[]> pinpoints) {
        return String.join(", ", pinpoints.stream().map(Arrays::toString).toList());
    }

    /** The image loader (URLs, or decoded images for the offline API), or null when the image processor is disabled. */
    public DecodedImageLoader loader() {
        return loader;
    }

    public PromptLimits limits() {
        return limits;
    }

    /** The input processor over this pipeline; {@code executor} prepares requests, images load on the pool. */
    public InputProcessor inputProcessor(ChatTemplate template, PromptTokenizer tokenizer, Executor executor) {
        return new InputProcessor(template, tokenizer, loader, limits, executor, pool);
    }

    @Override
    public void close() {
        pool.shutdownNow();
        if (fetcher != null) fetcher.close();
    }
}
