package dev.retina.server.protocol;

import com.fasterxml.jackson.annotation.JsonSubTypes;
import com.fasterxml.jackson.annotation.JsonTypeInfo;

/** One element of a message's list content: {@code {"type":"text",...}} or {@code {"type":"image_url",...}}. */
@JsonTypeInfo(use = JsonTypeInfo.Id.NAME, include = JsonTypeInfo.As.EXISTING_PROPERTY, property = "type", visible = false)
@JsonSubTypes({
        @JsonSubTypes.Type(value = TextPart.class, name = "text"),
        @JsonSubTypes.Type(value = ImageUrlPart.class, name = "image_url")})
public sealed interface ContentPart permits TextPart, ImageUrlPart {
    /** The wire name of this part's type. */
    String type();
}
