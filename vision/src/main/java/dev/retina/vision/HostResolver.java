package dev.retina.vision;

import java.net.InetAddress;
import java.net.UnknownHostException;

/**
 * Resolves a host name to every address it has; {@link ImageFetcher} checks all of them and then connects to one
 * of exactly those (never resolving again, so DNS rebinding between check and connect is impossible). A seam for
 * tests; implementations must be thread-safe.
 */
@FunctionalInterface
public interface HostResolver {
    /** The JDK resolver ({@link InetAddress#getAllByName}), honouring the JVM's DNS cache settings. */
    HostResolver SYSTEM = InetAddress::getAllByName;

    InetAddress[] resolve(String host) throws UnknownHostException;
}
