package dev.retina.server.config;

/** A command-line value that is malformed or contradicts the checkpoint; its message is shown to the operator. */
public final class ConfigException extends RuntimeException {
    public ConfigException(String message) {
        super(message);
    }
}
