package dev.retina.server.input;

import dev.retina.server.protocol.ApiException;
import dev.retina.vision.ImageException;

import java.util.Locale;

/**
 * The HTTP status of each image failure, one place for all image loaders. The message starts with the content part
 * ({@code messages[0].content[1].image_url}) and carries the vision module's text, which by contract never holds a
 * resolved address or internal exception text; {@code param} names the part and {@code code} is
 * {@code image_<reason>}.
 *
 * <ul>
 *   <li>400: the request itself is wrong or not allowed: {@code BAD_URL}, {@code UNSUPPORTED_SCHEME},
 *       {@code FORBIDDEN} (private address, domain not allowed, file outside the allowed root), and the size limits
 *       {@code TOO_LARGE} and {@code TOO_MANY_PIXELS}. Size limits are 400, not 413: 413 means the HTTP request body
 *       was too large (Netty already answers it for {@code --max-request-bytes}), while an image URL's target is not
 *       the body, and clients treat 413 as "send less" rather than "send another image".</li>
 *   <li>422: the URL was fine but what it gave is unusable: {@code HTTP_STATUS} (the image server said 404, too
 *       many redirects), {@code FETCH_FAILED}, {@code NOT_AN_IMAGE}, {@code UNDECODABLE}.</li>
 *   <li>504: {@code TIMEOUT} (the whole fetch took longer than the image fetch timeout).</li>
 * </ul>
 */
public final class ImageErrors {
    private ImageErrors() {
    }

    public static int status(ImageException.Reason reason) {
        return switch (reason) {
            case TIMEOUT -> 504;
            case HTTP_STATUS, FETCH_FAILED, NOT_AN_IMAGE, UNDECODABLE -> 422;
            case BAD_URL, UNSUPPORTED_SCHEME, FORBIDDEN, TOO_LARGE, TOO_MANY_PIXELS -> 400;
        };
    }

    public static ApiException toApi(ImageException e, String param) {
        return new ApiException(status(e.reason()), ApiException.INVALID_REQUEST, param + ": " + e.getMessage(), param,
                "image_" + e.reason().name().toLowerCase(Locale.ROOT));
    }
}
