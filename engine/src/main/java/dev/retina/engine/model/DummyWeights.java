package dev.retina.engine.model;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * Real-shaped random weights from the config alone, for benchmarks ({@link LoadFormat#DUMMY}). Norm weights are
 * ones, biases zeros, matrices normal with std 1/sqrt(fanIn), embeddings normal with std 0.02, so activations stay
 * in range and runs behave like a real model's in cost. Seeds the engine's global generator (torch.manual_seed).
 */
final class DummyWeights implements WeightSource {
    private final NDManager manager;
    private final DataType dtype;
    private final boolean tied;

    DummyWeights(NDManager manager, DataType dtype, long seed, boolean tied) {
        this.manager = manager;
        this.dtype = dtype;
        this.tied = tied;
        Engine.getEngine(manager.getEngine().getEngineName()).setRandomSeed((int) seed);
    }

    @Override
    public boolean has(String name) {
        return !name.equals("lm_head.weight") || !tied;
    }

    @Override
    public NDArray get(String name, long... shape) {
        Shape s = new Shape(shape);
        NDArray array;
        if (name.endsWith(".bias")) {
            array = manager.zeros(s, dtype);
        } else if (shape.length == 1 && !name.endsWith("class_embedding")) {
            array = manager.ones(s, dtype); // norm weights
        } else {
            boolean embedding = name.contains("embed");
            long fanIn = 1;
            for (int i = 1; i < shape.length; i++) fanIn *= shape[i];
            float std = embedding ? 0.02f : (float) (1.0 / Math.sqrt(fanIn));
            // Drawn in float32: not every half-precision random kernel exists on every device.
            try (NDArray f32 = manager.randomNormal(0f, std, s, DataType.FLOAT32)) {
                array = f32.toType(dtype, true);
            }
        }
        array.setName(name);
        return array;
    }

    @Override
    public void close() {
    }
}
