package dev.retina.vision;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Decoding and resizing against Pillow itself: src/test/resources/pillow holds small encoded images and the SHA-256
 * of Pillow's bytes for them (made by make_pillow_goldens.py there; the Pillow version is in each list's header).
 */
class PillowParityTest {
    private static Path dir() throws Exception {
        return Path.of(PillowParityTest.class.getResource("/pillow/decode.txt").toURI()).getParent();
    }

    private static List<String[]> cases(String list) throws Exception {
        return Files.readAllLines(dir().resolve(list)).stream().filter(l -> !l.isBlank() && !l.startsWith("#"))
                .map(l -> l.split(" ")).toList();
    }

    private static String sha256(byte[] bytes) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    }

    /** Every mode and format Pillow's exif_transpose + convert("RGB") handles, byte for byte (JPEG included). */
    @Test
    void decodeMatchesPillowConvertRgb() throws Exception {
        List<String[]> cases = cases("decode.txt");
        assertTrue(cases.size() >= 30);
        for (String[] c : cases) {
            RgbImage img = ImageDecoder.decode(Files.readAllBytes(dir().resolve(c[0])));
            assertEquals(c[1] + "x" + c[2], img.width() + "x" + img.height(), c[0]);
            assertEquals(c[3], sha256(img.rgb()), c[0] + ": decoded bytes differ from Pillow's");
        }
    }

    /** Up, down, one axis only, 1x1, extreme aspect: Pillow's BICUBIC bytes exactly. */
    @Test
    void resizeMatchesPillowBicubic() throws Exception {
        List<String[]> cases = cases("resize.txt");
        assertTrue(cases.size() >= 15);
        for (String[] c : cases) {
            RgbImage src = ImageDecoder.decode(Files.readAllBytes(dir().resolve(c[0])));
            RgbImage out = BicubicResize.pillow(src, Integer.parseInt(c[1]), Integer.parseInt(c[2]));
            assertEquals(c[3], sha256(out.rgb()), c[0] + " -> " + c[1] + "x" + c[2]);
        }
    }
}
