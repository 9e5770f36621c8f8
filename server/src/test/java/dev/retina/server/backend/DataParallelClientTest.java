package dev.retina.server.backend;

import dev.retina.engine.EngineRequest;
import dev.retina.engine.EngineStats;
import dev.retina.engine.EngineStoppedException;
import dev.retina.engine.FinishReason;
import dev.retina.engine.OutputSink;
import dev.retina.engine.RequestOutput;
import dev.retina.engine.SamplingParams;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DataParallelClientTest {
    /** A replica that keeps its requests' sinks so the test can play the engine. */
    static final class FakeReplica implements EngineClient {
        final Map<String, OutputSink> sinks = new HashMap<>();
        final List<String> aborted = new ArrayList<>();
        boolean alive = true;
        EngineStats stats = new EngineStats(0, 0, 10, 10, 0);

        @Override
        public void addRequest(EngineRequest request, OutputSink sink) {
            sinks.put(request.requestId(), sink);
        }

        @Override
        public void abort(String requestId) {
            aborted.add(requestId);
        }

        @Override
        public boolean isAlive() {
            return alive;
        }

        @Override
        public EngineStats stats() {
            return stats;
        }

        void emit(String id, boolean finished) {
            sinks.get(id).accept(new RequestOutput(id, 0, new int[] {7}, null, finished ? FinishReason.LENGTH : null,
                    1, 1, 0, null));
        }
    }

    private static EngineRequest request(String id, int promptLen) {
        return new EngineRequest(id, new int[promptLen], List.of(), SamplingParams.greedy(4), List.of(2));
    }

    @Test
    void routesToTheLeastOutstandingWorkAndCountsPrefillThenRunning() {
        FakeReplica a = new FakeReplica();
        FakeReplica b = new FakeReplica();
        DataParallelClient dp = new DataParallelClient(List.of(a, b));
        List<RequestOutput> seen = new ArrayList<>();
        dp.addRequest(request("r1", 100), seen::add);   // tie: replica 0
        assertEquals(101, dp.load(0));                  // 100 prompt tokens pending + 1 request
        dp.addRequest(request("r2", 10), seen::add);    // replica 1 is idle
        assertTrue(b.sinks.containsKey("r2"));
        dp.addRequest(request("r3", 10), seen::add);    // 101 vs 11: replica 1 again
        assertTrue(b.sinks.containsKey("r3"));
        assertEquals(22, dp.load(1));

        a.emit("r1", false);                            // r1's prefill produced a token: only "running" remains
        assertEquals(1, dp.load(0));
        dp.addRequest(request("r4", 5), seen::add);     // 1 vs 22: replica 0
        assertTrue(a.sinks.containsKey("r4"));
        a.emit("r1", true);
        assertEquals(6, dp.load(0));                    // r4 still pending
        assertEquals(2, seen.size());
        assertEquals(2, dp.routed(0));
        assertEquals(2, dp.routed(1));
    }

    private static EngineRequest imageRequest(String id, String hash) {
        dev.retina.engine.ImageInput image = dev.retina.engine.ImageInput.ofPixels(new float[3 * 4 * 4], 4, 4, 576)
                .withContentHash(hash);
        return new EngineRequest(id, new int[600], List.of(image), SamplingParams.greedy(4), List.of(2));
    }

    @Test
    void aRepeatedImageGoesBackToItsReplicaWhileThatCostsLessThanReencodingIt() {
        FakeReplica a = new FakeReplica();
        FakeReplica b = new FakeReplica();
        DataParallelClient dp = new DataParallelClient(List.of(a, b));
        dp.addRequest(request("busy", 10), out -> { });          // replica 0: load 11
        dp.addRequest(imageRequest("i1", "H"), out -> { });     // replica 1 (load 0): H lives there now
        assertTrue(b.sinks.containsKey("i1"));
        b.emit("i1", true);                                     // done: replica 1 idle again, replica 0 at 11
        dp.addRequest(request("other", 30), out -> { });        // replica 1: load 31 > 11
        dp.addRequest(imageRequest("i2", "H"), out -> { });     // least loaded is 0, but 31 <= 11 + 576: back to 1
        assertTrue(b.sinks.containsKey("i2"), "affinity");
        assertEquals(1, dp.affinityRoutes());

        dp.addRequest(request("huge", 2000), out -> { });       // replica 0 (11 < 632): 0 at 2012, 1 at 632
        dp.addRequest(request("huge2", 2000), out -> { });      // replica 1: 2633
        dp.addRequest(imageRequest("i3", "H"), out -> { });     // 2633 > 2012 + 576: re-encoding is cheaper
        assertTrue(a.sinks.containsKey("i3"));
        assertEquals(1, dp.affinityRoutes());
        dp.addRequest(request("huge3", 100), out -> { });       // replica 0 (2613 < 2633): 2714
        dp.addRequest(imageRequest("i4", "H"), out -> { });     // H moved with i3: 2714 <= 2633 + 576, so replica 0
        assertTrue(a.sinks.containsKey("i4"));
        assertEquals(2, dp.affinityRoutes());
    }

    @Test
    void abortsGoToTheOwnerAndDeadReplicasGetNothing() {
        FakeReplica a = new FakeReplica();
        FakeReplica b = new FakeReplica();
        DataParallelClient dp = new DataParallelClient(List.of(a, b));
        dp.addRequest(request("x", 3), out -> { });
        dp.addRequest(request("y", 3), out -> { });
        dp.abort("y");
        assertEquals(List.of("y"), b.aborted);
        assertTrue(a.aborted.isEmpty());
        dp.abort("unknown"); // harmless

        a.alive = false;
        assertFalse(dp.isAlive(), "one dead replica makes the process unhealthy (restart it)");
        dp.addRequest(request("z", 1), out -> { });
        assertTrue(b.sinks.containsKey("z"), "the live replica takes new work");
        b.alive = false;
        assertThrows(EngineStoppedException.class, () -> dp.addRequest(request("w", 1), out -> { }));
    }

    @Test
    void statsAddUpOverReplicasAndAFinishedChoiceSetReleasesItsReplica() {
        FakeReplica a = new FakeReplica();
        FakeReplica b = new FakeReplica();
        a.stats = new EngineStats(2, 1, 4, 10, 3);
        b.stats = new EngineStats(1, 0, 9, 10, 1);
        DataParallelClient dp = new DataParallelClient(List.of(a, b));
        assertEquals(new EngineStats(3, 1, 13, 20, 4), dp.stats());
        assertEquals(List.of(a.stats, b.stats), dp.replicaStats());

        EngineRequest two = new EngineRequest("n2", new int[4], List.of(),
                new SamplingParams(2, 0f, 1f, -1, 0f, null, 0f, 0f, 1f, 4, 0, List.of(), false, null), List.of(2));
        dp.addRequest(two, out -> { });
        OutputSink sink = a.sinks.get("n2");
        sink.accept(new RequestOutput("n2", 0, new int[] {1}, null, FinishReason.STOP, 4, 1, 0, null));
        assertEquals(1, dp.load(0), "one of two choices finished: still running");
        sink.accept(new RequestOutput("n2", 1, new int[] {1}, null, FinishReason.STOP, 4, 1, 0, null));
        assertEquals(0, dp.load(0));
    }
}
