package dev.retina.server.protocol;

import java.util.List;

/** The body of {@code GET /v1/models}. */
public record ModelList(String object, List<ModelCard> data) {
    public static ModelList of(ModelCard... cards) {
        return new ModelList("list", List.of(cards));
    }

    /** One served model; {@code root} is where it was loaded from, {@code max_model_len} as vLLM reports it. */
    public record ModelCard(String id, String object, long created, String ownedBy, String root, Integer maxModelLen) {
        public static ModelCard of(String id, long created, String root, Integer maxModelLen) {
            return new ModelCard(id, "model", created, "retina", root, maxModelLen);
        }
    }
}
