package dev.retina.server.backend;

import dev.retina.server.input.PromptTokenizer;
import dev.retina.tokenizer.IncrementalDetokenizer;
import dev.retina.tokenizer.Tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** {@link PromptTokenizer} and {@link OutputTokenizer} over the checkpoint's {@link Tokenizer}. */
public record TokenizerAdapter(Tokenizer tokenizer) implements PromptTokenizer, OutputTokenizer {
    private static final Pattern BYTE_PIECE = Pattern.compile("<0x([0-9A-Fa-f]{2})>");

    @Override
    public int[] encodePrompt(String rendered) {
        return tokenizer.encodePrompt(rendered);
    }

    @Override
    public int[] encodeText(String text) {
        return tokenizer.encodeWithSpecialTokens(text);
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

    @Override
    public StreamDecoder newStreamDecoder(boolean skipSpecialTokens) {
        IncrementalDetokenizer d = tokenizer.newDetokenizer(skipSpecialTokens);
        return new StreamDecoder() {
            @Override
            public String append(int tokenId) {
                return d.append(tokenId);
            }

            @Override
            public String flush() {
                return d.flush();
            }
        };
    }

    @Override
    public String tokenText(int tokenId) {
        String piece = tokenizer.idToToken(tokenId);
        if (piece == null) return "";
        Matcher m = BYTE_PIECE.matcher(piece);
        if (m.matches()) {
            int b = Integer.parseInt(m.group(1), 16);
            return b < 0x80 ? String.valueOf((char) b) : "\uFFFD";
        }
        return piece.replace('\u2581', ' ');
    }

    @Override
    public byte[] tokenBytes(int tokenId) {
        String piece = tokenizer.idToToken(tokenId);
        if (piece != null) {
            Matcher m = BYTE_PIECE.matcher(piece);
            if (m.matches()) return new byte[]{(byte) Integer.parseInt(m.group(1), 16)};
        }
        return tokenText(tokenId).getBytes(StandardCharsets.UTF_8);
    }
}
