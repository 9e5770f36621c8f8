package dev.retina.vision;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class BicubicResizeTest {
    @Test
    void unchangedSizeIsIdentity() {
        RgbImage img = TestImages.gradient(5, 4);
        assertSame(img, BicubicResize.pillow(img, 5, 4));
    }

    @Test
    void constantImageStaysConstantUpAndDown() {
        for (int[] size : new int[][] {{7, 5}, {336, 336}, {3, 90}, {1, 1}, {64, 2}}) {
            RgbImage img = RgbImage.filled(40, 23, 255, 0, 131);
            RgbImage out = BicubicResize.pillow(img, size[0], size[1]);
            assertEquals(size[0], out.width());
            assertEquals(size[1], out.height());
            for (int i = 0; i < out.rgb().length; i += 3) {
                assertEquals(255, out.rgb()[i] & 0xFF);
                assertEquals(0, out.rgb()[i + 1] & 0xFF);
                assertEquals(131, out.rgb()[i + 2] & 0xFF);
            }
        }
    }

    @Test
    void onePixelUpscalesToItsColour() {
        RgbImage out = BicubicResize.pillow(RgbImage.filled(1, 1, 200, 30, 90), 30, 30);
        assertArrayEquals(RgbImage.filled(30, 30, 200, 30, 90).rgb(), out.rgb());
    }

    @Test
    void horizontalOnlyResizeTouchesRowsIndependently() {
        // Height unchanged: the vertical pass is skipped, so each output row depends only on its own input row.
        Random rnd = new Random(3);
        byte[] row = new byte[3 * 50];
        rnd.nextBytes(row);
        byte[] two = new byte[2 * row.length];
        System.arraycopy(row, 0, two, 0, row.length);
        System.arraycopy(row, 0, two, row.length, row.length);
        two[row.length] ^= (byte) 0xFF; // second row differs in one pixel at the far left
        RgbImage out = BicubicResize.pillow(new RgbImage(50, 2, two), 17, 2);
        RgbImage single = BicubicResize.pillow(new RgbImage(50, 1, row), 17, 1);
        for (int i = 0; i < 17 * 3; i++) assertEquals(single.rgb()[i], out.rgb()[i]);
    }

    @Test
    void sharpEdgeOvershootIsClampedNotWrapped() {
        // Bicubic rings at a black/white edge (negative lobes); Pillow clamps to 0..255 rather than wrapping.
        byte[] rgb = new byte[3 * 8];
        for (int x = 4; x < 8; x++) rgb[3 * x] = rgb[3 * x + 1] = rgb[3 * x + 2] = (byte) 255;
        RgbImage out = BicubicResize.pillow(new RgbImage(8, 1, rgb), 21, 1);
        int previous = 0;
        for (int x = 0; x < 21; x++) {
            int v = out.get(x, 0, 0);
            assertTrue(v >= 0 && v <= 255);
            if (x < 9) assertTrue(v <= 2, "left of the edge stays dark: " + v); // would wrap to ~255 if unclamped
            if (x > 12) assertTrue(v >= 253, "right of the edge stays bright: " + v);
            previous = v;
        }
        assertEquals(255, previous);
    }

    @Test
    void downscaleAveragesWithAntialias() {
        // A 1-pixel checkerboard shrunk 4x averages out to mid-grey (the kernel widens by the scale).
        byte[] rgb = new byte[3 * 64 * 64];
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
                if (((x + y) & 1) == 0) for (int c = 0; c < 3; c++) rgb[(y * 64 + x) * 3 + c] = (byte) 255;
        RgbImage out = BicubicResize.pillow(new RgbImage(64, 64, rgb), 16, 16);
        for (int i = 0; i < out.rgb().length; i++) {
            int v = out.rgb()[i] & 0xFF;
            assertTrue(Math.abs(v - 127.5) < 3, "checkerboard averages to grey, got " + v);
        }
    }
}
