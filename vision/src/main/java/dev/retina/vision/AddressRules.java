package dev.retina.vision;

import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.util.Locale;
import java.util.Set;

/**
 * Which addresses and host names count as private for {@link ImageFetcher}: a public media URL must never reach the
 * server's own network. Stateless; safe from any thread.
 *
 * <p>Refused IPv4: 0/8 (incl. 0.0.0.0), 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16 (link-local, incl. the cloud
 * metadata address 169.254.169.254), 172.16/12, 192.0.0/24 (IETF protocol), 192.0.2/24, 198.51.100/24,
 * 203.0.113/24 (documentation), 192.88.99/24 (6to4 relay), 192.168/16, 198.18/15 (benchmarking), 224/4 (multicast),
 * 240/4 (reserved, incl. 255.255.255.255 broadcast). Refused IPv6: :: and ::1, IPv4-mapped (::ffff:0:0/96) and
 * IPv4-compatible (::/96) forms, 64:ff9b::/96 NAT64 and 2002::/16 6to4 whose embedded IPv4 is refused, 100::/64
 * (discard), 2001::/23 (IETF protocol, incl. Teredo), 2001:db8::/32 (documentation), fc00::/7 (unique local),
 * fe80::/10 (link-local), fec0::/10 (site-local), ff00::/8 (multicast).
 */
public final class AddressRules {
    /** Names that reach internal services whatever DNS says (cloud metadata, this machine). */
    private static final Set<String> INTERNAL_NAMES = Set.of("localhost", "metadata", "metadata.google.internal",
            "metadata.goog", "instance-data", "instance-data.ec2.internal", "metadata.azure.com",
            "kubernetes.default", "kubernetes.default.svc");

    private AddressRules() {
    }

    /** True for a host name that is internal by name: see {@link #INTERNAL_NAMES}, {@code *.localhost}, {@code *.internal}, {@code *.local}. */
    public static boolean isInternalName(String normalizedHost) {
        String h = normalizedHost.toLowerCase(Locale.ROOT);
        return INTERNAL_NAMES.contains(h) || h.endsWith(".localhost") || h.endsWith(".internal")
                || h.endsWith(".local") || h.endsWith(".svc") || h.endsWith(".cluster.local");
    }

    /** True when {@code address} is globally routable unicast (none of the ranges in the class comment). */
    public static boolean isPublic(InetAddress address) {
        byte[] a = address.getAddress();
        if (address instanceof Inet4Address) return isPublicV4(a);
        if (address instanceof Inet6Address) return isPublicV6(a);
        return false;
    }

    private static boolean isPublicV4(byte[] a) {
        int b0 = a[0] & 0xff, b1 = a[1] & 0xff, b2 = a[2] & 0xff;
        if (b0 == 0 || b0 == 10 || b0 == 127) return false;
        if (b0 == 100 && (b1 & 0xc0) == 64) return false;              // 100.64/10
        if (b0 == 169 && b1 == 254) return false;
        if (b0 == 172 && (b1 & 0xf0) == 16) return false;              // 172.16/12
        if (b0 == 192 && b1 == 0 && (b2 == 0 || b2 == 2)) return false;
        if (b0 == 192 && b1 == 88 && b2 == 99) return false;
        if (b0 == 192 && b1 == 168) return false;
        if (b0 == 198 && (b1 & 0xfe) == 18) return false;              // 198.18/15
        if (b0 == 198 && b1 == 51 && b2 == 100) return false;
        if (b0 == 203 && b1 == 0 && b2 == 113) return false;
        return b0 < 224;                                              // multicast, reserved, broadcast
    }

    private static boolean isPublicV6(byte[] a) {
        boolean first10Zero = true;
        for (int i = 0; i < 10; i++) first10Zero &= a[i] == 0;
        if (first10Zero && ((a[10] & 0xff) == 0xff && (a[11] & 0xff) == 0xff)) return isPublicV4(tail4(a, 12));
        if (first10Zero && a[10] == 0 && a[11] == 0) return false;   // ::, ::1, IPv4-compatible ::/96
        int w0 = (a[0] & 0xff) << 8 | (a[1] & 0xff), w1 = (a[2] & 0xff) << 8 | (a[3] & 0xff);
        if (w0 == 0x64 && w1 == 0xff9b) {                            // NAT64 64:ff9b::/96 (and the local-use /48)
            return isPublicV4(tail4(a, 12)) && allZero(a, 4, 12);
        }
        if (w0 == 0x2002) return isPublicV4(tail4(a, 2));             // 6to4 embeds the IPv4 after the prefix
        if (w0 == 0x0100 && w1 == 0 && allZero(a, 4, 8)) return false; // 100::/64 discard
        if (w0 == 0x2001 && w1 < 0x0200) return false;               // 2001::/23 IETF (Teredo, benchmarking, ...)
        if (w0 == 0x2001 && w1 == 0x0db8) return false;
        if ((w0 & 0xfe00) == 0xfc00) return false;                   // fc00::/7
        if ((w0 & 0xffc0) == 0xfe80 || (w0 & 0xffc0) == 0xfec0) return false;
        if ((w0 & 0xff00) == 0xff00) return false;                   // multicast
        return (w0 & 0xe000) == 0x2000;                              // only 2000::/3 is global unicast
    }

    private static byte[] tail4(byte[] a, int from) {
        return new byte[] {a[from], a[from + 1], a[from + 2], a[from + 3]};
    }

    private static boolean allZero(byte[] a, int from, int to) {
        for (int i = from; i < to; i++) if (a[i] != 0) return false;
        return true;
    }
}
