package dev.retina.server.protocol;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonProperty;

/** {@code {"type":"image_url","image_url":{"url":"https://... or data:image/png;base64,...","detail":"auto"}}}. */
public record ImageUrlPart(ImageUrl imageUrl) implements ContentPart {
    @Override
    public String type() {
        return "image_url";
    }

    /** The image's address and OpenAI's {@code detail} hint (accepted, not used by LLaVA-1.5). */
    public record ImageUrl(String url, String detail) {
        @JsonCreator
        public ImageUrl(@JsonProperty("url") String url, @JsonProperty("detail") String detail) {
            this.url = url;
            this.detail = detail;
        }

        /** Some clients send {@code "image_url": "https://..."}; accept it as the url. */
        @JsonCreator(mode = JsonCreator.Mode.DELEGATING)
        public static ImageUrl of(String url) {
            return new ImageUrl(url, null);
        }
    }
}
