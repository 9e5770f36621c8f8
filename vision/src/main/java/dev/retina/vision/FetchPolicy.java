package dev.retina.vision;

import java.net.IDN;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

/**
 * What {@link ImageFetcher} may fetch and how much: built once from the CLI flags, immutable, validated here.
 *
 * @param timeout                one deadline for a whole fetch: every connect, TLS handshake, header and body read
 *                               of every redirect hop together
 * @param maxImageBytes          encoded bytes at most (Content-Length checked first, then counted while streaming;
 *                               base64 length checked before decoding a data URL)
 * @param maxRedirects           redirects followed at most; each target is checked again like the first URL
 * @param allowPrivateMediaUrls  when false (the default), a host any of whose addresses is loopback, private,
 *                               link-local, CGNAT, multicast, unspecified, reserved or documentation (see
 *                               {@link AddressRules}), or a metadata/localhost name, is refused
 * @param allowedMediaDomains    when non-empty, only these hosts <em>and their subdomains</em> may be fetched
 *                               ({@code example.com} allows {@code example.com} and {@code cdn.example.com}, not
 *                               {@code badexample.com}); names are lower-cased, IDN to ASCII, trailing dot dropped.
 *                               IP literals match only when listed exactly. Empty means any public host.
 *                               The address rules still apply to allowed domains unless allowPrivateMediaUrls.
 * @param allowedLocalMediaPath  directory under which {@code file:} URLs and bare absolute paths may be read
 *                               (compared after {@code toRealPath}, so {@code ..} and symlinks cannot escape);
 *                               null refuses local files
 */
public record FetchPolicy(Duration timeout, long maxImageBytes, int maxRedirects, boolean allowPrivateMediaUrls,
                          Set<String> allowedMediaDomains, Path allowedLocalMediaPath) {
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(10);
    public static final long DEFAULT_MAX_IMAGE_BYTES = 20L * 1024 * 1024;
    public static final int DEFAULT_MAX_REDIRECTS = 3;

    public FetchPolicy {
        if (timeout == null || timeout.isNegative() || timeout.isZero())
            throw new IllegalArgumentException("timeout must be positive");
        if (maxImageBytes < 1 || maxImageBytes > Integer.MAX_VALUE - 16)
            throw new IllegalArgumentException("maxImageBytes must be between 1 and 2^31 - 17");
        if (maxRedirects < 0 || maxRedirects > 20) throw new IllegalArgumentException("maxRedirects must be 0..20");
        Set<String> domains = new TreeSet<>();
        if (allowedMediaDomains != null) {
            for (String d : allowedMediaDomains) {
                String n = normalizeHost(d);
                if (n == null || n.isEmpty() || n.startsWith("."))
                    throw new IllegalArgumentException("bad allowed media domain: " + d);
                domains.add(n);
            }
        }
        allowedMediaDomains = Set.copyOf(domains);
    }

    /** Safe defaults: 10 s, 20 MiB, 3 redirects, public hosts only, any domain, no local files. */
    public static FetchPolicy defaults() {
        return new FetchPolicy(DEFAULT_TIMEOUT, DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_REDIRECTS, false, Set.of(), null);
    }

    public FetchPolicy withTimeout(Duration t) {
        return new FetchPolicy(t, maxImageBytes, maxRedirects, allowPrivateMediaUrls, allowedMediaDomains, allowedLocalMediaPath);
    }

    public FetchPolicy withMaxImageBytes(long n) {
        return new FetchPolicy(timeout, n, maxRedirects, allowPrivateMediaUrls, allowedMediaDomains, allowedLocalMediaPath);
    }

    public FetchPolicy withMaxRedirects(int n) {
        return new FetchPolicy(timeout, maxImageBytes, n, allowPrivateMediaUrls, allowedMediaDomains, allowedLocalMediaPath);
    }

    public FetchPolicy withAllowPrivateMediaUrls(boolean allow) {
        return new FetchPolicy(timeout, maxImageBytes, maxRedirects, allow, allowedMediaDomains, allowedLocalMediaPath);
    }

    public FetchPolicy withAllowedMediaDomains(Set<String> domains) {
        return new FetchPolicy(timeout, maxImageBytes, maxRedirects, allowPrivateMediaUrls, domains, allowedLocalMediaPath);
    }

    public FetchPolicy withAllowedLocalMediaPath(Path root) {
        return new FetchPolicy(timeout, maxImageBytes, maxRedirects, allowPrivateMediaUrls, allowedMediaDomains, root);
    }

    /** True when {@code host} (already normalised) passes the domain allow-list. */
    boolean domainAllowed(String host) {
        if (allowedMediaDomains.isEmpty()) return true;
        if (allowedMediaDomains.contains(host)) return true;
        if (host.startsWith("[") || host.chars().allMatch(c -> c == '.' || (c >= '0' && c <= '9')))
            return false; // IP literals only match exactly
        for (int dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.', dot + 1))
            if (allowedMediaDomains.contains(host.substring(dot + 1))) return true;
        return false;
    }

    /** Lower-case ASCII host without a trailing dot; null when it is not a valid name. */
    static String normalizeHost(String host) {
        if (host == null) return null;
        String h = host.strip();
        if (h.endsWith(".")) h = h.substring(0, h.length() - 1);
        if (h.startsWith("[")) return h.toLowerCase(Locale.ROOT);
        try {
            return IDN.toASCII(h, IDN.ALLOW_UNASSIGNED).toLowerCase(Locale.ROOT);
        } catch (IllegalArgumentException e) {
            return null;
        }
    }
}
