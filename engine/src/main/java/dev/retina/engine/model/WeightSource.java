package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;

/**
 * Hands out a checkpoint's tensors by canonical name (HF 5.x names without the {@code model.} prefix:
 * {@code language_model.layers.0.self_attn.q_proj.weight}, {@code vision_tower.embeddings.class_embedding},
 * {@code multi_modal_projector.linear_1.weight}, {@code lm_head.weight}), created in the model's manager, on its
 * device, in its dtype. Used only while loading.
 */
interface WeightSource extends AutoCloseable {
    boolean has(String name);

    /** The tensor, checked against the shape the config implies. */
    NDArray get(String name, long... shape);

    @Override
    void close();
}
