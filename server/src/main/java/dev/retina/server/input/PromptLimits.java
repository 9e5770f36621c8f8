package dev.retina.server.input;

/**
 * The model facts input processing needs, from the checkpoint and the resolved flags.
 *
 * @param imageTokenId       id of the {@code <image>} placeholder in the tokenized prompt
 * @param numImageTokens     copies of the placeholder one image expands to
 * @param maxImagesPerPrompt most images one request may carry
 * @param maxModelLen        most tokens, prompt (images expanded) plus completion
 */
public record PromptLimits(int imageTokenId, int numImageTokens, int maxImagesPerPrompt, int maxModelLen) {
    public PromptLimits {
        if (numImageTokens < 1 || maxImagesPerPrompt < 0 || maxModelLen < 2)
            throw new IllegalArgumentException("bad prompt limits");
    }
}
