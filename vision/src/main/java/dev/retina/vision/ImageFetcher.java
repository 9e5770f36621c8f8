package dev.retina.vision;

import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.UnresolvedAddressException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Fetches the encoded bytes behind an {@code image_url}: {@code data:} URLs, {@code http}/{@code https} (one total
 * deadline for connect, headers and body; at most {@value #MAX_REDIRECTS} redirects; bytes capped while streaming),
 * and {@code file:} only under an allowed local root. Thread-safe: one instance serves every request; call it from
 * the input executor, never from an event loop (it blocks up to the timeout).
 *
 * <p>Every hop of an HTTP fetch (the first URL and each redirect target) passes through the {@link TargetPolicy}
 * before a connection is made: that is the seam for private-address filtering.
 */
public final class ImageFetcher implements AutoCloseable {
    public static final int MAX_REDIRECTS = 3;

    /**
     * Decides whether an http(s) URL may be fetched; called for the first URL and every redirect target. Throw
     * {@link ImageException} with {@link ImageException.Reason#FORBIDDEN} to refuse.
     */
    @FunctionalInterface
    public interface TargetPolicy {
        TargetPolicy ALLOW_ALL = uri -> { };

        void check(URI uri) throws ImageException;
    }

    private final Duration timeout;
    private final long maxBytes;
    private final Path allowedFileRoot; // real path, or null when file: URLs are refused
    private final TargetPolicy policy;
    private final HttpClient client;

    public ImageFetcher(Duration timeout, long maxBytes) {
        this(timeout, maxBytes, null, TargetPolicy.ALLOW_ALL);
    }

    public ImageFetcher(Duration timeout, long maxBytes, Path allowedFileRoot) {
        this(timeout, maxBytes, allowedFileRoot, TargetPolicy.ALLOW_ALL);
    }

    /**
     * @param allowedFileRoot directory under which {@code file:} URLs may read (after resolving symlinks and
     *                        {@code ..}); null refuses {@code file:} altogether
     * @param policy          checked before every http(s) connection, redirects included
     */
    public ImageFetcher(Duration timeout, long maxBytes, Path allowedFileRoot, TargetPolicy policy) {
        if (timeout == null || timeout.isNegative() || timeout.isZero())
            throw new IllegalArgumentException("timeout must be positive");
        if (maxBytes < 1) throw new IllegalArgumentException("maxBytes must be >= 1");
        this.timeout = timeout;
        this.maxBytes = maxBytes;
        this.policy = policy == null ? TargetPolicy.ALLOW_ALL : policy;
        if (allowedFileRoot != null) {
            try {
                this.allowedFileRoot = allowedFileRoot.toRealPath();
            } catch (IOException e) {
                throw new IllegalArgumentException("allowed file root does not exist: " + allowedFileRoot, e);
            }
            if (!Files.isDirectory(this.allowedFileRoot))
                throw new IllegalArgumentException("allowed file root is not a directory: " + allowedFileRoot);
        } else {
            this.allowedFileRoot = null;
        }
        this.client = HttpClient.newBuilder()
                .connectTimeout(timeout)
                .followRedirects(HttpClient.Redirect.NEVER) // followed by hand so each hop passes the policy
                .build();
    }

    public Duration timeout() {
        return timeout;
    }

    public long maxBytes() {
        return maxBytes;
    }

    /** The encoded image bytes behind {@code url}; decoding (and "is it an image?") is {@link ImageDecoder}'s job. */
    public byte[] fetch(String url) throws ImageException {
        if (url == null || url.isBlank()) throw new ImageException(ImageException.Reason.BAD_URL, "the image URL is empty");
        url = url.strip();
        if (url.regionMatches(true, 0, "data:", 0, 5)) return decodeDataUrl(url);
        URI uri;
        try {
            uri = new URI(url);
        } catch (URISyntaxException e) {
            throw new ImageException(ImageException.Reason.BAD_URL, "the image URL is malformed");
        }
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        return switch (scheme) {
            case "http", "https" -> fetchHttp(uri);
            case "file" -> {
                if (allowedFileRoot == null) throw new ImageException(ImageException.Reason.UNSUPPORTED_SCHEME,
                        "file: image URLs are not enabled on this server");
                yield readFile(uri);
            }
            case "" -> throw new ImageException(ImageException.Reason.BAD_URL,
                    "the image URL has no scheme (expected http, https or data)");
            default -> throw new ImageException(ImageException.Reason.UNSUPPORTED_SCHEME,
                    "image URLs with scheme '" + safeScheme(scheme) + "' are not supported (use http, https or data)");
        };
    }

    private static String safeScheme(String scheme) {
        return scheme.length() <= 16 && scheme.matches("[a-z][a-z0-9+.-]*") ? scheme : "?";
    }

    // ------------------------------------------------------------------------------------------------ data:

    private byte[] decodeDataUrl(String url) throws ImageException {
        int comma = url.indexOf(',');
        if (comma < 0) throw new ImageException(ImageException.Reason.BAD_URL, "the data URL has no ',' before its data");
        String meta = url.substring(5, comma);
        boolean base64 = meta.toLowerCase(Locale.ROOT).endsWith(";base64");
        int payloadLength = url.length() - comma - 1;
        if (base64) {
            // Refuse before decoding: 4 base64 characters carry 3 bytes.
            if ((long) payloadLength / 4 * 3 > maxBytes + 3)
                throw tooLarge();
            String payload = url.substring(comma + 1);
            if (hasWhitespace(payload)) payload = payload.replaceAll("\\s+", "");
            byte[] bytes;
            try {
                bytes = payload.indexOf('-') >= 0 || payload.indexOf('_') >= 0
                        ? Base64.getUrlDecoder().decode(payload)
                        : Base64.getDecoder().decode(payload);
            } catch (IllegalArgumentException e) {
                throw new ImageException(ImageException.Reason.BAD_URL, "the data URL is not valid base64");
            }
            if (bytes.length > maxBytes) throw tooLarge();
            return bytes;
        }
        if (payloadLength > 3 * maxBytes) throw tooLarge(); // "%XX" is the densest percent encoding
        byte[] bytes = percentDecode(url, comma + 1);
        if (bytes.length > maxBytes) throw tooLarge();
        return bytes;
    }

    private static boolean hasWhitespace(String s) {
        for (int i = 0; i < s.length(); i++) if (Character.isWhitespace(s.charAt(i))) return true;
        return false;
    }

    private static byte[] percentDecode(String s, int from) throws ImageException {
        byte[] out = new byte[s.length() - from];
        int n = 0;
        for (int i = from; i < s.length(); i++) {
            char ch = s.charAt(i);
            if (ch == '%') {
                if (i + 2 >= s.length())
                    throw new ImageException(ImageException.Reason.BAD_URL, "the data URL has a broken % escape");
                int hi = Character.digit(s.charAt(i + 1), 16);
                int lo = Character.digit(s.charAt(i + 2), 16);
                if (hi < 0 || lo < 0)
                    throw new ImageException(ImageException.Reason.BAD_URL, "the data URL has a broken % escape");
                out[n++] = (byte) (hi << 4 | lo);
                i += 2;
            } else if (ch < 0x80) {
                out[n++] = (byte) ch;
            } else {
                throw new ImageException(ImageException.Reason.BAD_URL, "the data URL has non-ASCII characters");
            }
        }
        return Arrays.copyOf(out, n);
    }

    private ImageException tooLarge() {
        return new ImageException(ImageException.Reason.TOO_LARGE,
                "the image is larger than the limit of " + maxBytes + " bytes");
    }

    // ------------------------------------------------------------------------------------------------ http(s)

    private byte[] fetchHttp(URI first) throws ImageException {
        long deadline = System.nanoTime() + timeout.toNanos();
        URI uri = first;
        for (int redirects = 0; ; redirects++) {
            if (uri.getHost() == null || uri.getHost().isEmpty())
                throw new ImageException(ImageException.Reason.BAD_URL, "the image URL has no host");
            policy.check(uri);
            long remaining = deadline - System.nanoTime();
            if (remaining <= 0) throw timedOut();
            HttpRequest request;
            try {
                request = HttpRequest.newBuilder(uri)
                        .timeout(Duration.ofNanos(remaining))
                        .header("Accept", "image/*")
                        .version("http".equalsIgnoreCase(uri.getScheme())
                                ? HttpClient.Version.HTTP_1_1 : HttpClient.Version.HTTP_2)
                        .GET()
                        .build();
            } catch (IllegalArgumentException e) {
                throw new ImageException(ImageException.Reason.BAD_URL, "the image URL is malformed");
            }
            HttpResponse<byte[]> response = await(client.sendAsync(request, info -> subscriberFor(info, deadline)),
                    deadline);
            int status = response.statusCode();
            if (status >= 200 && status < 300) return response.body();
            if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
                if (redirects == MAX_REDIRECTS)
                    throw new ImageException(ImageException.Reason.HTTP_STATUS,
                            "the image URL redirected more than " + MAX_REDIRECTS + " times");
                String location = response.headers().firstValue("location").orElseThrow(() ->
                        new ImageException(ImageException.Reason.HTTP_STATUS,
                                "the image URL answered HTTP " + status + " without a Location"));
                try {
                    uri = uri.resolve(new URI(location));
                } catch (URISyntaxException | IllegalArgumentException e) {
                    throw new ImageException(ImageException.Reason.HTTP_STATUS,
                            "the image URL redirected to a malformed location");
                }
                String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
                if (!scheme.equals("http") && !scheme.equals("https"))
                    throw new ImageException(ImageException.Reason.UNSUPPORTED_SCHEME,
                            "the image URL redirected to a non-http(s) location");
                continue;
            }
            throw new ImageException(ImageException.Reason.HTTP_STATUS, "fetching the image failed with HTTP " + status);
        }
    }

    private HttpResponse<byte[]> await(CompletableFuture<HttpResponse<byte[]>> future, long deadline)
            throws ImageException {
        try {
            return future.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            future.cancel(true); // aborts the exchange and closes the connection
            throw timedOut();
        } catch (InterruptedException e) {
            future.cancel(true);
            Thread.currentThread().interrupt();
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "fetching the image was interrupted");
        } catch (ExecutionException e) {
            for (Throwable t = e.getCause(); t != null; t = t.getCause()) {
                if (t instanceof ImageException ie) throw new ImageException(ie.reason(), ie.getMessage(), ie);
            }
            Throwable cause = e.getCause();
            if (cause instanceof HttpTimeoutException) throw timedOut();
            if (cause instanceof ConnectException || cause instanceof UnresolvedAddressException)
                throw new ImageException(ImageException.Reason.FETCH_FAILED, "could not connect to the image host", cause);
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "fetching the image failed", cause);
        }
    }

    private ImageException timedOut() {
        return new ImageException(ImageException.Reason.TIMEOUT,
                "fetching the image took longer than " + timeout.toMillis() + " ms");
    }

    /** Chooses how to read a body once status and headers are known: discard, refuse by Content-Length, or collect. */
    private HttpResponse.BodySubscriber<byte[]> subscriberFor(HttpResponse.ResponseInfo info, long deadline) {
        int status = info.statusCode();
        if (status < 200 || status >= 300) return new CappedBody(0, deadline, null); // body unused: cancel at once
        long declared = info.headers().firstValueAsLong("content-length").orElse(-1L);
        if (declared > maxBytes) return new CappedBody(0, deadline, tooLarge());
        return new CappedBody(maxBytes, deadline, null);
    }

    /**
     * Collects a body up to {@code maxBytes}; cancels the subscription (closing the connection) past the cap or the
     * deadline. With {@code maxBytes == 0} it cancels at once and yields null (or {@code refusal}).
     */
    private final class CappedBody implements HttpResponse.BodySubscriber<byte[]> {
        private final long limit;
        private final long deadline;
        private final ImageException refusal;
        private final CompletableFuture<byte[]> body = new CompletableFuture<>();
        private Flow.Subscription subscription;
        private byte[] buffer = new byte[8192];
        private int size;

        CappedBody(long limit, long deadline, ImageException refusal) {
            this.limit = limit;
            this.deadline = deadline;
            this.refusal = refusal;
        }

        @Override
        public CompletionStage<byte[]> getBody() {
            return body;
        }

        @Override
        public void onSubscribe(Flow.Subscription s) {
            subscription = s;
            if (limit == 0) {
                s.cancel();
                if (refusal != null) body.completeExceptionally(refusal);
                else body.complete(null);
                return;
            }
            s.request(1);
        }

        @Override
        public void onNext(List<ByteBuffer> items) {
            if (body.isDone()) return;
            for (ByteBuffer b : items) {
                int n = b.remaining();
                if ((long) size + n > limit) {
                    fail(tooLarge());
                    return;
                }
                if (size + n > buffer.length) buffer = Arrays.copyOf(buffer,
                        (int) Math.min(limit, Math.max((long) buffer.length * 2, (long) size + n)));
                b.get(buffer, size, n);
                size += n;
            }
            if (System.nanoTime() - deadline > 0) {
                fail(timedOut());
                return;
            }
            subscription.request(1);
        }

        private void fail(ImageException e) {
            subscription.cancel();
            body.completeExceptionally(e);
        }

        @Override
        public void onError(Throwable t) {
            body.completeExceptionally(t);
        }

        @Override
        public void onComplete() {
            body.complete(Arrays.copyOf(buffer, size));
        }
    }

    // ------------------------------------------------------------------------------------------------ file:

    private byte[] readFile(URI uri) throws ImageException {
        Path path;
        try {
            path = Path.of(uri);
        } catch (IllegalArgumentException | java.nio.file.FileSystemNotFoundException e) {
            throw new ImageException(ImageException.Reason.BAD_URL, "the file: URL is malformed");
        }
        Path real;
        try {
            real = path.toRealPath(); // resolves ".." and symlinks before the containment check
        } catch (NoSuchFileException e) {
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the image file does not exist");
        } catch (IOException | SecurityException e) {
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the image file could not be read");
        }
        if (!real.startsWith(allowedFileRoot))
            throw new ImageException(ImageException.Reason.FORBIDDEN, "the image file is outside the allowed directory");
        if (!Files.isRegularFile(real))
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the image path is not a regular file");
        try (InputStream in = Files.newInputStream(real)) {
            if (Files.size(real) > maxBytes) throw tooLarge();
            byte[] bytes = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, maxBytes + 1));
            if (bytes.length > maxBytes) throw tooLarge(); // grew while reading
            return bytes;
        } catch (IOException e) {
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the image file could not be read");
        }
    }

    /** Stops the HTTP client; fetches in flight fail. */
    @Override
    public void close() {
        client.shutdownNow();
    }
}
