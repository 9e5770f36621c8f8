package dev.retina.server.http;

import io.netty.util.AttributeKey;

/**
 * What one request's log line and headers need: its id, when it arrived, and what the endpoint learnt (model,
 * token counts, images). Created on the event loop when the request head arrives; endpoints fill it from request
 * threads, so the fields they write are volatile.
 */
public final class RequestContext {
    /** The channel attribute holding the context of the request in flight (one per connection at a time). */
    public static final AttributeKey<RequestContext> KEY = AttributeKey.valueOf("retina.request");

    private static final ThreadLocal<RequestContext> CURRENT = new ThreadLocal<>();

    private final String requestId;
    private final long startNanos;
    private volatile String model;
    private volatile int numPromptTokens = -1;
    private volatile int numGenerationTokens = -1;
    private volatile int numImages;

    public RequestContext(String requestId, long startNanos) {
        this.requestId = requestId;
        this.startNanos = startNanos;
    }

    public String requestId() {
        return requestId;
    }

    public long startNanos() {
        return startNanos;
    }

    public String model() {
        return model;
    }

    public int numPromptTokens() {
        return numPromptTokens;
    }

    public int numGenerationTokens() {
        return numGenerationTokens;
    }

    public int numImages() {
        return numImages;
    }

    public void setModel(String model) {
        this.model = model;
    }

    public void setUsage(int numPromptTokens, int numGenerationTokens) {
        this.numPromptTokens = numPromptTokens;
        this.numGenerationTokens = numGenerationTokens;
    }

    public void setNumImages(int numImages) {
        this.numImages = numImages;
    }

    /** The context of the request the calling request thread is handling, or null (set by the router). */
    public static RequestContext current() {
        return CURRENT.get();
    }

    static void setCurrent(RequestContext context) {
        if (context == null) CURRENT.remove();
        else CURRENT.set(context);
    }
}
