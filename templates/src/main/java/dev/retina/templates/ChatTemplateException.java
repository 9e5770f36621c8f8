package dev.retina.templates;

/**
 * A chat template could not be parsed or rendered; the message is the template's own ({@code raise_exception})
 * or Jinjava's. The server answers such a request with 400.
 */
public final class ChatTemplateException extends RuntimeException {
    public ChatTemplateException(String message) {
        super(message);
    }

    public ChatTemplateException(String message, Throwable cause) {
        super(message, cause);
    }
}
