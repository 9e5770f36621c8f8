package dev.retina.server.offline;

import dev.retina.engine.EngineRequest;
import dev.retina.engine.ImageInput;
import dev.retina.tokenizer.Tokenizer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Prompt preparation: turns a {@link Prompt} into an {@link EngineRequest} (tokenize, check the image count,
 * prepare images, expand placeholders, check the context length, assign a request id). Called from any thread that
 * calls {@link LLM#generate}/{@link LLM#submit}; request ids come from an atomic counter.
 */
final class PromptPreprocessor {
    private final Path modelDir;                // names the checkpoint in the no-tokenizer error
    private final Tokenizer tokenizer;          // null: token-id prompts only
    private final int maxImagesPerPrompt;
    private final int maxModelLen;
    private final List<Integer> eosTokenIds;
    private final ImagePreparer images;
    private final PlaceholderExpander placeholders;
    private final AtomicLong nextRequestId = new AtomicLong();

    PromptPreprocessor(Path modelDir, Tokenizer tokenizer, int maxImagesPerPrompt, int maxModelLen,
                       List<Integer> eosTokenIds, ImagePreparer images, PlaceholderExpander placeholders) {
        this.modelDir = modelDir;
        this.tokenizer = tokenizer;
        this.maxImagesPerPrompt = maxImagesPerPrompt;
        this.maxModelLen = maxModelLen;
        this.eosTokenIds = eosTokenIds;
        this.images = images;
        this.placeholders = placeholders;
    }

    /**
     * Turns a prompt into an engine request: tokenize, preprocess images, expand placeholders.
     *
     * @throws IllegalArgumentException when the prompt is invalid (placeholders vs images, lengths, feature shapes)
     */
    EngineRequest toEngineRequest(Prompt prompt) {
        int[] ids;
        if (prompt.text() != null) {
            if (tokenizer == null)
                throw new IllegalArgumentException("the model at " + modelDir + " has no tokenizer.json; give "
                        + "prompts as token ids");
            ids = tokenizer.encodeWithSpecialTokens(prompt.text());
        } else {
            ids = prompt.promptTokenIds();
        }
        if (prompt.images().size() > maxImagesPerPrompt)
            throw new IllegalArgumentException("the prompt carries " + prompt.images().size() + " images; at most "
                    + maxImagesPerPrompt + " per prompt are allowed (limit_mm_per_prompt image=N)");
        List<ImageInput> imageInputs = new ArrayList<>(prompt.images().size());
        for (int i = 0; i < prompt.images().size(); i++) imageInputs.add(images.prepare(prompt.images().get(i), i));
        int[] promptTokenIds = placeholders.expand(ids, imageInputs);
        if (promptTokenIds.length >= maxModelLen)
            throw new IllegalArgumentException("the prompt takes " + promptTokenIds.length + " tokens (images "
                    + "included); the model's context is " + maxModelLen);
        String requestId = "offline-" + nextRequestId.getAndIncrement();
        return new EngineRequest(requestId, promptTokenIds, imageInputs, prompt.params(), eosTokenIds);
    }
}
