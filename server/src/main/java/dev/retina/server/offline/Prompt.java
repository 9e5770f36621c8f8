package dev.retina.server.offline;

import dev.retina.engine.SamplingParams;

import java.util.List;
import java.util.Objects;

/**
 * One offline request: a raw prompt (no chat template is applied, as in vLLM's {@code LLM.generate}) as text or as
 * token ids, its images in prompt order, and sampling settings.
 *
 * <p>Each image needs an image placeholder in the prompt: either one {@code <image>} (expanded to that image's token
 * count: {@code image_feature_size} for LLaVA-1.5, per image size for LLaVA-NeXT) or the seed's form, the placeholder
 * already repeated that image's token count.
 *
 * @param text           the prompt text; null when {@code promptTokenIds} is given
 * @param promptTokenIds the prompt as ids (used as given, no BOS added); null when {@code text} is given
 */
public record Prompt(String text, int[] promptTokenIds, List<ImageData> images, SamplingParams params) {
    /** vLLM's defaults: temperature 1, top_p 1, 16 tokens. */
    public static final SamplingParams DEFAULT_PARAMS =
            new SamplingParams(1, 1f, 1f, -1, 0f, null, 0f, 0f, 1f, 16, 0, List.of(), false, null);

    public Prompt {
        if ((text == null) == (promptTokenIds == null))
            throw new IllegalArgumentException("give exactly one of text and promptTokenIds");
        if (promptTokenIds != null && promptTokenIds.length == 0) throw new IllegalArgumentException("empty prompt");
        images = List.copyOf(images == null ? List.of() : images);
        params = Objects.requireNonNullElse(params, DEFAULT_PARAMS);
    }

    public static Prompt of(String text, SamplingParams params, ImageData... images) {
        return new Prompt(text, null, List.of(images), params);
    }

    public static Prompt ofTokens(int[] promptTokenIds, SamplingParams params, ImageData... images) {
        return new Prompt(null, promptTokenIds.clone(), List.of(images), params);
    }
}
