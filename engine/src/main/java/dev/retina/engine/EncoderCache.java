package dev.retina.engine;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The vision encoder's outputs by image content hash, least recently used first out, bounded in image tokens (feature
 * rows), so the same image in another request or turn skips the vision tower. Entries live on the model's device in
 * a manager of their own; callers get copies, so an eviction never frees an array a request still uses. Called only
 * from the engine thread.
 */
final class EncoderCache implements AutoCloseable {
    private final NDManager manager;
    private final int maxNumTokens;
    private final LinkedHashMap<String, NDArray> entries = new LinkedHashMap<>(16, 0.75f, true); // access order
    private int numTokens;

    /** @param maxNumTokens capacity in feature rows; 0 disables caching */
    EncoderCache(NDManager parent, int maxNumTokens) {
        if (maxNumTokens < 0) throw new IllegalArgumentException("encoder cache size must be >= 0, got " + maxNumTokens);
        this.manager = parent.newSubManager();
        this.maxNumTokens = maxNumTokens;
    }

    /** A copy of the cached features (numImageTokens, textHidden) in {@code into}, or null. */
    NDArray get(String key, NDManager into) {
        if (key == null) return null;
        NDArray cached = entries.get(key);
        if (cached == null) return null;
        NDArray copy = cached.duplicate();
        copy.attach(into);
        return copy;
    }

    /** Stores a copy of {@code features} (numImageTokens, textHidden), evicting the least recently used as needed. */
    void put(String key, NDArray features) {
        if (key == null || entries.containsKey(key)) return;
        int rows = Math.toIntExact(features.getShape().get(0));
        if (rows > maxNumTokens) return;
        Iterator<Map.Entry<String, NDArray>> it = entries.entrySet().iterator();
        while (numTokens + rows > maxNumTokens && it.hasNext()) {
            NDArray evicted = it.next().getValue();
            numTokens -= Math.toIntExact(evicted.getShape().get(0));
            evicted.close();
            it.remove();
        }
        NDArray copy = features.duplicate();
        copy.attach(manager);
        entries.put(key, copy);
        numTokens += rows;
    }

    /** Whether an entry of that many feature rows would be stored (false when caching is off or it is too big). */
    boolean keeps(int rows) {
        return rows <= maxNumTokens;
    }

    int numImages() {
        return entries.size();
    }

    int numTokens() {
        return numTokens;
    }

    @Override
    public void close() {
        entries.clear();
        numTokens = 0;
        manager.close();
    }
}
