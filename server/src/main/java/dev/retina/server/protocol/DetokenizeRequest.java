package dev.retina.server.protocol;

/** The body of {@code POST /detokenize}: {@code {"model", "tokens": [...]}}. */
public record DetokenizeRequest(String model, int[] tokens) {
}
