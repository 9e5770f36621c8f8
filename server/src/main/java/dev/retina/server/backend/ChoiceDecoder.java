package dev.retina.server.backend;

import java.util.List;

/**
 * One choice's text as it grows: incremental detokenization plus stop strings. A stop string may span tokens; the
 * text is cut before it and it is never returned, so up to {@code longest stop - 1} characters are held back until
 * they cannot start a match. Used by one thread at a time (the request's output drain).
 */
final class ChoiceDecoder {
    private final OutputTokenizer.StreamDecoder decoder;
    private final List<String> stop;
    private final int maxStopLen;
    private final StringBuilder text = new StringBuilder();
    private int numSent;
    private int numTokens;
    private boolean stopped;

    ChoiceDecoder(OutputTokenizer tokenizer, boolean skipSpecialTokens, List<String> stop) {
        this.decoder = tokenizer.newStreamDecoder(skipSpecialTokens);
        this.stop = List.copyOf(stop);
        this.maxStopLen = this.stop.stream().mapToInt(String::length).max().orElse(0);
    }

    /** Adds one generated id; returns the text that may be sent now (possibly ""). */
    String append(int tokenId) {
        if (stopped) throw new IllegalStateException("choice already stopped");
        numTokens++;
        return advance(decoder.append(tokenId), false);
    }

    /** The choice ended in the engine: returns everything still held back. */
    String finish() {
        if (stopped) return "";
        return advance(decoder.flush(), true);
    }

    /** Whether a stop string matched (the choice is over; the engine request can be aborted). */
    boolean stopped() {
        return stopped;
    }

    /** Tokens consumed, through the one that completed a stop string. */
    int numTokens() {
        return numTokens;
    }

    private String advance(String delta, boolean last) {
        int before = text.length();
        text.append(delta);
        if (maxStopLen > 0) {
            int match = earliestStop(Math.max(0, before - maxStopLen + 1));
            if (match >= 0) {
                text.setLength(match);
                stopped = true;
                return take(text.length());
            }
        }
        int until = last || maxStopLen == 0 ? text.length() : Math.max(numSent, text.length() - (maxStopLen - 1));
        // Never split a surrogate pair across two chunks.
        if (until > numSent && until < text.length() && Character.isHighSurrogate(text.charAt(until - 1))) until--;
        return take(until);
    }

    private int earliestStop(int from) {
        int best = -1;
        for (String s : stop) {
            int at = text.indexOf(s, from);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        return best;
    }

    private String take(int until) {
        if (until <= numSent) return "";
        String out = text.substring(numSent, until);
        numSent = until;
        return out;
    }
}
