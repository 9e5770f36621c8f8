package dev.retina.server.protocol;

/** {@code {"prompt": text}}: the ids decoded with special tokens kept. */
public record DetokenizeResponse(String prompt) {
}
