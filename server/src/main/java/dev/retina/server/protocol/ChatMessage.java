package dev.retina.server.protocol;

/** One entry of {@code messages}: a role ("system", "user", "assistant") and its content (null is allowed on the wire). */
public record ChatMessage(String role, MessageContent content, String name) {
}
