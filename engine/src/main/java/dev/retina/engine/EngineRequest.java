package dev.retina.engine;

import java.util.List;

/**
 * What the input processor hands the engine: prompt token ids with each image's placeholder already expanded to
 * its image-token count, the images in prompt order, and sampling settings.
 *
 * @param promptTokenIds prompt ids; each image occupies {@code images.get(i).numImageTokens()} consecutive
 *                       image-token ids, in order
 * @param eosTokenIds    ids that end generation (from the checkpoint), unless {@code ignoreEos}
 */
public record EngineRequest(String requestId, int[] promptTokenIds, List<ImageInput> images, SamplingParams params,
                            List<Integer> eosTokenIds) {
    public EngineRequest {
        if (promptTokenIds == null || promptTokenIds.length == 0) throw new IllegalArgumentException("empty prompt");
        images = List.copyOf(images == null ? List.of() : images);
        eosTokenIds = List.copyOf(eosTokenIds == null ? List.of() : eosTokenIds);
    }
}
