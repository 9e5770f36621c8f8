package dev.retina.templates;

/**
 * How a chat template reads {@code message['content']}: as one string, or as OpenAI's list of typed parts.
 *
 * <p>The server converts each request's messages to this shape before rendering (vLLM calls it the "content
 * format"): STRING templates get text parts joined and image parts replaced by the model's placeholder; OPENAI
 * templates get the parts list itself.
 */
public enum ContentFormat {
    /** Content is a plain string ({@code message['content'] + ...}). */
    STRING,
    /** Content is a list of parts ({@code {"type": "text", "text": ...}}, {@code {"type": "image"}}). */
    OPENAI
}
