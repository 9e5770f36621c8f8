package dev.retina.vision;

/**
 * Why an image could not be fetched or decoded. The message is safe to show a client: it never carries internal
 * exception text, stack details or addresses the server resolved; the cause (if any) is kept for logs only.
 * The HTTP layer maps {@link Reason} to a status: {@code TIMEOUT} to 504, {@code TOO_LARGE} and
 * {@code TOO_MANY_PIXELS} to 413 or 400, the rest to 400 (bad input) or 422 (well-formed but unusable).
 */
public final class ImageException extends Exception {
    /** The closed set of failure kinds a caller can act on. */
    public enum Reason {
        /** The URL is malformed (or a data URL's payload is not valid base64/percent encoding). */
        BAD_URL,
        /** The scheme is not one Retina fetches (or {@code file:} without an allowed root). */
        UNSUPPORTED_SCHEME,
        /** The target refused by policy (e.g. a private address, or a path outside the allowed root). */
        FORBIDDEN,
        /** The host could not be reached, the connection broke, or the file could not be read. */
        FETCH_FAILED,
        /** The server answered with a non-2xx status (or too many redirects). */
        HTTP_STATUS,
        /** The whole fetch did not finish within its deadline. */
        TIMEOUT,
        /** The encoded image is larger than the byte limit. */
        TOO_LARGE,
        /** The bytes are not in any image format Retina reads. */
        NOT_AN_IMAGE,
        /** The format was recognised but the image could not be decoded (corrupt, truncated, unsupported variant). */
        UNDECODABLE,
        /** The image's width x height exceeds the pixel limit (refused before decoding). */
        TOO_MANY_PIXELS
    }

    private final Reason reason;

    public ImageException(Reason reason, String userMessage) {
        super(userMessage);
        this.reason = reason;
    }

    public ImageException(Reason reason, String userMessage, Throwable cause) {
        super(userMessage, cause);
        this.reason = reason;
    }

    public Reason reason() {
        return reason;
    }
}
