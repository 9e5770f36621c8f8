package dev.retina.engine;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FaultInjectingRunnerTest {
    @AfterEach
    void clear() {
        System.clearProperty(FaultInjectingRunner.PROPERTY);
    }

    private static LlmEngine engine(ModelRunner runner) {
        EngineConfig cfg = new EngineConfig(8, 32, 4, 64, 64, 0, 0.9);
        return new LlmEngine(cfg, cfg.numBlocks(1, 0), runner);
    }

    private static EngineRequest request(String id, long seed) {
        return new EngineRequest(id, new int[] {4, 5, 6}, List.of(), SchedulerHarness.params(1, seed, 5),
                List.of(FakeModelRunner.EOS));
    }

    @Test
    void offUnlessThePropertyIsSetAndBadSpecsAreRefused() {
        FakeModelRunner fake = new FakeModelRunner(64, 4);
        assertSame(fake, FaultInjectingRunner.fromSystemProperty(fake));
        System.setProperty(FaultInjectingRunner.PROPERTY, "seed=3");
        assertThrows(IllegalArgumentException.class, () -> FaultInjectingRunner.fromSystemProperty(fake));
    }

    @Test
    void theStepErrorSeedFailsOnlyItsStepAndTheDeathSeedKillsTheEngine() throws Exception {
        System.setProperty(FaultInjectingRunner.PROPERTY, "step-error-seed=666, death-seed=667");
        try (LlmEngine engine = engine(FaultInjectingRunner.fromSystemProperty(new FakeModelRunner(64, 4)))) {
            LlmEngineTest.Collector bad = new LlmEngineTest.Collector(1);
            engine.addRequest(request("bad", 666), bad);
            bad.await();
            assertTrue(bad.last(0).error().contains("injected step failure"), bad.outputs.toString());

            LlmEngineTest.Collector good = new LlmEngineTest.Collector(1);
            engine.addRequest(request("good", 1), good);
            good.await();
            assertEquals(FinishReason.LENGTH, good.last(0).finishReason());
            assertTrue(engine.isAlive());

            LlmEngineTest.Collector fatal = new LlmEngineTest.Collector(1);
            engine.addRequest(request("fatal", 667), fatal);
            fatal.await();
            assertTrue(fatal.last(0).error() != null);
            for (int i = 0; i < 100 && engine.isAlive(); i++) Thread.sleep(10);
            assertFalse(engine.isAlive());
            assertThrows(EngineStoppedException.class,
                    () -> engine.addRequest(request("late", 2), new LlmEngineTest.Collector(1)));
        }
    }
}
