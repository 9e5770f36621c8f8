package dev.retina.server.input;

import dev.retina.server.protocol.ApiException;

import java.util.Locale;

/**
 * OpenAI's {@code image_url.detail}. Retina's meaning (an extension; OpenAI's own models differ): for LLaVA-NeXT,
 * {@code low} encodes only the base tile (the whole image resized to one tile: the model's fixed base-tile token
 * count, e.g. 576 for 336-pixel tiles) and {@code high} the full anyres grid; {@code auto} (or absent) is the model's
 * default, the full grid. LLaVA-1.5 has one resolution, so all three are the same.
 */
public enum ImageDetail {
    LOW, HIGH, AUTO;

    /** Parses the request's value; null means AUTO. */
    public static ImageDetail parse(String value, String param) {
        if (value == null) return AUTO;
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "low" -> LOW;
            case "high" -> HIGH;
            case "auto" -> AUTO;
            default -> throw ApiException.badRequest("image_url.detail must be 'low', 'high' or 'auto', got '"
                    + ApiException.truncate(value) + "'", param + ".detail");
        };
    }
}
