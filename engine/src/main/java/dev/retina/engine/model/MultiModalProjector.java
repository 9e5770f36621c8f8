package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.core.Linear;

/**
 * LLaVA's {@code multi_modal_projector}: linear_1, activation, linear_2, from vision features to the text hidden
 * size. Called only from the engine thread.
 */
final class MultiModalProjector {
    private final NDArray linear1Weight; // (textHidden, projectorInput)
    private final NDArray linear1Bias;   // (textHidden) or null
    private final NDArray linear2Weight; // (textHidden, textHidden)
    private final NDArray linear2Bias;   // (textHidden) or null
    private final String act;
    private final NDArray quickGeluAlpha;

    MultiModalProjector(LlavaConfig config, WeightSource weights, NDArray quickGeluAlpha) {
        long in = config.projectorInputSize();
        long out = config.textConfig().hiddenSize();
        String pre = "multi_modal_projector.";
        linear1Weight = weights.get(pre + "linear_1.weight", out, in);
        linear2Weight = weights.get(pre + "linear_2.weight", out, out);
        boolean bias = config.multimodalProjectorBias();
        linear1Bias = bias ? weights.get(pre + "linear_1.bias", out) : null;
        linear2Bias = bias ? weights.get(pre + "linear_2.bias", out) : null;
        this.act = config.projectorHiddenAct();
        this.quickGeluAlpha = quickGeluAlpha;
    }

    /** (..., projectorInput) -> (..., textHidden), in the input's manager. */
    NDArray forward(NDArray imageFeatures) {
        NDArray h = Linear.linear(imageFeatures, linear1Weight, linear1Bias).singletonOrThrow();
        h = ClipVisionTower.activation(h, act, quickGeluAlpha);
        return Linear.linear(h, linear2Weight, linear2Bias).singletonOrThrow();
    }
}
