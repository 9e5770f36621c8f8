package dev.retina.server.backend;

/**
 * What the output side needs of a tokenizer: incremental decoding per choice and the text of single tokens (for
 * logprobs). A seam so the output pipeline is testable with a fake; implementations are thread-safe.
 */
public interface OutputTokenizer {
    /** A fresh per-choice decoder; its deltas plus {@link StreamDecoder#flush()} equal decoding all ids at once. */
    StreamDecoder newStreamDecoder(boolean skipSpecialTokens);

    /** One token's text as logprobs show it (a SentencePiece "▁" is a space). */
    String tokenText(int tokenId);

    /** One token's bytes as logprobs show them (a byte-fallback piece is its raw byte). */
    byte[] tokenBytes(int tokenId);

    /** Per-choice incremental decoder; used by one thread at a time. */
    interface StreamDecoder {
        String append(int tokenId);

        String flush();
    }
}
