package dev.retina.server.backend;

import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/**
 * Where a stop string first appears in generated text: the text is cut before it (the stop string is not returned,
 * as OpenAI does).
 *
 * @param text     the text before the earliest stop string
 * @param stopEnd  index in the full text just after the matched stop string
 */
record StopCut(String text, int stopEnd) {

    /** The cut for the earliest match of any stop string, or null when none occurs. */
    static StopCut apply(String text, List<String> stop) {
        int best = -1;
        String matched = null;
        for (String s : stop) {
            int at = text.indexOf(s);
            if (at >= 0 && (best < 0 || at < best || at == best && s.length() > matched.length())) {
                best = at;
                matched = s;
            }
        }
        return best < 0 ? null : new StopCut(text.substring(0, best), best + matched.length());
    }

    /**
     * How many tokens were needed to produce text through the stop string: the smallest prefix whose decoding
     * reaches {@link #stopEnd}; this is what {@code completion_tokens} reports (generation would have stopped there).
     */
    int tokensThrough(int[] ids, Function<int[], String> decode) {
        int lo = 1, hi = ids.length;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (decode.apply(Arrays.copyOf(ids, mid)).length() >= stopEnd) hi = mid;
            else lo = mid + 1;
        }
        return hi;
    }
}
