package dev.retina.server.offline;

/**
 * One image of an offline {@link Prompt}: pixels to preprocess ({@link ImagePixelData}, for
 * {@code image_input_type pixel_values}) or precomputed features ({@link ImageFeatureData}, for
 * {@code image_features}), as vLLM 0.4's {@code MultiModalData} types.
 */
public sealed interface ImageData permits ImagePixelData, ImageFeatureData {
}
