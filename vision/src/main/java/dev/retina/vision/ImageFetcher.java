package dev.retina.vision;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

/**
 * Fetches the encoded bytes behind an {@code image_url}, safe by default: {@code data:} URLs, {@code http}/{@code
 * https} to public addresses only, and {@code file:} URLs or bare absolute paths only under an allowed local root.
 * All limits come from one {@link FetchPolicy}. Thread-safe and stateless apart from its optional {@link FetchCache}:
 * one instance serves every request; call it from an input executor, never from an event loop (it blocks up to the
 * policy's timeout).
 *
 * <p>Design of an http(s) fetch (each hop, i.e. the first URL and every redirect, at most
 * {@link FetchPolicy#maxRedirects()}): check the host against the domain allow-list and internal names, ask the
 * extra {@link TargetPolicy}, resolve the name ONCE with the {@link HostResolver}, refuse if ANY address is not public
 * ({@link AddressRules}), then connect to exactly one of those checked addresses through the {@link SocketConnector}
 * (no second lookup, so DNS rebinding cannot slip between check and connect). https wraps that socket in TLS with SNI
 * and endpoint identification against the URL's host name, so certificates are checked as usual. The request is a
 * minimal HTTP/1.1 GET ({@link HttpGet}) under one deadline for the whole fetch, with the body capped while streaming.
 * Proxies are not used. Refusals are {@link ImageException}s whose messages never carry resolved addresses or
 * exception text.
 */
public final class ImageFetcher implements AutoCloseable {
    /** Longest http(s) or file URL accepted (data URLs are bounded by the image byte limit instead). */
    static final int MAX_URL_LENGTH = 8192;

    /** Default number of redirects followed ({@link FetchPolicy#DEFAULT_MAX_REDIRECTS}). */
    public static final int MAX_REDIRECTS = FetchPolicy.DEFAULT_MAX_REDIRECTS;

    /**
     * An extra check of an http(s) URL, called for the first URL and every redirect target after the built-in
     * policy. Throw {@link ImageException} with {@link ImageException.Reason#FORBIDDEN} to refuse.
     */
    @FunctionalInterface
    public interface TargetPolicy {
        TargetPolicy ALLOW_ALL = uri -> { };

        void check(URI uri) throws ImageException;
    }

    private final FetchPolicy policy;
    private final TargetPolicy extraPolicy;
    private final HostResolver resolver;
    private final SocketConnector connector;
    private final SSLSocketFactory tls;
    private final FetchCache cache; // null: no caching
    private final Path allowedRoot; // real path, or null when local files are refused

    /** A fetcher with {@code policy}, the system resolver, direct connections, default TLS and no cache. */
    public ImageFetcher(FetchPolicy policy) {
        this(policy, TargetPolicy.ALLOW_ALL, HostResolver.SYSTEM, SocketConnector.DIRECT, null, null);
    }

    /** Safe defaults ({@link FetchPolicy#defaults()}) with this timeout and byte cap; no local files. */
    public ImageFetcher(Duration timeout, long maxBytes) {
        this(timeout, maxBytes, null, TargetPolicy.ALLOW_ALL);
    }

    /** Safe defaults with this timeout, byte cap and local root. */
    public ImageFetcher(Duration timeout, long maxBytes, Path allowedFileRoot) {
        this(timeout, maxBytes, allowedFileRoot, TargetPolicy.ALLOW_ALL);
    }

    /**
     * Safe defaults with this timeout, byte cap, local root and an extra per-hop check. Private addresses are
     * refused; use {@link #ImageFetcher(FetchPolicy)} with {@code allowPrivateMediaUrls} to reach them.
     */
    public ImageFetcher(Duration timeout, long maxBytes, Path allowedFileRoot, TargetPolicy policy) {
        this(FetchPolicy.defaults().withTimeout(timeout).withMaxImageBytes(maxBytes)
                        .withAllowedLocalMediaPath(allowedFileRoot),
                policy, HostResolver.SYSTEM, SocketConnector.DIRECT, null, null);
    }

    /**
     * Every seam: {@code extraPolicy} after the built-in checks of each hop, {@code resolver} for names,
     * {@code connector} for TCP, {@code tls} for https (null: the JDK default), {@code cache} (null: none).
     */
    public ImageFetcher(FetchPolicy policy, TargetPolicy extraPolicy, HostResolver resolver, SocketConnector connector,
                        SSLSocketFactory tls, FetchCache cache) {
        this.policy = java.util.Objects.requireNonNull(policy, "policy");
        this.extraPolicy = extraPolicy == null ? TargetPolicy.ALLOW_ALL : extraPolicy;
        this.resolver = resolver == null ? HostResolver.SYSTEM : resolver;
        this.connector = connector == null ? SocketConnector.DIRECT : connector;
        this.tls = tls == null ? (SSLSocketFactory) SSLSocketFactory.getDefault() : tls;
        this.cache = cache;
        Path root = policy.allowedLocalMediaPath();
        if (root != null) {
            try {
                this.allowedRoot = root.toRealPath();
            } catch (IOException e) {
                throw new IllegalArgumentException("allowed local media path does not exist: " + root, e);
            }
            if (!Files.isDirectory(this.allowedRoot))
                throw new IllegalArgumentException("allowed local media path is not a directory: " + root);
        } else {
            this.allowedRoot = null;
        }
    }

    public FetchPolicy policy() {
        return policy;
    }

    public Duration timeout() {
        return policy.timeout();
    }

    public long maxBytes() {
        return policy.maxImageBytes();
    }

    /** The encoded image bytes behind {@code url}; decoding (and "is it an image?") is {@link ImageDecoder}'s job. */
    public byte[] fetch(String url) throws ImageException {
        if (url == null || url.isBlank()) throw new ImageException(ImageException.Reason.BAD_URL, "the image URL is empty");
        url = url.strip();
        if (url.regionMatches(true, 0, "data:", 0, 5)) return decodeDataUrl(url);
        if (url.startsWith("/")) { // a bare absolute path
            if (allowedRoot == null) throw localFilesDisabled();
            try {
                return readFile(Path.of(url));
            } catch (InvalidPathException e) {
                throw new ImageException(ImageException.Reason.BAD_URL, "the image path is malformed");
            }
        }
        if (url.length() > MAX_URL_LENGTH)
            throw new ImageException(ImageException.Reason.BAD_URL, "the image URL is longer than " + MAX_URL_LENGTH
                    + " characters");
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
                if (allowedRoot == null) throw localFilesDisabled();
                Path path;
                try {
                    path = Path.of(uri);
                } catch (IllegalArgumentException | java.nio.file.FileSystemNotFoundException e) {
                    throw new ImageException(ImageException.Reason.BAD_URL, "the file: URL is malformed");
                }
                yield readFile(path);
            }
            case "" -> throw new ImageException(ImageException.Reason.BAD_URL,
                    "the image URL has no scheme (expected http, https or data)");
            default -> throw new ImageException(ImageException.Reason.UNSUPPORTED_SCHEME,
                    "image URLs with scheme '" + safeScheme(scheme) + "' are not supported (use http, https or data)");
        };
    }

    private static ImageException localFilesDisabled() {
        return new ImageException(ImageException.Reason.UNSUPPORTED_SCHEME,
                "file: image URLs and local paths are not enabled on this server");
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
            if ((long) payloadLength / 4 * 3 > policy.maxImageBytes() + 3)
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
            if (bytes.length > policy.maxImageBytes()) throw tooLarge();
            return bytes;
        }
        if (payloadLength > 3 * policy.maxImageBytes()) throw tooLarge(); // "%XX" is the densest percent encoding
        byte[] bytes = percentDecode(url, comma + 1);
        if (bytes.length > policy.maxImageBytes()) throw tooLarge();
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
                "the image is larger than the limit of " + policy.maxImageBytes() + " bytes");
    }

        // ------------------------------------------------------------------------------------------------ http(s)

    private byte[] fetchHttp(URI first) throws ImageException {
        long deadline = System.nanoTime() + policy.timeout().toNanos();
        URI uri = first;
        for (int redirects = 0; ; redirects++) {
            Hop hop = checkHop(uri, deadline);
            String cacheKey = uri.toASCIIString();
            FetchCache.Entry cached = cache == null ? null : cache.get(cacheKey);
            if (cached != null && cached.fresh(System.nanoTime())) return cached.bytes().clone();
            Map<String, String> extra = cached != null && cached.etag() != null
                    ? Map.of("If-None-Match", cached.etag()) : Map.of();
            HttpGet.Response response = exchange(hop, extra, deadline);
            int status = response.status();
            if (status >= 200 && status < 300) {
                checkContentType(response);
                if (cache != null) cache.store(cacheKey, response.body(), response.headers(), System.nanoTime());
                return response.body();
            }
            if (status == 304 && cached != null)
                return cache.revalidated(cacheKey, cached, response.headers(), System.nanoTime()).bytes().clone();
            if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
                if (redirects >= policy.maxRedirects())
                    throw new ImageException(ImageException.Reason.HTTP_STATUS,
                            "the image URL redirected more than " + policy.maxRedirects() + " times");
                String location = response.header("location").orElseThrow(() ->
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

    /** One checked hop: where to connect (only these addresses) and what to send. */
    private record Hop(boolean https, String host, int port, String hostHeader, String target, InetAddress[] addresses) {
    }

    /** The built-in policy for one URL (first or redirect), then the extra policy, then one resolution and its check. */
    private Hop checkHop(URI uri, long deadline) throws ImageException {
        boolean https = "https".equalsIgnoreCase(uri.getScheme());
        if (uri.getRawUserInfo() != null)
            throw new ImageException(ImageException.Reason.BAD_URL, "image URLs with credentials are not supported");
        String host = FetchPolicy.normalizeHost(uri.getHost());
        if (host == null || host.isEmpty())
            throw new ImageException(ImageException.Reason.BAD_URL, "the image URL has no valid host");
        int port = uri.getPort() < 0 ? (https ? 443 : 80) : uri.getPort();
        if (port < 1 || port > 65535) throw new ImageException(ImageException.Reason.BAD_URL, "the image URL's port is invalid");
        if (!policy.domainAllowed(host))
            throw new ImageException(ImageException.Reason.FORBIDDEN, "the image host is not an allowed media domain");
        if (!policy.allowPrivateMediaUrls() && AddressRules.isInternalName(host))
            throw forbiddenAddress();
        extraPolicy.check(uri);
        String bare = host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
        InetAddress[] addresses = resolve(bare, deadline); // the fetch's one deadline covers DNS too
        if (addresses.length == 0)
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the image host could not be resolved");
        if (!policy.allowPrivateMediaUrls())
            for (InetAddress a : addresses) if (!AddressRules.isPublic(a)) throw forbiddenAddress();
        String raw = uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath();
        String target = uri.getRawQuery() == null ? raw : raw + "?" + uri.getRawQuery();
        boolean defaultPort = port == (https ? 443 : 80);
        String hostHeader = defaultPort ? host : host + ":" + port;
        return new Hop(https, host, port, hostHeader, target, addresses);
    }

    private static ImageException forbiddenAddress() {
        return new ImageException(ImageException.Reason.FORBIDDEN,
                "the image URL points to a private, local or reserved network address, which this server does not fetch");
    }

    /** Resolves on a virtual thread so a slow DNS answer cannot outlast the fetch deadline. */
    private InetAddress[] resolve(String host, long deadline) throws ImageException {
        CompletableFuture<InetAddress[]> result = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> {
            try {
                result.complete(resolver.resolve(host));
            } catch (Throwable t) {
                result.completeExceptionally(t);
            }
        });
        try {
            return result.get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw timedOut();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "fetching the image was interrupted");
        } catch (ExecutionException e) {
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the image host could not be resolved",
                    e.getCause() instanceof UnknownHostException ? null : e.getCause());
        }
    }

    private HttpGet.Response exchange(Hop hop, Map<String, String> extra, long deadline) throws ImageException {
        Socket socket = null;
        try {
            socket = connect(hop, deadline);
            if (hop.https()) socket = startTls(socket, hop, deadline);
            return HttpGet.exchange(socket, hop.hostHeader(), hop.target(), extra, deadline, policy.maxImageBytes());
        } catch (HttpGet.DeadlineExceeded | SocketTimeoutException e) {
            throw timedOut();
        } catch (HttpGet.BodyTooLarge e) {
            throw tooLarge();
        } catch (HttpGet.Malformed e) {
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the image host sent a malformed HTTP response", e);
        } catch (SSLException e) {
            throw new ImageException(ImageException.Reason.FETCH_FAILED,
                    "the TLS connection to the image host failed (certificate or protocol)", e);
        } catch (IOException e) {
            if (deadline - System.nanoTime() <= 0) throw timedOut();
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the connection to the image host failed", e);
        } catch (IllegalArgumentException e) {
            throw new ImageException(ImageException.Reason.BAD_URL, "the image URL is malformed");
        } finally {
            if (socket != null) {
                try {
                    socket.close();
                } catch (IOException ignored) {
                    // nothing to do: the answer (or failure) is already in hand
                }
            }
        }
    }

    /** Connects to the first checked address that answers; never resolves again. */
    private Socket connect(Hop hop, long deadline) throws IOException, ImageException {
        IOException last = null;
        for (InetAddress address : hop.addresses()) {
            long remaining = deadline - System.nanoTime();
            if (remaining <= 0) throw timedOut();
            try {
                return connector.connect(address, hop.port(), (int) Math.max(1, (remaining + 999_999) / 1_000_000));
            } catch (SocketTimeoutException e) {
                last = e;
            } catch (IOException e) {
                last = e;
            }
        }
        if (deadline - System.nanoTime() <= 0) throw timedOut();
        throw new ImageException(ImageException.Reason.FETCH_FAILED, "could not connect to the image host", last);
    }

    private Socket startTls(Socket plain, Hop hop, long deadline) throws IOException {
        SSLSocket ssl = (SSLSocket) tls.createSocket(plain, hop.host(), hop.port(), true);
        SSLParameters params = ssl.getSSLParameters();
        params.setEndpointIdentificationAlgorithm("HTTPS"); // certificate must name the URL's host, not the IP
        boolean literal = hop.host().startsWith("[") || hop.host().chars().allMatch(c -> c == '.' || Character.isDigit(c));
        if (!literal) params.setServerNames(List.of(new SNIHostName(hop.host())));
        ssl.setSSLParameters(params);
        long remaining = deadline - System.nanoTime();
        if (remaining <= 0) throw new HttpGet.DeadlineExceeded();
        ssl.setSoTimeout((int) Math.max(1, (remaining + 999_999) / 1_000_000));
        ssl.startHandshake();
        return ssl;
    }

    /**
     * A declared Content-Type that is clearly not an image (text, HTML, JSON, XML, audio, video...) is refused
     * without decoding; a missing type, {@code image/*} and {@code application/octet-stream} pass to the decoder,
     * which sniffs the bytes (servers often mislabel images as octet-stream).
     */
    private static void checkContentType(HttpGet.Response response) throws ImageException {
        String type = response.header("content-type").orElse("").toLowerCase(Locale.ROOT);
        int semi = type.indexOf(';');
        if (semi >= 0) type = type.substring(0, semi);
        type = type.strip();
        if (type.isEmpty() || type.startsWith("image/") || type.equals("application/octet-stream")
                || type.equals("binary/octet-stream") || type.equals("application/binary")) return;
        throw new ImageException(ImageException.Reason.NOT_AN_IMAGE,
                "the image URL did not return an image (its content type is not image/*)");
    }

    private ImageException timedOut() {
        return new ImageException(ImageException.Reason.TIMEOUT,
                "fetching the image took longer than " + policy.timeout().toMillis() + " ms");
    }

// ------------------------------------------------------------------------------------------------ file:

    private byte[] readFile(Path path) throws ImageException {
        Path real;
        try {
            real = path.toRealPath(); // resolves ".." and symlinks before the containment check
        } catch (NoSuchFileException e) {
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the image file does not exist");
        } catch (IOException | SecurityException e) {
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the image file could not be read");
        }
        if (!real.startsWith(allowedRoot))
            throw new ImageException(ImageException.Reason.FORBIDDEN, "the image file is outside the allowed directory");
        if (!Files.isRegularFile(real))
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the image path is not a regular file");
        try (InputStream in = Files.newInputStream(real)) {
            if (Files.size(real) > policy.maxImageBytes()) throw tooLarge();
            byte[] bytes = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, policy.maxImageBytes() + 1));
            if (bytes.length > policy.maxImageBytes()) throw tooLarge(); // grew while reading
            return bytes;
        } catch (IOException e) {
            throw new ImageException(ImageException.Reason.FETCH_FAILED, "the image file could not be read");
        }
    }

    /** Drops the cache's entries (if any); nothing else to release. */
    @Override
    public void close() {
        if (cache != null) cache.clear();
    }
}
