package dev.retina.server.protocol;

/** {@code stream_options}: with {@code include_usage}, a last chunk carries the usage and no choices. */
public record StreamOptions(Boolean includeUsage) {
    public boolean wantsUsage() {
        return Boolean.TRUE.equals(includeUsage);
    }
}
