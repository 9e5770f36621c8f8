package dev.retina.server.input;

import java.util.List;

/**
 * What the server needs of a tokenizer: the prompt rule (BOS as HF adds it), decoding, and the checkpoint's special
 * tokens. A narrow seam over {@code dev.retina.tokenizer.Tokenizer}, so input processing is testable with a fake.
 * Implementations are thread-safe.
 */
public interface PromptTokenizer {
    /** Tokenizes a rendered chat prompt, adding BOS where the checkpoint's tokenizer would. */
    int[] encodePrompt(String rendered);

    String decode(int[] ids, boolean skipSpecialTokens);

    /** The BOS and EOS strings templates read as {@code bos_token}/{@code eos_token} (null when absent). */
    String bosToken();

    String eosToken();

    /** Ids that end generation. */
    List<Integer> eosTokenIds();
}
