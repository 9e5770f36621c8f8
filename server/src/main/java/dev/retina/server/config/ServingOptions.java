package dev.retina.server.config;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * How the HTTP front door behaves (auth, CORS, admission, timeouts, logs, TLS, response shaping), built once by
 * {@code retina serve} beside {@link ServerConfig} and validated here.
 *
 * @param apiKeys                keys accepted as {@code Authorization: Bearer <key>}; empty = no auth
 * @param allowedOrigins         CORS origins; {@code *} = any
 * @param allowedMethods         CORS methods; {@code *} = every method Retina serves
 * @param allowedHeaders         CORS request headers; {@code *} = any
 * @param maxNumWaiting          generation requests that may wait beyond those running (429 above); 0 = unbounded
 * @param requestTimeout         longest a request may take before it is aborted with 504; null = no limit
 * @param logRequests            one INFO line per request
 * @param requestIdHeaders       echo (or generate) {@code X-Request-Id} on every response
 * @param sslKeyFile             PEM private key (PKCS#8) for HTTPS, or null for plain HTTP
 * @param sslCertFile            PEM certificate chain for HTTPS, or null
 * @param responseRole           the role written in responses
 * @param returnTokensAsTokenIds logprob tokens written as {@code token_id:N}
 */
public record ServingOptions(List<String> apiKeys, List<String> allowedOrigins, List<String> allowedMethods,
                             List<String> allowedHeaders, int maxNumWaiting, Duration requestTimeout,
                             boolean logRequests, boolean requestIdHeaders, Path sslKeyFile, Path sslCertFile,
                             String responseRole, boolean returnTokensAsTokenIds, Duration requestReadTimeout,
                             Duration idleTimeout) {
    /** A request must arrive whole within this of its first byte (slow clients). */
    public static final Duration DEFAULT_REQUEST_READ_TIMEOUT = Duration.ofSeconds(30);
    /** A keep-alive connection with nothing in flight is closed after this. */
    public static final Duration DEFAULT_IDLE_TIMEOUT = Duration.ofSeconds(120);

    /** With the default slow-client limits. */
    public ServingOptions(List<String> apiKeys, List<String> allowedOrigins, List<String> allowedMethods,
                          List<String> allowedHeaders, int maxNumWaiting, Duration requestTimeout,
                          boolean logRequests, boolean requestIdHeaders, Path sslKeyFile, Path sslCertFile,
                          String responseRole, boolean returnTokensAsTokenIds) {
        this(apiKeys, allowedOrigins, allowedMethods, allowedHeaders, maxNumWaiting, requestTimeout, logRequests,
                requestIdHeaders, sslKeyFile, sslCertFile, responseRole, returnTokensAsTokenIds,
                DEFAULT_REQUEST_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT);
    }

    public ServingOptions {
        if (requestReadTimeout == null) requestReadTimeout = DEFAULT_REQUEST_READ_TIMEOUT;
        if (idleTimeout == null) idleTimeout = DEFAULT_IDLE_TIMEOUT;
        apiKeys = apiKeys == null ? List.of() : apiKeys.stream().filter(k -> k != null && !k.isEmpty()).toList();
        allowedOrigins = allowedOrigins == null || allowedOrigins.isEmpty() ? List.of("*") : List.copyOf(allowedOrigins);
        allowedMethods = allowedMethods == null || allowedMethods.isEmpty() ? List.of("*") : List.copyOf(allowedMethods);
        allowedHeaders = allowedHeaders == null || allowedHeaders.isEmpty() ? List.of("*") : List.copyOf(allowedHeaders);
        if (maxNumWaiting < 0) throw new ConfigException("--max-num-waiting must be >= 0, got " + maxNumWaiting);
        if (requestTimeout != null && (requestTimeout.isNegative() || requestTimeout.isZero()))
            throw new ConfigException("--request-timeout must be positive, got " + requestTimeout.toMillis() / 1000.0);
        if ((sslKeyFile == null) != (sslCertFile == null))
            throw new ConfigException("--ssl-keyfile and --ssl-certfile go together");
        if (sslKeyFile != null && !Files.isRegularFile(sslKeyFile))
            throw new ConfigException("--ssl-keyfile " + sslKeyFile + " is not a readable file");
        if (sslCertFile != null && !Files.isRegularFile(sslCertFile))
            throw new ConfigException("--ssl-certfile " + sslCertFile + " is not a readable file");
        if (responseRole == null || responseRole.isBlank()) responseRole = "assistant";
    }

    /** Every default: no auth, CORS open to any origin (as vLLM), no queue bound, no timeout, logs on, plain HTTP. */
    public static ServingOptions defaults() {
        return new ServingOptions(List.of(), null, null, null, 0, null, true, false, null, null, "assistant", false);
    }

    public boolean tls() {
        return sslKeyFile != null;
    }

    public ServingOptions withApiKeys(List<String> keys) {
        return new ServingOptions(keys, allowedOrigins, allowedMethods, allowedHeaders, maxNumWaiting, requestTimeout,
                logRequests, requestIdHeaders, sslKeyFile, sslCertFile, responseRole, returnTokensAsTokenIds,
                requestReadTimeout, idleTimeout);
    }

    public ServingOptions withMaxNumWaiting(int n) {
        return new ServingOptions(apiKeys, allowedOrigins, allowedMethods, allowedHeaders, n, requestTimeout,
                logRequests, requestIdHeaders, sslKeyFile, sslCertFile, responseRole, returnTokensAsTokenIds,
                requestReadTimeout, idleTimeout);
    }

    public ServingOptions withRequestTimeout(Duration timeout) {
        return new ServingOptions(apiKeys, allowedOrigins, allowedMethods, allowedHeaders, maxNumWaiting, timeout,
                logRequests, requestIdHeaders, sslKeyFile, sslCertFile, responseRole, returnTokensAsTokenIds,
                requestReadTimeout, idleTimeout);
    }

    public ServingOptions withRequestIdHeaders(boolean on) {
        return new ServingOptions(apiKeys, allowedOrigins, allowedMethods, allowedHeaders, maxNumWaiting,
                requestTimeout, logRequests, on, sslKeyFile, sslCertFile, responseRole, returnTokensAsTokenIds,
                requestReadTimeout, idleTimeout);
    }

    public ServingOptions withTls(Path keyFile, Path certFile) {
        return new ServingOptions(apiKeys, allowedOrigins, allowedMethods, allowedHeaders, maxNumWaiting,
                requestTimeout, logRequests, requestIdHeaders, keyFile, certFile, responseRole, returnTokensAsTokenIds,
                requestReadTimeout, idleTimeout);
    }

    public ServingOptions withCors(List<String> origins, List<String> methods, List<String> headers) {
        return new ServingOptions(apiKeys, origins, methods, headers, maxNumWaiting, requestTimeout, logRequests,
                requestIdHeaders, sslKeyFile, sslCertFile, responseRole, returnTokensAsTokenIds,
                requestReadTimeout, idleTimeout);
    }
}
