package dev.retina.server;

import dev.retina.server.config.ServerConfig;

/** Loads the model behind the server once, at startup, on the main thread (the HTTP port is already open). */
@FunctionalInterface
public interface BackendLoader {
    /**
     * @throws dev.retina.server.config.ConfigException when a flag contradicts the checkpoint
     * @throws Exception                                when the checkpoint cannot be read
     */
    LoadedModel load(ServerConfig config) throws Exception;

    /** As {@link #load(ServerConfig)}, reporting image stage timings to {@code images} (metrics). */
    default LoadedModel load(ServerConfig config, dev.retina.server.input.ImageStageObserver images) throws Exception {
        return load(config);
    }

    /**
     * @param root        where the weights came from (shown by /v1/models)
     * @param maxModelLen the longest prompt plus completion in force
     * @param tokenization what /tokenize and /detokenize use, or null when the model offers none
     */
    record LoadedModel(ChatBackend backend, String root, int maxModelLen, Tokenization tokenization,
                       String summary) {
        /** Without a summary for the startup line. */
        public LoadedModel(ChatBackend backend, String root, int maxModelLen, Tokenization tokenization) {
            this(backend, root, maxModelLen, tokenization, "");
        }

        /** A model without /tokenize support (tests). */
        public LoadedModel(ChatBackend backend, String root, int maxModelLen) {
            this(backend, root, maxModelLen, null);
        }

        public LoadedModel withBackend(ChatBackend newBackend) {
            return new LoadedModel(newBackend, root, maxModelLen, tokenization, summary);
        }
    }
}
