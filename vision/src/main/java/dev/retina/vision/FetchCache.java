package dev.retina.vision;

import java.util.LinkedHashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A bounded in-memory cache of fetched image bytes keyed by URL, honouring {@code Cache-Control: max-age} and
 * {@code ETag}: fresh entries are served without a request; stale entries with an ETag are revalidated with
 * {@code If-None-Match} (a 304 refreshes them). Least recently used entries are evicted once the total bytes pass the
 * cap. Responses with {@code no-store} or {@code private}, or with neither max-age nor ETag, are not stored;
 * {@code no-cache} stores but always revalidates. Thread-safe (one lock; entries are immutable).
 */
public final class FetchCache {
    public static final long DEFAULT_MAX_BYTES = 64L * 1024 * 1024;

    /** @param expiresAtNanos {@link System#nanoTime()} after which the entry must be revalidated */
    record Entry(byte[] bytes, String etag, long expiresAtNanos) {
        boolean fresh(long now) {
            return now - expiresAtNanos < 0;
        }
    }

    private final long maxBytes;
    private final LinkedHashMap<String, Entry> entries = new LinkedHashMap<>(16, 0.75f, true);
    private long totalBytes;

    public FetchCache(long maxBytes) {
        if (maxBytes < 0) throw new IllegalArgumentException("maxBytes must be >= 0");
        this.maxBytes = maxBytes;
    }

    public synchronized long totalBytes() {
        return totalBytes;
    }

    public synchronized int size() {
        return entries.size();
    }

    synchronized Entry get(String url) {
        return entries.get(url);
    }

    /** Stores a 200 answer if its headers allow; returns whether it was stored. */
    boolean store(String url, byte[] bytes, Map<String, List<String>> headers, long now) {
        String cc = String.join(",", headers.getOrDefault("cache-control", List.of())).toLowerCase(Locale.ROOT);
        List<String> etags = headers.get("etag");
        String etag = etags == null ? null : etags.getFirst();
        if (cc.contains("no-store") || cc.contains("private")) return false;
        long maxAge = cc.contains("no-cache") ? 0 : maxAgeSeconds(cc);
        if (maxAge <= 0 && etag == null) return false;
        put(url, new Entry(bytes, etag, now + Math.min(maxAge, 86_400L * 365) * 1_000_000_000L));
        return true;
    }

    /** A 304 for {@code url}: the entry is fresh again for the new max-age. */
    Entry revalidated(String url, Entry old, Map<String, List<String>> headers, long now) {
        String cc = String.join(",", headers.getOrDefault("cache-control", List.of())).toLowerCase(Locale.ROOT);
        long maxAge = cc.contains("no-cache") ? 0 : maxAgeSeconds(cc);
        Entry e = new Entry(old.bytes(), old.etag(), now + Math.min(maxAge, 86_400L * 365) * 1_000_000_000L);
        put(url, e);
        return e;
    }

    private synchronized void put(String url, Entry e) {
        if (e.bytes().length > maxBytes) return;
        Entry old = entries.put(url, e);
        if (old != null) totalBytes -= old.bytes().length;
        totalBytes += e.bytes().length;
        for (Iterator<Entry> it = entries.values().iterator(); totalBytes > maxBytes && it.hasNext(); ) {
            totalBytes -= it.next().bytes().length;
            it.remove();
        }
    }

    public synchronized void clear() {
        entries.clear();
        totalBytes = 0;
    }

    static long maxAgeSeconds(String cacheControl) {
        for (String directive : cacheControl.split(",")) {
            String d = directive.strip();
            if (d.startsWith("max-age=")) {
                try {
                    return Long.parseLong(d.substring(8).replace("\"", "").strip());
                } catch (NumberFormatException e) {
                    return 0;
                }
            }
        }
        return 0;
    }
}
