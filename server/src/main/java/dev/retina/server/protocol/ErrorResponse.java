package dev.retina.server.protocol;

/** OpenAI's error body: {@code {"error": {"message", "type", "param", "code"}}}; param and code may be null. */
public record ErrorResponse(ErrorBody error) {
    public record ErrorBody(String message, String type, String param, String code) {
    }
}
