package dev.retina.server.backend;

import dev.retina.engine.EncoderCacheStats;
import dev.retina.engine.EngineRequest;
import dev.retina.engine.EngineStats;
import dev.retina.engine.EngineStoppedException;
import dev.retina.engine.OutputSink;
import dev.retina.engine.RequestOutput;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code --data-parallel-size N}: N engine replicas, each with its own model copy, KV cache and engine thread (one
 * per GPU), behind one front door. A request goes to the live replica with the least outstanding work: prompt tokens
 * it has been given whose prefill has not produced a token yet, plus the requests it is generating for (vLLM's DP
 * load balancing, counted here rather than read from the replicas' step snapshots, which lag). Ties go to the lowest
 * index. Aborts go to the replica that holds the request. Thread-safe; sinks are called on each replica's engine
 * thread, so the counters are atomics.
 *
 * <p>Encoder caches are per replica (their entries live on that replica's GPU), so routing is image-affine: a request
 * whose image was last sent to replica r goes there again, for a cache hit instead of a second vision-tower pass, as
 * long as r's outstanding work exceeds the least-loaded replica's by no more than the image tokens it would save
 * re-encoding. The last {@value #MAX_IMAGE_HOMES} image hashes are remembered.
 */
public final class DataParallelClient implements EngineClient {
    private final List<EngineClient> replicas;
    private final AtomicLong[] pendingPrefillTokens;
    private final AtomicInteger[] active;
    private final AtomicLong[] routed;
    private final Map<String, Integer> owner = new ConcurrentHashMap<>();
    static final int MAX_IMAGE_HOMES = 4096;
    private final Map<String, Integer> imageHome = java.util.Collections.synchronizedMap(
            new java.util.LinkedHashMap<>(256, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<String, Integer> eldest) {
                    return size() > MAX_IMAGE_HOMES;
                }
            });
    private final AtomicLong affinityRoutes = new AtomicLong();

    public DataParallelClient(List<EngineClient> replicas) {
        if (replicas.isEmpty()) throw new IllegalArgumentException("no replicas");
        this.replicas = List.copyOf(replicas);
        int n = replicas.size();
        pendingPrefillTokens = new AtomicLong[n];
        active = new AtomicInteger[n];
        routed = new AtomicLong[n];
        for (int i = 0; i < n; i++) {
            pendingPrefillTokens[i] = new AtomicLong();
            active[i] = new AtomicInteger();
            routed[i] = new AtomicLong();
        }
    }

    public int size() {
        return replicas.size();
    }

    /** Outstanding work of replica {@code i}: pending prefill tokens + requests generating. */
    public long load(int i) {
        return pendingPrefillTokens[i].get() + active[i].get();
    }

    /** Requests routed to replica {@code i} since start. */
    public long routed(int i) {
        return routed[i].get();
    }

    /** Requests sent to the replica that already holds one of their images though another was less loaded. */
    public long affinityRoutes() {
        return affinityRoutes.get();
    }

    @Override
    public void addRequest(EngineRequest request, OutputSink sink) {
        int target = pick(request);
        if (target < 0) throw new EngineStoppedException("every engine replica has stopped");
        int promptTokens = request.promptTokenIds().length;
        int choices = Math.max(1, request.params().n());
        pendingPrefillTokens[target].addAndGet(promptTokens);
        active[target].incrementAndGet();
        routed[target].incrementAndGet();
        owner.put(request.requestId(), target);
        for (var image : request.images()) if (image.contentHash() != null) imageHome.put(image.contentHash(), target);
        OutputSink counted = new OutputSink() {
            private boolean prefilled;
            private int finished;

            @Override
            public void accept(RequestOutput out) {
                // Engine thread of the target replica: outputs of one request arrive in order on that thread.
                if (!prefilled) {
                    prefilled = true;
                    pendingPrefillTokens[target].addAndGet(-promptTokens);
                }
                if (out.finished() && ++finished == choices) release(request.requestId(), target);
                sink.accept(out);
            }
        };
        try {
            replicas.get(target).addRequest(request, counted);
        } catch (RuntimeException e) {
            pendingPrefillTokens[target].addAndGet(-promptTokens);
            release(request.requestId(), target);
            throw e;
        }
    }

    private void release(String requestId, int target) {
        if (owner.remove(requestId, target)) active[target].decrementAndGet();
    }

    /**
     * The replica holding the request's images when its load is within those images' tokens of the least loaded,
     * else the least loaded live replica; -1 when none is alive.
     */
    int pick(EngineRequest request) {
        int best = pick();
        if (best < 0) return best;
        int home = -1;
        long saved = 0;
        for (var image : request.images()) {
            if (image.contentHash() == null) continue;
            Integer r = imageHome.get(image.contentHash());
            if (r == null || !replicas.get(r).isAlive()) continue;
            if (home < 0) home = r;
            if (r == home) saved += image.numImageTokens();
        }
        if (home < 0 || home == best || load(home) > load(best) + saved) return best;
        affinityRoutes.incrementAndGet();
        return home;
    }

    /** The live replica with the least outstanding work, or -1 when none is alive. */
    int pick() {
        int best = -1;
        long bestLoad = Long.MAX_VALUE;
        for (int i = 0; i < replicas.size(); i++) {
            if (!replicas.get(i).isAlive()) continue;
            long l = load(i);
            if (l < bestLoad) {
                best = i;
                bestLoad = l;
            }
        }
        return best;
    }

    @Override
    public void abort(String requestId) {
        Integer target = owner.get(requestId);
        if (target != null) replicas.get(target).abort(requestId);
    }

    /** Alive only while every replica is: a dead one lowers capacity, and a restart brings it back. */
    @Override
    public boolean isAlive() {
        for (EngineClient r : replicas) if (!r.isAlive()) return false;
        return true;
    }

    /** The replicas' load and step counters added up (KV blocks and preemptions summed over replicas). */
    @Override
    public EngineStats stats() {
        EngineStats sum = null;
        for (EngineClient r : replicas) {
            EngineStats s = r.stats();
            if (s != null) sum = sum == null ? s : sum.plus(s);
        }
        return sum;
    }

    @Override
    public List<EngineStats> replicaStats() {
        List<EngineStats> out = new ArrayList<>(replicas.size());
        for (EngineClient r : replicas) out.add(r.stats());
        return out;
    }

    @Override
    public EncoderCacheStats encoderCacheStats() {
        long hits = 0;
        long misses = 0;
        long passes = 0;
        long nanos = 0;
        int images = 0;
        int tokens = 0;
        boolean any = false;
        for (EngineClient r : replicas) {
            EncoderCacheStats s = r.encoderCacheStats();
            if (s == null) continue;
            any = true;
            hits += s.numCacheHits();
            misses += s.numCacheMisses();
            passes += s.numEncoderPasses();
            nanos += s.encoderNanos();
            images += s.numCachedImages();
            tokens += s.numCachedTokens();
        }
        return any ? new EncoderCacheStats(passes, hits, misses, images, tokens, nanos) : null;
    }

    @Override
    public void close() {
        RuntimeException first = null;
        for (EngineClient r : replicas) {
            try {
                r.close();
            } catch (RuntimeException e) {
                if (first == null) first = e;
            }
        }
        if (first != null) throw first;
    }
}
