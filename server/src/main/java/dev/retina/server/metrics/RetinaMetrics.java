package dev.retina.server.metrics;

import dev.retina.engine.EncoderCacheStats;
import dev.retina.engine.EngineStats;
import dev.retina.engine.FinishReason;
import dev.retina.server.input.ImageStageObserver;
import dev.retina.vision.ImageException;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Timer;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;

import java.time.Duration;
import java.util.EnumMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * Retina's Prometheus metrics, named as vLLM names its own under a {@code retina:} prefix (Prometheus allows ':' and
 * Micrometer's Prometheus naming keeps it; Timers get {@code _seconds}, counters {@code _total}). Histogram buckets
 * are vLLM's. Thread-safe: request threads, the output executor and image loaders call the record methods.
 *
 * <p>Request meters: {@code retina:num_requests_running/waiting} (engine stats when bound, else this server's own
 * counts), {@code retina:kv_cache_usage_perc}, {@code retina:num_preemptions_total}, {@code retina:prompt_tokens_total},
 * {@code retina:generation_tokens_total}, {@code retina:request_success_total{finished_reason}},
 * {@code retina:request_failure_total}, histograms {@code retina:time_to_first_token_seconds},
 * {@code retina:time_per_output_token_seconds}, {@code retina:e2e_request_latency_seconds},
 * {@code retina:request_queue_time_seconds} (arrival until the engine took the request: input processing and image
 * loading; waiting inside the engine shows in TTFT, as the engine reports no per-request times).
 *
 * <p>Vision meters: {@code retina:image_fetch_seconds}, {@code retina:image_fetch_size_bytes},
 * {@code retina:image_fetch_failures_total{reason}} (one series per {@link ImageException.Reason}, from 0),
 * {@code retina:image_decode_seconds}, {@code retina:image_preprocess_seconds}, {@code retina:images_per_request},
 * {@code retina:encoder_cache_hit_ratio} and {@code retina:vision_encoder_passes_total} once the encoder cache is bound.
 */
public final class RetinaMetrics {
    private static final double[] TTFT_BUCKETS = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
            1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
    private static final double[] TPOT_BUCKETS = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
            2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
    private static final double[] LATENCY_BUCKETS = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
            40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
    private static final double[] IMAGE_STAGE_BUCKETS = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0, 30.0};
    private static final double[] BYTES_BUCKETS = {1e3, 1e4, 1e5, 1e6, 5e6, 1e7, 2e7, 5e7};
    private static final double[] COUNT_BUCKETS = {0.5, 1, 2, 3, 4, 6, 8, 16};

    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final AtomicInteger numRunning = new AtomicInteger();
    private final AtomicInteger numWaiting = new AtomicInteger();
    private volatile Supplier<EngineStats> engineStats = () -> null;
    private final java.util.List<Object> strongRefs = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final Counter promptTokens;
    private final Counter generationTokens;
    private final Counter failures;
    private final Map<FinishReason, Counter> successes = new EnumMap<>(FinishReason.class);
    private final Timer ttft;
    private final Timer tpot;
    private final Timer e2e;
    private final Timer queueTime;
    private final Timer imageFetch;
    private final DistributionSummary imageBytes;
    private final Map<ImageException.Reason, Counter> fetchFailures = new EnumMap<>(ImageException.Reason.class);
    private final Timer imageDecode;
    private final Timer imagePreprocess;
    private final DistributionSummary imagesPerRequest;

    public RetinaMetrics() {
        Gauge.builder("retina:num_requests_running", () -> {
            EngineStats s = engineStats.get();
            return s != null ? s.numRunning() : numRunning.get();
        }).description("Requests the engine is running").register(registry);
        Gauge.builder("retina:num_requests_waiting", () -> {
            EngineStats s = engineStats.get();
            return s != null ? s.numWaiting() : numWaiting.get();
        }).description("Requests waiting for the engine").register(registry);
        Gauge.builder("retina:kv_cache_usage_perc", () -> {
            EngineStats s = engineStats.get();
            return s == null || s.numTotalBlocks() == 0 ? 0.0
                    : 1.0 - (double) s.numFreeBlocks() / s.numTotalBlocks();
        }).description("Fraction of KV cache blocks in use (1 = full)").register(registry);
        FunctionCounter.builder("retina:num_preemptions", this, m -> {
            EngineStats s = m.engineStats.get();
            return s == null ? 0 : s.numPreemptions();
        }).description("Sequences preempted (recomputed later) since start").register(registry);
        promptTokens = Counter.builder("retina:prompt_tokens").description("Prompt tokens processed, image tokens included")
                .register(registry);
        generationTokens = Counter.builder("retina:generation_tokens").description("Tokens generated").register(registry);
        failures = Counter.builder("retina:request_failure").description("Requests that ended in an error")
                .register(registry);
        for (FinishReason r : FinishReason.values())
            successes.put(r, Counter.builder("retina:request_success").tag("finished_reason",
                    r.name().toLowerCase(Locale.ROOT)).description("Choices finished, by reason").register(registry));
        ttft = timer("retina:time_to_first_token", "Arrival until the first generated token", TTFT_BUCKETS);
        tpot = timer("retina:time_per_output_token", "Time between consecutive output tokens", TPOT_BUCKETS);
        e2e = timer("retina:e2e_request_latency", "Arrival until the last token", LATENCY_BUCKETS);
        queueTime = timer("retina:request_queue_time", "Arrival until the engine took the request (input processing, "
                + "image loading)", LATENCY_BUCKETS);
        imageFetch = timer("retina:image_fetch", "Fetching one image URL (data: URLs included)", IMAGE_STAGE_BUCKETS);
        imageBytes = DistributionSummary.builder("retina:image_fetch_size").baseUnit("bytes")
                .description("Bytes of one fetched image").serviceLevelObjectives(BYTES_BUCKETS).register(registry);
        for (ImageException.Reason r : ImageException.Reason.values())
            fetchFailures.put(r, Counter.builder("retina:image_fetch_failures").tag("reason",
                    r.name().toLowerCase(Locale.ROOT)).description("Images refused, by cause").register(registry));
        imageDecode = timer("retina:image_decode", "Decoding one image to RGB", IMAGE_STAGE_BUCKETS);
        imagePreprocess = timer("retina:image_preprocess", "Resizing/cropping/normalising one image (or its tiles)",
                IMAGE_STAGE_BUCKETS);
        imagesPerRequest = DistributionSummary.builder("retina:images_per_request")
                .description("Images in one chat request").serviceLevelObjectives(COUNT_BUCKETS).register(registry);
    }

    private Timer timer(String name, String description, double[] bucketsSeconds) {
        Duration[] slos = new Duration[bucketsSeconds.length];
        for (int i = 0; i < slos.length; i++) slos[i] = Duration.ofNanos(Math.round(bucketsSeconds[i] * 1e9));
        return Timer.builder(name).description(description).serviceLevelObjectives(slos).register(registry);
    }

    /** Reads running/waiting/KV usage/preemptions from the engine from now on. */
    public void bindEngineStats(Supplier<EngineStats> stats) {
        this.engineStats = stats == null ? () -> null : stats;
    }

    /**
     * With data-parallel replicas: each replica's running, waiting and KV usage as
     * {@code retina:replica_num_requests_running{replica="i"}} (and {@code _waiting}, {@code replica_kv_cache_usage_perc},
     * and the counter {@code retina:replica_requests_routed_total});
     * the unlabelled gauges stay the totals over replicas.
     */
    public void bindReplicaStats(Supplier<java.util.List<EngineStats>> stats, Supplier<long[]> routed, int replicas) {
        strongRefs.add(routed); // Micrometer holds a function counter's object weakly
        for (int i = 0; i < replicas; i++) {
            int r = i;
            FunctionCounter.builder("retina:replica_requests_routed", routed, f -> {
                long[] all = f.get();
                return all == null || all.length <= r ? 0 : all[r];
            }).tag("replica", Integer.toString(r)).description("Requests routed to a data-parallel replica since start")
                    .register(registry);
            Supplier<EngineStats> one = () -> {
                java.util.List<EngineStats> all = stats.get();
                return all == null || all.size() <= r ? null : all.get(r);
            };
            String tag = Integer.toString(r);
            Gauge.builder("retina:replica_num_requests_running", () -> {
                EngineStats s = one.get();
                return s == null ? 0 : s.numRunning();
            }).tag("replica", tag).description("Requests a data-parallel replica is running").register(registry);
            Gauge.builder("retina:replica_num_requests_waiting", () -> {
                EngineStats s = one.get();
                return s == null ? 0 : s.numWaiting();
            }).tag("replica", tag).description("Requests waiting for a data-parallel replica").register(registry);
            Gauge.builder("retina:replica_kv_cache_usage_perc", () -> {
                EngineStats s = one.get();
                return s == null || s.numTotalBlocks() == 0 ? 0.0 : 1.0 - (double) s.numFreeBlocks() / s.numTotalBlocks();
            }).tag("replica", tag).description("Fraction of a replica's KV cache blocks in use").register(registry);
        }
    }

    /** Publishes the encoder cache's hit ratio and vision-encoder passes. */
    public void bindEncoderCache(Supplier<EncoderCacheStats> stats) {
        Gauge.builder("retina:encoder_cache_hit_ratio", () -> {
            EncoderCacheStats s = stats.get();
            long lookups = s == null ? 0 : s.numCacheHits() + s.numCacheMisses();
            return lookups == 0 ? 0.0 : (double) s.numCacheHits() / lookups;
        }).description("Encoder cache hits over lookups since start").register(registry);
        // A FunctionTimer is exposed as retina:vision_encoder_seconds_count and _sum (seconds).
        io.micrometer.core.instrument.FunctionTimer.builder("retina:vision_encoder", stats,
                        s -> s.get() == null ? 0 : s.get().numEncoderPasses(),
                        s -> s.get() == null ? 0 : s.get().encoderNanos(), java.util.concurrent.TimeUnit.NANOSECONDS)
                .description("Time in vision-tower passes (projector included)").register(registry);
        FunctionCounter.builder("retina:vision_encoder_passes", stats, s -> s.get() == null ? 0 : s.get().numEncoderPasses())
                .description("Images run through the vision tower").register(registry);
    }

    /** The text exposition (Prometheus 0.0.4 format). */
    public String scrape() {
        return registry.scrape();
    }

    public PrometheusMeterRegistry registry() {
        return registry;
    }

    // ---- one request's lifecycle (see RequestMetrics) ----

    /** Starts timing a request that arrived at {@code arrivalNanos} ({@link System#nanoTime}). */
    public RequestMetrics startRequest(long arrivalNanos, int numImages) {
        imagesPerRequest.record(numImages);
        numWaiting.incrementAndGet();
        return new RequestMetrics(this, arrivalNanos);
    }

    void engineTook(long nanosSinceArrival, int numPromptTokens) {
        queueTime.record(nanosSinceArrival, TimeUnit.NANOSECONDS);
        promptTokens.increment(numPromptTokens);
    }

    void firstToken(long nanosSinceArrival) {
        ttft.record(nanosSinceArrival, TimeUnit.NANOSECONDS);
        numWaiting.decrementAndGet();
        numRunning.incrementAndGet();
    }

    void interTokenGap(long nanos) {
        tpot.record(nanos, TimeUnit.NANOSECONDS);
    }

    void choiceFinished(FinishReason reason, int numTokens) {
        generationTokens.increment(numTokens);
        successes.get(reason).increment();
    }

    void ended(boolean started, long nanosSinceArrival, boolean failed) {
        if (started) numRunning.decrementAndGet();
        else numWaiting.decrementAndGet();
        if (failed) failures.increment();
        else e2e.record(nanosSinceArrival, TimeUnit.NANOSECONDS);
    }

    // ---- the vision path ----

    public void recordFetch(long nanos, long numBytes) {
        imageFetch.record(nanos, TimeUnit.NANOSECONDS);
        imageBytes.record(numBytes);
    }

    public void recordFetchFailure(ImageException.Reason reason) {
        fetchFailures.get(reason).increment();
    }

    public void recordDecode(long nanos) {
        imageDecode.record(nanos, TimeUnit.NANOSECONDS);
    }

    public void recordPreprocess(long nanos) {
        imagePreprocess.record(nanos, TimeUnit.NANOSECONDS);
    }

    /** The image path's hook: fetch time and bytes, failure causes, decode and preprocess times. */
    public ImageStageObserver imageObserver() {
        return new ImageStageObserver() {
            @Override
            public void fetched(long nanos, long numBytes) {
                recordFetch(nanos, numBytes);
            }

            @Override
            public void failed(ImageException.Reason reason) {
                recordFetchFailure(reason);
            }

            @Override
            public void decoded(long nanos) {
                recordDecode(nanos);
            }

            @Override
            public void preprocessed(long nanos) {
                recordPreprocess(nanos);
            }
        };
    }
}
