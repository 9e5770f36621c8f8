package dev.retina.server;

/** The loaders {@code retina serve} can use. */
public final class BackendLoaders {
    private BackendLoaders() {
    }

    /** The LLaVA backend over DJL. Not wired yet in this build: startup stops with a clear message. */
    public static BackendLoader standard() {
        return config -> {
            throw new UnsupportedOperationException("the LLaVA backend is not wired into this build yet");
        };
    }
}
