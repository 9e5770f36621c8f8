package dev.retina.server.input;

import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The bounded pool where images are fetched, decoded and preprocessed, apart from the event loops, the engine thread
 * and the input executor (which waits on it). Two threads per CPU, since a fetch mostly waits on the network while
 * decoding and resizing use a core; a queue of 256 images; beyond that the preparing thread loads the image itself
 * (caller-runs), which slows that request instead of failing it and can never deadlock.
 */
public final class ImageLoadPool {
    private ImageLoadPool() {
    }

    public static int defaultNumThreads() {
        return Math.max(2, 2 * Runtime.getRuntime().availableProcessors());
    }

    public static ExecutorService create(int numThreads) {
        AtomicInteger n = new AtomicInteger();
        return new ThreadPoolExecutor(numThreads, numThreads, 60, TimeUnit.SECONDS, new ArrayBlockingQueue<>(256), r -> {
            Thread t = new Thread(r, "retina-image-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        }, new ThreadPoolExecutor.CallerRunsPolicy());
    }
}
