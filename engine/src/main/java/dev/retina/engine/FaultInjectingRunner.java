package dev.retina.engine;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A testing hook for the hardening checks on a real device (docs/RELIABILITY.md): wraps the model runner and, for a
 * step that holds a sequence sampled with one of two marker seeds, throws instead of running it. Seed
 * {@code stepErrorSeed}: a RuntimeException inside the forward pass (the engine fails that step's requests and keeps
 * serving). Seed {@code deathSeed}: an InternalError, which the engine cannot contain (its thread dies). Only on when
 * the JVM is started with {@code -Dretina.faultInjection=step-error-seed=N,death-seed=M}; it logs a warning then.
 */
final class FaultInjectingRunner implements ModelRunner {
    private static final Logger log = LoggerFactory.getLogger(FaultInjectingRunner.class);
    static final String PROPERTY = "retina.faultInjection";

    private final ModelRunner inner;
    private final Long stepErrorSeed;
    private final Long deathSeed;

    FaultInjectingRunner(ModelRunner inner, Long stepErrorSeed, Long deathSeed) {
        this.inner = inner;
        this.stepErrorSeed = stepErrorSeed;
        this.deathSeed = deathSeed;
    }

    /** The runner wrapped when the system property asks for it, else {@code runner} itself. */
    static ModelRunner fromSystemProperty(ModelRunner runner) {
        String spec = System.getProperty(PROPERTY);
        if (spec == null || spec.isBlank()) return runner;
        Long stepError = null;
        Long death = null;
        for (String part : spec.split(",")) {
            String[] kv = part.trim().split("=", 2);
            if (kv.length != 2) throw new IllegalArgumentException(PROPERTY + ": expected key=value, got '" + part + "'");
            long value = Long.parseLong(kv[1].trim());
            switch (kv[0].trim()) {
                case "step-error-seed" -> stepError = value;
                case "death-seed" -> death = value;
                default -> throw new IllegalArgumentException(PROPERTY + ": unknown key '" + kv[0] + "'");
            }
        }
        log.warn("fault injection is ON ({}={}): requests with seed {} fail their step, seed {} kills the engine thread",
                PROPERTY, spec, stepError, death);
        return new FaultInjectingRunner(runner, stepError, death);
    }

    @Override
    public RunnerOutput execute(SchedulerOutput schedulerOutput) {
        for (ScheduledSequence s : schedulerOutput.sequences()) {
            Long seed = s.params().seed();
            if (seed == null) continue;
            if (seed.equals(deathSeed)) throw new InternalError("injected engine death (request " + s.requestId() + ")");
            if (seed.equals(stepErrorSeed))
                throw new IllegalStateException("injected step failure (request " + s.requestId() + ")");
        }
        return inner.execute(schedulerOutput);
    }

    @Override
    public String checkRequest(EngineRequest request) {
        return inner.checkRequest(request);
    }

    @Override
    public EncoderCacheStats encoderCacheStats() {
        return inner.encoderCacheStats();
    }

    @Override
    public void close() {
        inner.close();
    }
}
