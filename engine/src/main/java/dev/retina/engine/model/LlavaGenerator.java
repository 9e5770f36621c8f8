package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;

import java.util.ArrayList;
import java.util.List;

/**
 * Greedy generation for one sequence with the paged KV cache: prefill (optionally in chunks), then one token per
 * step. The reference loop for parity tests and offline use, not the serving path (that is the engine's runner).
 * Called from one thread at a time.
 */
public final class LlavaGenerator {
    /**
     * @param tokenIds           generated ids, in order
     * @param prefillLastLogits  (vocab) float32 logits at the prompt's last position
     */
    public record Result(int[] tokenIds, float[] prefillLastLogits) {
    }

    /**
     * One LLaVA-NeXT image as the model takes it.
     *
     * @param pixelValues (numTiles, 3, imageSize, imageSize) CHW floats row-major, tile 0 the whole image
     * @param numTiles    tiles in pixelValues
     * @param imageHeight original image height
     * @param imageWidth  original image width
     */
    public record TiledImage(float[] pixelValues, int numTiles, int imageHeight, int imageWidth) {
    }

    private static final int BLOCK_SIZE = 16;

    private final LlavaModel model;

    public LlavaGenerator(LlavaModel model) {
        this.model = model;
    }

    /**
     * @param inputIds      prompt ids with image placeholders already expanded (BOS included)
     * @param pixelValues   (numImages, 3, H, W) CHW floats row-major, or null for a text-only prompt
     * @param numImages     images in pixelValues
     * @param maxNewTokens  tokens to generate (no EOS check: exactly this many)
     * @param prefillChunk  prompt tokens per prefill step ({@code <= 0}: the whole prompt at once)
     */
    public Result greedy(int[] inputIds, float[] pixelValues, int numImages, int maxNewTokens, int prefillChunk) {
        return run(inputIds, session -> {
            if (pixelValues == null || numImages == 0) return null;
            int side = (int) Math.round(Math.sqrt(pixelValues.length / (3.0 * numImages)));
            NDArray encoded = model.encodeImages(session.create(pixelValues, new Shape(numImages, 3, side, side)));
            return encoded.reshape(encoded.getShape().size() / encoded.getShape().get(2), encoded.getShape().get(2));
        }, maxNewTokens, prefillChunk);
    }

    /**
     * Greedy generation for a LLaVA-NeXT prompt: each image's tiles are encoded and packed separately
     * ({@link LlavaModel#encodeImage}), so images may have different numbers of placeholder tokens.
     *
     * @param inputIds prompt ids with each image's placeholders expanded to {@link LlavaModel#numImageTokens(int, int)}
     * @param images   the prompt's images, in prompt order
     */
    public Result greedyTiled(int[] inputIds, List<TiledImage> images, int maxNewTokens, int prefillChunk) {
        return run(inputIds, session -> {
            if (images.isEmpty()) return null;
            int side = model.config().visionConfig().imageSize();
            NDList perImage = new NDList();
            for (TiledImage image : images) {
                NDArray tiles = session.create(image.pixelValues(), new Shape(image.numTiles(), 3, side, side));
                perImage.add(model.encodeImage(tiles, image.imageHeight(), image.imageWidth()));
            }
            return perImage.size() == 1 ? perImage.get(0) : NDArrays.concat(perImage, 0);
        }, maxNewTokens, prefillChunk);
    }

    private Result run(int[] inputIds, java.util.function.Function<NDManager, NDArray> encode, int maxNewTokens,
                       int prefillChunk) {
        int total = inputIds.length + maxNewTokens;
        int numBlocks = (total + BLOCK_SIZE - 1) / BLOCK_SIZE;
        int[] blockTable = new int[numBlocks];
        for (int i = 0; i < numBlocks; i++) blockTable[i] = i;
        int imageToken = model.config().imageTokenIndex();
        List<Integer> imagePositions = new ArrayList<>();
        for (int i = 0; i < inputIds.length; i++) if (inputIds[i] == imageToken) imagePositions.add(i);

        try (KvCache cache = model.newKvCache(numBlocks, BLOCK_SIZE);
             NDManager session = model.manager().newSubManager()) {
            NDArray imageFeatures = encode.apply(session); // (all images' tokens, hidden) or null
            if (imageFeatures != null) {
                if (imageFeatures.getShape().get(0) != imagePositions.size())
                    throw new IllegalArgumentException(imagePositions.size() + " image tokens in the prompt, "
                            + imageFeatures.getShape().get(0) + " feature rows");
            }
            int chunk = prefillChunk <= 0 ? inputIds.length : prefillChunk;
            float[] lastLogits = null;
            int featureRow = 0;
            for (int start = 0; start < inputIds.length; start += chunk) {
                int n = Math.min(chunk, inputIds.length - start);
                try (NDManager step = model.manager().newSubManager()) {
                    int[] ids = java.util.Arrays.copyOfRange(inputIds, start, start + n);
                    NDArray embeds = model.embedTokens(step.create(ids));
                    List<Integer> local = new ArrayList<>();
                    for (int p : imagePositions) if (p >= start && p < start + n) local.add(p - start);
                    if (!local.isEmpty()) {
                        NDArray rows = imageFeatures.get(featureRow + ":" + (featureRow + local.size()));
                        rows.attach(step);
                        model.mergeImageFeatures(embeds, local.stream().mapToInt(Integer::intValue).toArray(), rows);
                        featureRow += local.size();
                    }
                    NDArray logits = model.forward(embeds, ForwardBatch.single(start, n, blockTable, BLOCK_SIZE), cache);
                    lastLogits = logits.toFloatArray();
                }
            }
            int[] out = new int[maxNewTokens];
            int next = argmax(lastLogits);
            for (int i = 0; i < maxNewTokens; i++) {
                out[i] = next;
                if (i == maxNewTokens - 1) break;
                try (NDManager step = model.manager().newSubManager()) {
                    NDArray embeds = model.embedTokens(step.create(new int[] {next}));
                    NDArray logits = model.forward(embeds,
                            ForwardBatch.single(inputIds.length + i, 1, blockTable, BLOCK_SIZE), cache);
                    next = (int) logits.argMax(-1).toLongArray()[0];
                }
            }
            return new Result(out, lastLogits);
        }
    }

    static int argmax(float[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
        return best;
    }
}
