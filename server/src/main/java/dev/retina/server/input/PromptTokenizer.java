package dev.retina.server.input;

import java.util.List;

/**
 * What the server needs of a tokenizer: the prompt rule (BOS as HF adds it), decoding, and the checkpoint's special
 * tokens. A narrow seam over {@code dev.retina.tokenizer.Tokenizer}, so input processing is testable with a fake.
 * Implementations are thread-safe.
 */
public interface PromptTokenizer {
    /**
     * Tokenizes a rendered chat prompt as transformers' processor does: special tokens by the tokenizer's
     * post-processor, none when the text already starts with the BOS string.
     */
    int[] encodePrompt(String rendered);

    /** Tokenizes a plain text prompt as transformers' {@code tokenizer(text)} does (the post-processor's tokens). */
    default int[] encodeText(String text) {
        return encodePrompt(text);
    }

    String decode(int[] ids, boolean skipSpecialTokens);

    /** The BOS and EOS strings templates read as {@code bos_token}/{@code eos_token} (null when absent). */
    String bosToken();

    String eosToken();

    /** Ids that end generation. */
    List<Integer> eosTokenIds();
}
