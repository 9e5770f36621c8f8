package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;

/**
 * Llama's rotary position embedding (HF {@code LlamaRotaryEmbedding} + {@code apply_rotary_pos_emb}, rotate_half
 * convention). cos/sin are computed once per position into device tables and gathered per step by position, so a
 * step costs one gather each, not a trigonometric pass. Called only from the engine thread.
 *
 * <p>HF computes inv_freq and the angles in float32 even when the model runs in float64; so do we, to match.
 */
final class RotaryEmbedding implements AutoCloseable {
    private final int headDim;
    private final float[] invFreq; // (headDim / 2)
    private final NDManager manager;
    private final DataType dtype;
    private NDArray cosTable; // (numPositions, headDim) model dtype
    private NDArray sinTable; // (numPositions, headDim) model dtype

    RotaryEmbedding(LlavaConfig.TextConfig config, NDManager manager, DataType dtype) {
        this.headDim = config.headDim();
        this.invFreq = inverseFrequencies(config.rope(), headDim);
        this.manager = manager;
        this.dtype = dtype;
        buildTables(config.maxPositionEmbeddings());
    }

    /** HF's {@code ROPE_INIT_FUNCTIONS[rope_type]} in float32 arithmetic. */
    static float[] inverseFrequencies(LlavaConfig.RopeParameters rope, int headDim) {
        int half = headDim / 2;
        float[] inv = new float[half];
        float base = (float) rope.ropeTheta();
        for (int i = 0; i < half; i++) {
            // 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all float32
            float exponent = (float) (2 * i) / (float) headDim;
            inv[i] = 1.0f / (float) Math.pow(base, exponent);
        }
        switch (rope.ropeType()) {
            case "default" -> { }
            case "linear" -> {
                float factor = (float) rope.factor();
                for (int i = 0; i < half; i++) inv[i] = inv[i] / factor;
            }
            case "llama3" -> {
                float factor = (float) rope.factor();
                float low = (float) rope.lowFreqFactor();
                float high = (float) rope.highFreqFactor();
                float oldContext = rope.originalMaxPositionEmbeddings();
                float lowFreqWavelen = oldContext / low;
                float highFreqWavelen = oldContext / high;
                for (int i = 0; i < half; i++) {
                    float wavelen = (float) (2 * Math.PI) / inv[i];
                    float llama = wavelen > lowFreqWavelen ? inv[i] / factor : inv[i];
                    float smooth = (oldContext / wavelen - low) / (high - low);
                    float smoothed = (1 - smooth) * llama / factor + smooth * llama;
                    boolean medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
                    inv[i] = medium ? smoothed : llama;
                }
            }
            default -> throw new IllegalArgumentException("unsupported rope_type " + rope.ropeType());
        }
        return inv;
    }

    private void buildTables(int numPositions) {
        int half = headDim / 2;
        float[] cos = new float[numPositions * headDim];
        float[] sin = new float[numPositions * headDim];
        for (int p = 0; p < numPositions; p++) {
            for (int i = 0; i < half; i++) {
                float angle = (float) p * invFreq[i]; // float32 product, as HF's matmul of float32 tensors
                float c = (float) Math.cos(angle);
                float s = (float) Math.sin(angle);
                // emb = cat(freqs, freqs): the two halves share angles
                cos[p * headDim + i] = c;
                cos[p * headDim + half + i] = c;
                sin[p * headDim + i] = s;
                sin[p * headDim + half + i] = s;
            }
        }
        if (cosTable != null) {
            cosTable.close();
            sinTable.close();
        }
        try (NDArray c32 = manager.create(cos, new Shape(numPositions, headDim));
             NDArray s32 = manager.create(sin, new Shape(numPositions, headDim))) {
            cosTable = Tensors.owned(c32, dtype);
            sinTable = Tensors.owned(s32, dtype);
        }
    }

    /** Makes the tables cover positions up to {@code maxPosition} (kernels that read them by position call this). */
    void ensureCapacity(int maxPosition) {
        long have = cosTable.getShape().get(0);
        if (maxPosition < have) return;
        // Positions past max_position_embeddings: grow the table (the model may degrade, but must not fail here).
        buildTables((int) Math.max(maxPosition + 1, have * 2));
    }

    /**
     * cos and sin at the given positions, gathered once per step and shared by every layer.
     *
     * @param positions   (T) int64, in the step manager
     * @param maxPosition largest value in {@code positions}, known on the host (avoids a device sync)
     * @return {cos, sin}, each (T, 1, headDim) model dtype (the 1 broadcasts over heads), in positions' manager
     */
    NDArray[] cosSin(NDArray positions, int maxPosition) {
        ensureCapacity(maxPosition);
        NDManager step = positions.getManager();
        return new NDArray[] {LlamaModel.rows(positions, cosTable, step).expandDims(1),
                LlamaModel.rows(positions, sinTable, step).expandDims(1)};
    }

    /**
     * x * cos + rotate_half(x) * sin, with rotate_half(x) = cat(-x2, x1). Elementwise, so q and k heads laid side by
     * side rotate in one pass with the same result as two.
     *
     * @param x (T, numHeads, headDim); cos, sin from {@link #cosSin}
     */
    NDArray rotate(NDArray x, NDArray cos, NDArray sin) {
        NDList halves = x.split(2, 2); // x1, x2
        NDArray rotated = halves.get(1).neg().concat(halves.get(0), -1);
        return x.mul(cos).add(rotated.mul(sin));
    }

    /** (numPositions, headDim) model dtype: cos of each position's angles, the two halves equal. */
    NDArray cosTable() {
        return cosTable;
    }

    /** (numPositions, headDim) model dtype. */
    NDArray sinTable() {
        return sinTable;
    }

    @Override
    public void close() {
        cosTable.close();
        sinTable.close();
    }
}
