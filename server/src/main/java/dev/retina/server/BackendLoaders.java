package dev.retina.server;

import dev.retina.server.backend.LlavaBackendLoader;

/** The loaders {@code retina serve} can use. */
public final class BackendLoaders {
    private BackendLoaders() {
    }

    /** The LLaVA-1.5 backend over DJL (see {@link LlavaBackendLoader}). */
    public static BackendLoader standard() {
        return new LlavaBackendLoader();
    }
}
