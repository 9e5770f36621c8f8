package dev.retina.server.http;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntSupplier;

/**
 * Bounds generation requests in flight and knows when the server drains. A request is admitted when the server is
 * not draining and fewer than {@code maxNumWaiting} admitted requests are beyond those the engine runs
 * ({@code numRunning}, from engine stats; 0 when the engine reports none, which makes the bound one on all requests
 * in flight). Thread-safe.
 */
public final class AdmissionControl {
    /** What {@link #tryAdmit} decided. */
    public enum Decision { ADMITTED, QUEUE_FULL, DRAINING }

    private final int maxNumWaiting;
    private final AtomicInteger numInFlight = new AtomicInteger();
    private volatile IntSupplier numRunning = () -> 0;
    private volatile boolean draining;

    /** @param maxNumWaiting 0 for no bound */
    public AdmissionControl(int maxNumWaiting) {
        this.maxNumWaiting = maxNumWaiting;
    }

    /** Where the running count comes from once the engine is up. */
    public void bindNumRunning(IntSupplier numRunning) {
        this.numRunning = numRunning;
    }

    public Decision tryAdmit() {
        if (draining) return Decision.DRAINING;
        int n = numInFlight.incrementAndGet();
        if (maxNumWaiting > 0 && n - Math.max(0, numRunning.getAsInt()) > maxNumWaiting) {
            numInFlight.decrementAndGet();
            return Decision.QUEUE_FULL;
        }
        return Decision.ADMITTED;
    }

    public void release() {
        numInFlight.decrementAndGet();
    }

    public int numInFlight() {
        return numInFlight.get();
    }

    public void startDraining() {
        draining = true;
    }

    public boolean isDraining() {
        return draining;
    }
}
