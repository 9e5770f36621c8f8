package dev.retina.server.backend;

import dev.retina.server.Tokenization;
import dev.retina.server.input.InputProcessor;
import dev.retina.server.protocol.ChatMessage;
import dev.retina.tokenizer.Tokenizer;

import java.util.List;

/** {@link Tokenization} over the checkpoint's tokenizer and the serving input processor (template, images). */
public record EngineTokenization(Tokenizer tokenizer, InputProcessor inputs) implements Tokenization {
    @Override
    public int[] tokenizePrompt(String prompt, boolean addSpecialTokens) {
        return addSpecialTokens ? tokenizer.encodeWithSpecialTokens(prompt) : tokenizer.encode(prompt);
    }

    @Override
    public int[] tokenizeMessages(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return inputs.tokenizeMessages(messages, addGenerationPrompt);
    }

    @Override
    public String detokenize(int[] tokenIds) {
        return tokenizer.decode(tokenIds, false);
    }

    @Override
    public boolean isValidId(int id) {
        return id >= 0 && id < tokenizer.vocabSize();
    }
}
