package dev.retina.server.protocol;

/** {@code {"type":"text","text":"..."}}. */
public record TextPart(String text) implements ContentPart {
    @Override
    public String type() {
        return "text";
    }
}
