package dev.retina.server.protocol;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.JavaType;
import com.fasterxml.jackson.databind.JsonDeserializer;
import com.fasterxml.jackson.databind.annotation.JsonDeserialize;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;

import java.io.IOException;
import java.util.List;

/**
 * A message's {@code content}: either a plain string or a list of parts. The two are kept apart because chat
 * templates treat them differently (a string-format template gets list text joined, an OpenAI-format one gets the
 * list).
 */
@JsonDeserialize(using = MessageContent.Deserializer.class)
public sealed interface MessageContent permits MessageContent.Text, MessageContent.Parts {

    /** {@code "content": "..."}. */
    record Text(String text) implements MessageContent {
    }

    /** {@code "content": [{"type":"text",...}, {"type":"image_url",...}]}. */
    record Parts(List<ContentPart> parts) implements MessageContent {
        public Parts {
            parts = List.copyOf(parts);
        }
    }

    /** Reads a string or an array of parts; anything else is a client error naming the field. */
    final class Deserializer extends JsonDeserializer<MessageContent> {
        @Override
        public MessageContent deserialize(JsonParser p, DeserializationContext ctxt) throws IOException {
            if (p.currentToken() == JsonToken.VALUE_STRING) return new Text(p.getText());
            if (p.currentToken() == JsonToken.START_ARRAY) {
                JavaType listType = ctxt.getTypeFactory().constructCollectionType(List.class, ContentPart.class);
                List<ContentPart> parts = ctxt.readValue(p, listType);
                if (parts.contains(null))
                    throw MismatchedInputException.from(p, MessageContent.class, "content parts must be objects");
                return new Parts(parts);
            }
            throw MismatchedInputException.from(p, MessageContent.class, "content must be a string or a list of parts");
        }
    }
}
