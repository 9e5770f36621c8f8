package dev.retina.server.offline;

import dev.retina.engine.ImageInput;

import java.util.Arrays;
import java.util.List;

/**
 * Placeholder expansion and validation for offline prompts: gives each image exactly its token count of image
 * placeholder ids, accepting both one placeholder per image and the seed's pre-expanded (repeated-placeholder)
 * form. Stateless; called from any thread that calls {@link LLM#generate}/{@link LLM#submit}.
 */
final class PlaceholderExpander {
    private final int imageTokenId;

    PlaceholderExpander(int imageTokenId) {
        this.imageTokenId = imageTokenId;
    }

    /**
     * Expands each image's placeholder to that image's token count (fixed for LLaVA-1.5, per image size for
     * LLaVA-NeXT). A run of placeholder ids starting at image k is either the seed's pre-expanded form (exactly the
     * token counts of images k, k+1, ... added up: kept as is) or one placeholder per image (each expanded, as the
     * server does).
     *
     * @throws IllegalArgumentException when the placeholders do not match the images in either form
     */
    int[] expand(int[] ids, List<ImageInput> images) {
        int[] out = new int[ids.length];
        int k = 0;
        int image = 0; // the next image to place
        for (int i = 0; i < ids.length; ) {
            if (ids[i] != imageTokenId) {
                if (k == out.length) out = Arrays.copyOf(out, out.length * 2);
                out[k++] = ids[i++];
                continue;
            }
            int run = 0;
            while (i + run < ids.length && ids[i + run] == imageTokenId) run++;
            i += run;
            int last = image;
            long preExpanded = 0;
            while (last < images.size() && preExpanded < run) preExpanded += images.get(last++).numImageTokens();
            if (preExpanded != run) {
                if (run > images.size() - image) {
                    if (image < images.size())
                        throw new IllegalArgumentException("the prompt has a run of " + run + " image placeholders: "
                                + "neither one placeholder per image nor the image tokens of image(s) " + image
                                + ".. (" + tokenCounts(images, image) + ")");
                    int found = image + run;
                    for (int j = i; j < ids.length; j++) if (ids[j] == imageTokenId) found++;
                    throw new IllegalArgumentException("the prompt has placeholders for " + found + " image(s) but "
                            + "carries " + images.size() + " image(s)");
                }
                last = image + run; // one placeholder per image
            }
            for (; image < last; image++) {
                int n = images.get(image).numImageTokens();
                if (k + n > out.length) out = Arrays.copyOf(out, Math.max(out.length * 2, k + n));
                Arrays.fill(out, k, k + n, imageTokenId);
                k += n;
            }
        }
        if (image != images.size())
            throw new IllegalArgumentException("the prompt has placeholders for " + image + " image(s) but carries "
                    + images.size() + " image(s)");
        return Arrays.copyOf(out, k);
    }

    private static String tokenCounts(List<ImageInput> images, int from) {
        return String.join(", ", images.subList(from, images.size()).stream()
                .map(i -> String.valueOf(i.numImageTokens())).toList());
    }
}
