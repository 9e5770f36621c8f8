package dev.retina.tokenizer;

import java.util.Arrays;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Turns one sequence's generated ids into text deltas as they arrive, so that the concatenated deltas plus
 * {@link #flush()} equal {@code decode(allIds)} exactly. One per sequence; used by one thread at a time (the
 * request's output consumer, not the engine thread).
 *
 * <p>Decoding ids one by one loses leading spaces (decoders strip the first one) and splits multi-byte
 * characters. So, as vLLM does, it keeps two offsets: the text of {@code ids[prefix:]} minus the text of
 * {@code ids[prefix:read]} is the new text, decoded with a few earlier tokens as context. It holds text back while
 * the decoded tail ends in U+FFFD (an incomplete UTF-8 sequence) and while the last kept token is a
 * byte-fallback piece: ByteFallback decodes a run of byte pieces as a whole, and a later byte can turn the whole
 * run, already complete characters included, into U+FFFD.
 */
public final class IncrementalDetokenizer {
    private static final Logger LOG = LoggerFactory.getLogger(IncrementalDetokenizer.class);

    private final Tokenizer tokenizer;
    private final boolean skipSpecialTokens;
    private int[] ids = new int[16];
    private int numIds;
    private int prefixOffset;
    private int readOffset;
    private boolean warnedUnstable;

    IncrementalDetokenizer(Tokenizer tokenizer, boolean skipSpecialTokens) {
        this.tokenizer = tokenizer;
        this.skipSpecialTokens = skipSpecialTokens;
    }

    /** Adds one generated id; returns the text it completes, possibly "". */
    public String append(int tokenId) {
        if (numIds == ids.length) {
            ids = Arrays.copyOf(ids, ids.length * 2);
        }
        ids[numIds++] = tokenId;
        if (skipSpecialTokens && tokenizer.specialTokens().isSpecial(tokenId)) {
            return ""; // decodes to nothing and does not close a run of byte pieces
        }
        if (tokenizer.isByteFallback(tokenId)) {
            return "";
        }
        return emit(false);
    }

    /** The text still held back (an unfinished character), at the end of the sequence. */
    public String flush() {
        return emit(true);
    }

    private String emit(boolean force) {
        String prefixText = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset), skipSpecialTokens);
        String newText = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, numIds), skipSpecialTokens);
        if (newText.length() <= prefixText.length() || (!force && newText.endsWith("\uFFFD"))) {
            return "";
        }
        if (!newText.startsWith(prefixText) && !warnedUnstable) {
            // Not seen with Metaspace/ByteFallback/ByteLevel decoders; an exotic decoder may rewrite earlier text.
            // Text already sent cannot be taken back, so carry on as vLLM does and say so once.
            warnedUnstable = true;
            LOG.warn("decoder rewrote earlier text ('{}' then '{}'); streamed text may differ from decode()",
                    prefixText, newText);
        }
        prefixOffset = readOffset;
        readOffset = numIds;
        return newText.substring(prefixText.length());
    }

    /** All ids appended so far. */
    public int[] tokenIds() {
        return Arrays.copyOf(ids, numIds);
    }
}
