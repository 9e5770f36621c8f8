package dev.retina.server;

import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The one model this server answers for: its public name, and its backend once loaded. Before that, /health says
 * 503 and chat requests get 503. Thread-safe; read from request threads, written once by the loader.
 */
public final class ServedModel {
    private final String name;
    private final long createdEpochSeconds;
    private final AtomicReference<BackendLoader.LoadedModel> loaded = new AtomicReference<>();

    public ServedModel(String name, long createdEpochSeconds) {
        this.name = Objects.requireNonNull(name, "name");
        this.createdEpochSeconds = createdEpochSeconds;
    }

    public String name() {
        return name;
    }

    public long createdEpochSeconds() {
        return createdEpochSeconds;
    }

    public void markLoaded(BackendLoader.LoadedModel model) {
        if (!loaded.compareAndSet(null, Objects.requireNonNull(model)))
            throw new IllegalStateException("model " + name + " is already loaded");
    }

    public boolean isReady() {
        return loaded.get() != null;
    }

    public Optional<BackendLoader.LoadedModel> loaded() {
        return Optional.ofNullable(loaded.get());
    }
}
