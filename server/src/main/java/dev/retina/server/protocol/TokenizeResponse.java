package dev.retina.server.protocol;

/** {@code {"tokens": [...], "count": N, "max_model_len": M}}: the prompt's ids (images expanded) and the limit. */
public record TokenizeResponse(int[] tokens, int count, int maxModelLen) {
}
