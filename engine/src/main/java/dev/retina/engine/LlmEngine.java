package dev.retina.engine;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.LinkedBlockingQueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The batching engine: one thread ("retina-engine") owns the scheduler, block manager, model runner and every
 * sequence. {@link #addRequest}, {@link #abort}, {@link #stats} and {@link #close} are thread-safe; they only enqueue
 * commands (or read a volatile snapshot). Outputs go to each request's {@link OutputSink} on the engine thread.
 */
public final class LlmEngine implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(LlmEngine.class);

    private sealed interface Command permits Add, Abort, Shutdown {}
    private record Add(EngineRequest request, OutputSink sink, long arrivalNanos) implements Command {}
    private record Abort(String requestId) implements Command {}
    private record Shutdown() implements Command {}

    private final EngineConfig config;
    private final ModelRunner runner;
    private final Scheduler scheduler;
    private final LinkedBlockingQueue<Command> inbox = new LinkedBlockingQueue<>();
    private final Thread thread;
    private volatile EngineStats stats;
    private volatile boolean closed;
    private volatile String deathCause; // non-null once the engine thread has ended other than by close()
    // Engine-thread state below.
    private final Map<String, OutputSink> sinks = new HashMap<>();
    private final SplittableRandom seedSource = new SplittableRandom();
    private long nextSeqId;
    private volatile long numSteps;
    private long numPromptSteps;   // engine thread only; published through stats
    private long promptStepNanos;
    private long numDecodeSteps;
    private long decodeStepNanos;
    private StepPhases decodePhases = StepPhases.NONE;
    /** A run-ahead decode step queued on the runner behind the step being applied; the next step() applies it. */
    private PendingStep ahead;
    private boolean aheadFailed; // logged once

    /**
     * Async scheduling ({@code -Dretina.asyncScheduling=false} turns it off): where the runner can run ahead (a GPU),
     * each decode step is queued behind the one before it before that one's tokens come back, as vLLM's
     * {@code --async-scheduling} does.
     */
    static final boolean ASYNC_SCHEDULING = !"false".equals(System.getProperty("retina.asyncScheduling"));

    /**
     * Starts the engine thread. The engine owns {@code runner} from now on and closes it on its own thread at
     * {@link #close()}.
     *
     * @param numBlocks KV blocks the runner's cache holds (see {@link EngineConfig#numBlocks})
     */
    public LlmEngine(EngineConfig config, int numBlocks, ModelRunner runner) {
        this.config = config;
        this.runner = runner;
        this.scheduler = new Scheduler(config.schedulerConfig(), new BlockManager(numBlocks, config.blockSize()));
        publishStats();
        this.thread = Thread.ofPlatform().name("retina-engine").daemon(true).unstarted(this::loop);
        thread.start();
    }

    public EngineConfig config() { return config; }

    /**
     * Queues a request; its outputs (or an error output) arrive at {@code sink} on the engine thread.
     *
     * @throws EngineStoppedException when the engine thread has died or the engine is closed (nothing would answer)
     */
    public void addRequest(EngineRequest request, OutputSink sink) {
        if (deathCause != null) throw new EngineStoppedException("the engine stopped: " + deathCause);
        if (closed) throw new EngineStoppedException("the engine is closed");
        inbox.add(new Add(request, sink, System.nanoTime()));
    }

    /** Aborts a request if it is still live: its blocks are freed and each unfinished choice gets an ABORT output. */
    public void abort(String requestId) {
        inbox.add(new Abort(requestId));
    }

    public EngineStats stats() { return stats; }

    /** The runner's vision-encoder counters (any thread); null when the runner keeps none. */
    public EncoderCacheStats encoderCacheStats() { return runner.encoderCacheStats(); }

    /** False once the engine thread has died (an error it could not contain); any thread. */
    public boolean isAlive() {
        return deathCause == null && thread.isAlive();
    }

    /** Steps the engine has run (for tests and metrics); read from any thread, approximately current. */
    public long numSteps() { return numSteps; }

    /** Stops the loop after the current step, aborts what is left, closes the runner, and waits for the thread. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        inbox.add(new Shutdown());
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void loop() {
        try {
            while (true) {
                boolean busy = ahead != null || scheduler.hasWork();
                Command command = busy ? inbox.poll() : inbox.take(); // idle: block, never spin
                boolean shutdown = false;
                while (command != null) {
                    shutdown |= handle(command);
                    command = inbox.poll();
                }
                if (shutdown) break;
                if (ahead != null || scheduler.hasWork()) step();
                publishStats();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Throwable t) {
            deathCause = t.getClass().getSimpleName();
            log.error("engine loop died", t);
        } finally {
            if (!closed && deathCause == null) deathCause = "the engine thread ended";
            dropAhead();
            for (String requestId : List.copyOf(sinks.keySet())) failRequest(requestId, "engine shut down");
            drainInbox();
            publishStats();
            try {
                runner.close();
            } catch (Exception e) {
                log.warn("closing the model runner failed", e);
            }
        }
    }

    /** Requests queued after the thread died (or raced with its end) get an error output rather than silence. */
    private void drainInbox() {
        for (Command c; (c = inbox.poll()) != null; )
            if (c instanceof Add add)
                safeAccept(add.sink(), new RequestOutput(add.request().requestId(), 0, new int[0], null,
                        FinishReason.ABORT, add.request().promptTokenIds().length, 0, 0, "the engine stopped"));
    }

    private boolean handle(Command command) {
        switch (command) {
            case Add add -> admit(add);
            case Abort abort -> {
                OutputSink sink = sinks.get(abort.requestId());
                if (sink != null) {
                    for (Sequence seq : scheduler.finishRequest(abort.requestId(), FinishReason.ABORT))
                        emit(sink, seq, new int[0], null, FinishReason.ABORT, null);
                    sinks.remove(abort.requestId());
                }
            }
            case Shutdown ignored -> {
                return true;
            }
        }
        return false;
    }

    private void admit(Add add) {
        EngineRequest req = add.request();
        String problem = null;
        if (sinks.containsKey(req.requestId()) || scheduler.hasRequest(req.requestId()))
            problem = "duplicate request id " + req.requestId();
        else if (req.promptTokenIds().length >= config.maxModelLen())
            problem = "prompt has " + req.promptTokenIds().length + " tokens; the model's context is "
                    + config.maxModelLen() + " (at least one must remain for output)";
        else {
            for (ImageInput image : req.images()) {
                if (image.numImageTokens() > config.maxNumBatchedTokens())
                    problem = "an image takes " + image.numImageTokens() + " tokens, more than maxNumBatchedTokens "
                            + config.maxNumBatchedTokens();
            }
            if (problem == null) problem = runner.checkRequest(req);
        }
        if (problem != null) {
            safeAccept(add.sink(), new RequestOutput(req.requestId(), 0, new int[0], null, FinishReason.ABORT,
                    req.promptTokenIds().length, 0, 0, problem));
            return;
        }
        SamplingParams p = req.params();
        long baseSeed = p.seed() != null ? p.seed() : seedSource.nextLong();
        List<Sequence> choices = new ArrayList<>(p.n());
        for (int i = 0; i < p.n(); i++) {
            // Like vLLM's parallel sampling: choice i of a seeded request uses seed + i.
            choices.add(new Sequence(nextSeqId++, req.requestId(), i, req.promptTokenIds(), req.images(), p,
                    req.eosTokenIds(), baseSeed + i, add.arrivalNanos()));
        }
        scheduler.add(choices);
        sinks.put(req.requestId(), add.sink());
    }

    /**
     * One step: plans it (or takes the run-ahead step queued last time), queues it on the runner, queues the next
     * decode step behind it where the scheduler can plan that one already ({@link Scheduler#scheduleAhead}), then
     * waits for this step's tokens and applies them.
     */
    private void step() {
        long scheduleStart = System.nanoTime();
        PendingStep current = ahead;
        ahead = null;
        SchedulerOutput schedulerOutput = current != null ? current.schedulerOutput() : scheduler.schedule();
        if (schedulerOutput.isEmpty()) {
            // Cannot happen while the cache holds one maxModelLen sequence and waiting sequences hold no blocks.
            throw new IllegalStateException("scheduler made no progress: running=" + scheduler.numRunning()
                    + " waiting=" + scheduler.numWaiting() + " free=" + scheduler.blockManager().numFreeBlocks());
        }
        numSteps++;
        List<Scheduler.SequenceUpdate> updates;
        long stepStart = System.nanoTime();
        boolean decodeOnly = schedulerOutput.numBatchedTokens() <= schedulerOutput.sequences().size();
        long updateStart;
        long planAheadNanos;
        long awaitStart;
        try {
            if (current == null) current = runner.submit(schedulerOutput, null);
            planAheadNanos = queueAhead(current);
            awaitStart = System.nanoTime();
            RunnerOutput runnerOutput = current.await();
            updateStart = System.nanoTime();
            updates = scheduler.update(schedulerOutput, runnerOutput);
            long nanos = System.nanoTime() - stepStart;
            if (!decodeOnly) {
                numPromptSteps++;
                promptStepNanos += nanos;
            } else {
                numDecodeSteps++;
                decodeStepNanos += nanos;
            }
            // Before any output goes out: a caller woken by this step's last token must see the step counted and the
            // finished sequences' blocks free (BenchCommand reads the counters as soon as its requests complete).
            publishStats();
        } catch (RuntimeException | Error e) {
            if (e instanceof VirtualMachineError vme && !(e instanceof OutOfMemoryError)) throw vme;
            dropAhead(); // it was fed this step's tokens
            Set<String> inStep = new LinkedHashSet<>();
            for (ScheduledSequence s : schedulerOutput.sequences()) inStep.add(s.requestId());
            if (inStep.size() > 1) {
                // Do not fail everyone batched with the culprit: run each of these requests alone until the one
                // that fails is found (Scheduler.suspect); the others go on with their outputs unchanged.
                log.warn("step of {} requests failed ({}); running them one at a time to find the cause",
                        inStep.size(), e.toString());
                scheduler.suspect(inStep);
                return;
            }
            log.error("step failed; failing its request", e);
            String message = "engine step failed: " + e;
            for (String requestId : inStep) failRequest(requestId, message);
            return;
        }
        if (schedulerOutput.sequences().size() > 0) {
            String only = schedulerOutput.sequences().getFirst().requestId();
            if (scheduler.isSuspect(only)) scheduler.clearSuspect(only); // ran alone and did not fail
        }
        long outputsStart = System.nanoTime();
        for (Scheduler.SequenceUpdate u : updates) {
            Sequence seq = u.sequence();
            OutputSink sink = sinks.get(seq.requestId());
            if (sink == null) continue;
            emit(sink, seq, new int[] {u.tokenId()}, u.logprobs() == null ? null : List.of(u.logprobs()),
                    u.finishReason(), null);
        }
        // Only after all of this step's outputs went out: several choices of one request may finish together.
        for (Scheduler.SequenceUpdate u : updates) {
            if (!scheduler.hasRequest(u.sequence().requestId())) sinks.remove(u.sequence().requestId());
        }
        if (decodeOnly) {
            long end = System.nanoTime();
            long[] runnerNanos = runner.lastStepNanos();
            long executeNanos = updateStart - stepStart;
            long inputs = runnerNanos == null ? 0 : runnerNanos[0];
            long forward = runnerNanos == null ? executeNanos : runnerNanos[1];
            // The runner's phases are its last submit's (the run-ahead step's, when one was queued); sampling includes
            // the wait for this step's tokens, and scheduling the planning of the step ahead. A runner that reports no
            // phases has its whole step, the wait included, as the forward call.
            long sample = runnerNanos == null ? 0 : runnerNanos[2] + (updateStart - awaitStart);
            decodePhases = decodePhases.plus(new StepPhases(1, stepStart - scheduleStart + planAheadNanos, inputs,
                    forward, sample, outputsStart - updateStart, end - outputsStart));
        }
    }

    /**
     * Plans the decode step after {@code current} and queues it behind it, where the scheduler and runner can.
     * Returns the host nanoseconds the planning took (the runner times its own part).
     */
    private long queueAhead(PendingStep current) {
        if (!ASYNC_SCHEDULING || !runner.canRunAhead()) return 0;
        long start = System.nanoTime();
        SchedulerOutput next = scheduler.scheduleAhead(current.schedulerOutput());
        long planned = System.nanoTime() - start;
        if (next == null) return planned;
        try {
            ahead = runner.submit(next, current);
        } catch (RuntimeException e) {
            // The plan stays valid for a normal step (its blocks and draws are the ones that step takes); only the
            // finished requests it was to tell the runner about go back to the scheduler. The next step is planned
            // after this one is applied, and fails (and is isolated) there if the cause is a request's.
            scheduler.requeueFinished(next.finishedRequestIds());
            if (!aheadFailed) log.warn("queueing a decode step ahead failed ({}); it runs after this one", e.toString());
            else log.debug("queueing a decode step ahead failed", e);
            aheadFailed = true;
        }
        return planned;
    }

    /** Waits for a run-ahead step whose input step failed, and forgets it (its sequences were not advanced). */
    private void dropAhead() {
        if (ahead == null) return;
        try {
            ahead.await();
        } catch (RuntimeException e) {
            log.debug("dropped run-ahead step failed too", e);
        }
        ahead = null;
    }

    private void failRequest(String requestId, String message) {
        OutputSink sink = sinks.remove(requestId);
        List<Sequence> finished = scheduler.finishRequest(requestId, FinishReason.ABORT);
        if (sink == null) return;
        for (Sequence seq : finished) emit(sink, seq, new int[0], null, FinishReason.ABORT, message);
    }

    private void emit(OutputSink sink, Sequence seq, int[] newTokenIds, List<TokenLogprobs> logprobs,
                      FinishReason reason, String error) {
        RequestOutput out = new RequestOutput(seq.requestId(), seq.choiceIndex(), newTokenIds, logprobs, reason,
                seq.numPromptTokens(), seq.numOutputTokens(), seq.numCachedTokens(), error);
        if (!safeAccept(sink, out) && scheduler.hasRequest(seq.requestId())) {
            sinks.remove(seq.requestId());
            scheduler.finishRequest(seq.requestId(), FinishReason.ABORT); // a broken sink ends its request
        }
    }

    private static boolean safeAccept(OutputSink sink, RequestOutput out) {
        try {
            sink.accept(out);
            return true;
        } catch (RuntimeException e) {
            log.warn("output sink of request {} threw; aborting the request", out.requestId(), e);
            return false;
        }
    }

    private void publishStats() {
        BlockManager bm = scheduler.blockManager();
        stats = new EngineStats(scheduler.numRunning(), scheduler.numWaiting(), bm.numFreeBlocks(), bm.numBlocks(),
                scheduler.numPreemptions(), numPromptSteps, promptStepNanos, numDecodeSteps, decodeStepNanos,
                decodePhases);
    }
}
