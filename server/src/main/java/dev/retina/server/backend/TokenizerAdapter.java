package dev.retina.server.backend;

import dev.retina.server.input.PromptTokenizer;
import dev.retina.tokenizer.Tokenizer;

import java.util.List;

/** {@link PromptTokenizer} over the checkpoint's {@link Tokenizer}. */
public record TokenizerAdapter(Tokenizer tokenizer) implements PromptTokenizer {
    @Override
    public int[] encodePrompt(String rendered) {
        return tokenizer.encodePrompt(rendered);
    }

    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
        return tokenizer.decode(ids, skipSpecialTokens);
    }

    @Override
    public String bosToken() {
        return tokenizer.specialTokens().bosToken();
    }

    @Override
    public String eosToken() {
        return tokenizer.specialTokens().eosToken();
    }

    @Override
    public List<Integer> eosTokenIds() {
        return tokenizer.eosTokenIds();
    }
}
