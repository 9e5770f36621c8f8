package dev.retina.server.backend;

import dev.retina.engine.EngineFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The engine replicas a model runs on ({@code --data-parallel-size}; one without it) and the client requests go
 * through: the engine itself for one replica, a {@link DataParallelClient} for several.
 */
public record Engines(List<EngineFactory.Loaded> replicas, EngineClient client) implements AutoCloseable {
    public static Engines of(List<EngineFactory.Loaded> replicas) {
        if (replicas.size() == 1) return new Engines(List.copyOf(replicas), EngineClient.of(replicas.getFirst().engine()));
        List<EngineClient> clients = new ArrayList<>();
        for (EngineFactory.Loaded r : replicas) clients.add(EngineClient.of(r.engine()));
        return new Engines(List.copyOf(replicas), new DataParallelClient(clients));
    }

    public int size() {
        return replicas.size();
    }

    public EngineFactory.Loaded first() {
        return replicas.getFirst();
    }

    /** "gpu(0)", or "gpu(0), gpu(1)" for replicas. */
    public String deviceNames() {
        return replicas.stream().map(EngineFactory.Loaded::deviceName).collect(Collectors.joining(", "));
    }

    /** What a backend closes after the engines (its client): each replica's model, then {@code others}. */
    public AutoCloseable[] closeables(AutoCloseable... others) {
        List<AutoCloseable> out = new ArrayList<>();
        for (EngineFactory.Loaded r : replicas) out.add(r.model());
        out.addAll(java.util.Arrays.stream(others).filter(java.util.Objects::nonNull).toList());
        return out.toArray(AutoCloseable[]::new);
    }

    /** Stops every engine and frees every model. */
    @Override
    public void close() {
        for (EngineFactory.Loaded r : replicas) r.close();
    }
}
