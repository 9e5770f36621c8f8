package dev.retina.server;

import dev.retina.server.protocol.ChatMessage;

import java.util.List;

/**
 * What {@code /tokenize} and {@code /detokenize} need of the served model: its tokenizer and chat template.
 * Thread-safe; blocking (chat tokenization loads images), so call it from the request executor.
 */
public interface Tokenization {
    /** A plain text, with BOS where the checkpoint's tokenizer adds it when {@code addSpecialTokens}. */
    int[] tokenizePrompt(String prompt, boolean addSpecialTokens);

    /** Messages rendered with the chat template, each image placeholder expanded to its image's token count. */
    int[] tokenizeMessages(List<ChatMessage> messages, boolean addGenerationPrompt);

    /** Ids to text, special tokens kept (vLLM's /detokenize does the same). */
    String detokenize(int[] tokenIds);

    /** Whether {@code id} is a token of the vocabulary. */
    boolean isValidId(int id);
}
