package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Safetensors weights under canonical names: maps the transformers 4.x layout ({@code language_model.model.*},
 * {@code language_model.lm_head.weight}, {@code vision_tower.vision_model.*}, {@code multi_modal_projector.*}) and
 * the 5.x layout ({@code model.language_model.*}, {@code model.vision_tower.*} with or without
 * {@code vision_model.}, {@code model.multi_modal_projector.*}, {@code lm_head.weight}) onto one set of names.
 */
final class CheckpointWeights implements WeightSource {
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(CheckpointWeights.class);
    private static final long PROGRESS_EVERY_NANOS = 2_000_000_000L;

    private final SafetensorsReader reader;
    private final long startNanos = System.nanoTime();
    private final int numTensors;
    private final long totalBytes;
    private int numLoaded;
    private long bytesLoaded;
    private long lastProgressNanos = startNanos;
    private final Map<String, String> canonicalToStored = new HashMap<>();
    private final NDManager manager;
    private final DataType dtype;

    CheckpointWeights(Path modelDir, NDManager manager, DataType dtype) throws IOException {
        this.reader = SafetensorsReader.open(modelDir);
        this.manager = manager;
        this.dtype = dtype;
        long bytes = 0;
        for (String stored : reader.names()) {
            String canonical = canonicalName(stored);
            if (canonical == null) continue;
            canonicalToStored.put(canonical, stored);
            bytes += reader.info(stored).end() - reader.info(stored).begin();
        }
        this.numTensors = canonicalToStored.size();
        this.totalBytes = bytes;
        log.info("loading {} tensors ({}) from {}", numTensors, gigabytes(totalBytes), modelDir);
    }

    private static String gigabytes(long bytes) {
        return bytes >= 1L << 30 ? String.format(java.util.Locale.ROOT, "%.2f GB", bytes / 1e9)
                : String.format(java.util.Locale.ROOT, "%.1f MB", bytes / 1e6);
    }

    /** A plain progress line every two seconds while loading (loading is single-threaded); the last in close(). */
    private void progress(SafetensorsReader.TensorInfo info) {
        numLoaded++;
        bytesLoaded += info.end() - info.begin();
        long now = System.nanoTime();
        if (now - lastProgressNanos >= PROGRESS_EVERY_NANOS) {
            lastProgressNanos = now;
            log.info("loading weights: {}/{} tensors, {} of {}, {} s", numLoaded, numTensors, gigabytes(bytesLoaded),
                    gigabytes(totalBytes), String.format(java.util.Locale.ROOT, "%.1f", (now - startNanos) / 1e9));
        }
    }

    /** The canonical name of a stored key, or null for keys the model does not use. */
    static String canonicalName(String key) {
        String k = key;
        if (k.startsWith("model.")) k = k.substring("model.".length()); // 5.x wraps everything but lm_head
        if (k.equals("language_model.lm_head.weight") || k.equals("lm_head.weight")) return "lm_head.weight";
        if (k.startsWith("language_model.model.")) return "language_model." + k.substring("language_model.model.".length());
        if (k.startsWith("language_model.")) return k;
        if (k.startsWith("vision_tower.vision_model.")) return "vision_tower." + k.substring("vision_tower.vision_model.".length());
        if (k.startsWith("vision_tower.")) return k;
        if (k.startsWith("multi_modal_projector.")) return k;
        if (k.equals("image_newline")) return k; // LLaVA-NeXT (4.x: image_newline, 5.x: model.image_newline)
        return null;
    }

    @Override
    public boolean has(String name) {
        return canonicalToStored.containsKey(name);
    }

    @Override
    public NDArray get(String name, long... shape) {
        String stored = canonicalToStored.get(name);
        if (stored == null) throw new IllegalArgumentException("checkpoint has no tensor for " + name);
        long[] actual = reader.info(stored).shape();
        if (!Arrays.equals(actual, shape))
            throw new IllegalArgumentException(stored + " has shape " + new Shape(actual) + ", config implies "
                    + new Shape(shape));
        NDArray array = reader.load(stored, manager, dtype);
        array.setName(name);
        progress(reader.info(stored));
        return array;
    }

    @Override
    public void close() {
        log.info("loaded {} tensor reads ({}) in {} s", numLoaded, gigabytes(bytesLoaded),
                String.format(java.util.Locale.ROOT, "%.1f", (System.nanoTime() - startNanos) / 1e9));
        reader.close();
    }
}
