package dev.retina.vision;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The settings of Hugging Face's {@code LlavaNextImageProcessor}: the CLIP settings every tile goes through, plus
 * {@code image_grid_pinpoints}. Read from {@code preprocessor_config.json} (or the {@code image_processor} object of a
 * 5.x {@code processor_config.json}). Immutable.
 *
 * @param clip               resize/crop/rescale/normalize settings applied to each tile
 * @param imageGridPinpoints candidate resolutions, each {height, width} in pixels, in config order (ties keep the
 *                           first)
 */
public record LlavaNextProcessorConfig(ClipProcessorConfig clip, List<int[]> imageGridPinpoints) {
    /** LlavaNextImageProcessor's default pinpoints (height, width), for 336-pixel tiles. */
    static final int[][] DEFAULT_PINPOINTS = {{336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};

    public LlavaNextProcessorConfig {
        if (imageGridPinpoints == null || imageGridPinpoints.isEmpty())
            throw new IllegalArgumentException("image_grid_pinpoints must not be empty");
        List<int[]> copy = new ArrayList<>();
        int tile = clip.tileSize();
        for (int[] p : imageGridPinpoints) {
            if (p.length != 2 || p[0] < 1 || p[1] < 1)
                throw new IllegalArgumentException("each pinpoint must be [height, width] > 0");
            if (p[0] % tile != 0 || p[1] % tile != 0)
                throw new IllegalArgumentException("pinpoint " + p[0] + "x" + p[1] + " is not a multiple of the tile "
                        + "size " + tile);
            copy.add(p.clone());
        }
        imageGridPinpoints = List.copyOf(copy);
    }

    @Override
    public List<int[]> imageGridPinpoints() {
        return imageGridPinpoints.stream().map(int[]::clone).toList();
    }

    /** The side of one tile: HF's {@code patch_size} = crop_size.height, else size.height, else shortest_edge. */
    public int tileSize() {
        return clip.tileSize();
    }

    public static LlavaNextProcessorConfig load(Path fileOrDirectory) throws IOException {
        return ClipProcessorConfig.parseFile(ClipProcessorConfig.configFile(fileOrDirectory),
                LlavaNextProcessorConfig::fromJson);
    }

    public static LlavaNextProcessorConfig fromJson(String json) {
        JsonNode root = ClipProcessorConfig.settingsRoot(json);
        ClipProcessorConfig clip = ClipProcessorConfig.fromJson(root.toString());
        List<int[]> pinpoints = new ArrayList<>();
        JsonNode pp = root.get("image_grid_pinpoints");
        if (pp == null || pp.isNull()) {
            for (int[] p : DEFAULT_PINPOINTS) pinpoints.add(p.clone());
        } else {
            if (!pp.isArray()) throw new IllegalArgumentException("image_grid_pinpoints must be a list, got " + pp);
            for (JsonNode p : pp) {
                if (!p.isArray() || p.size() != 2 || !p.get(0).canConvertToInt() || !p.get(1).canConvertToInt())
                    throw new IllegalArgumentException("each pinpoint must be [height, width], got " + p);
                pinpoints.add(new int[] {p.get(0).asInt(), p.get(1).asInt()});
            }
        }
        JsonNode pad = root.get("do_pad");
        if (pad != null && pad.isBoolean() && !pad.asBoolean())
            throw new IllegalArgumentException("do_pad=false is not supported (every LLaVA-NeXT checkpoint pads)");
        return new LlavaNextProcessorConfig(clip, pinpoints);
    }
}
