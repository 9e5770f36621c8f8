package dev.retina.vision;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.awt.image.IndexColorModel;
import java.awt.image.WritableRaster;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class ImageDecoderTest {
    @Test
    void grayscaleUsesRasterLevelsNotGammaCorrectedRgb() throws Exception {
        BufferedImage gray = new BufferedImage(3, 2, BufferedImage.TYPE_BYTE_GRAY);
        gray.getRaster().setSample(0, 0, 0, 100);
        gray.getRaster().setSample(1, 0, 0, 37);
        RgbImage out = ImageDecoder.decode(TestImages.encode(gray, "png"));
        assertEquals(100, out.get(0, 0, 0));
        assertEquals(100, out.get(0, 0, 1));
        assertEquals(100, out.get(0, 0, 2));
        assertEquals(37, out.get(1, 0, 2));
        // getRGB() on the same decoded image would have given a different (gamma-mapped) level: the trap we avoid.
        BufferedImage reread = javax.imageio.ImageIO.read(new java.io.ByteArrayInputStream(TestImages.encode(gray, "png")));
        assertNotEquals(100, (reread.getRGB(0, 0) >> 16) & 0xFF);
    }

    @Test
    void sixteenBitGrayClipsAt255LikePillowI16() throws Exception {
        BufferedImage gray16 = new BufferedImage(3, 1, BufferedImage.TYPE_USHORT_GRAY);
        gray16.getRaster().setSample(0, 0, 0, 100);
        gray16.getRaster().setSample(1, 0, 0, 1000);
        gray16.getRaster().setSample(2, 0, 0, 65535);
        RgbImage out = ImageDecoder.decode(TestImages.encode(gray16, "png"));
        assertEquals(100, out.get(0, 0, 0));
        assertEquals(255, out.get(1, 0, 0));
        assertEquals(255, out.get(2, 0, 1));
    }

    @Test
    void rgbaDropsAlphaWithoutCompositing() throws Exception {
        BufferedImage rgba = new BufferedImage(2, 1, BufferedImage.TYPE_INT_ARGB);
        rgba.setRGB(0, 0, 0x000A141E);  // fully transparent (10, 20, 30)
        rgba.setRGB(1, 0, 0x80FF0000);  // half transparent red
        RgbImage out = ImageDecoder.decode(TestImages.encode(rgba, "png"));
        assertArrayEquals(new byte[] {10, 20, 30, (byte) 255, 0, 0}, out.rgb());
    }

    @Test
    void paletteWithTransparentEntryLooksUpPaletteColour() throws Exception {
        byte[] r = {0, (byte) 200, 5}, g = {0, 100, 6}, b = {0, 50, 7}, a = {(byte) 255, 0, (byte) 255};
        IndexColorModel icm = new IndexColorModel(8, 3, r, g, b, a);
        BufferedImage pal = new BufferedImage(3, 1, BufferedImage.TYPE_BYTE_INDEXED, icm);
        WritableRaster raster = pal.getRaster();
        raster.setSample(0, 0, 0, 1);
        raster.setSample(1, 0, 0, 2);
        raster.setSample(2, 0, 0, 0);
        for (String format : new String[] {"png", "gif"}) {
            RgbImage out = ImageDecoder.decode(TestImages.encode(pal, format));
            assertArrayEquals(new byte[] {(byte) 200, 100, 50, 5, 6, 7, 0, 0, 0}, out.rgb(), format);
        }
    }

    @Test
    void oneBitImageIsBlackAndWhite() throws Exception {
        BufferedImage bits = new BufferedImage(9, 1, BufferedImage.TYPE_BYTE_BINARY);
        bits.getRaster().setSample(3, 0, 0, 1);
        RgbImage out = ImageDecoder.decode(TestImages.encode(bits, "png"));
        for (int x = 0; x < 9; x++) assertEquals(x == 3 ? 255 : 0, out.get(x, 0, 1));
        RgbImage bmp = ImageDecoder.decode(TestImages.encode(bits, "bmp"));
        assertArrayEquals(out.rgb(), bmp.rgb());
    }

    @Test
    void rgbFormatsRoundTrip() throws Exception {
        BufferedImage rgb = new BufferedImage(4, 3, BufferedImage.TYPE_3BYTE_BGR);
        for (int y = 0; y < 3; y++) for (int x = 0; x < 4; x++) rgb.setRGB(x, y, (x * 60) << 16 | (y * 90) << 8 | 33);
        for (String format : new String[] {"png", "bmp", "tiff"}) {
            RgbImage out = ImageDecoder.decode(TestImages.encode(rgb, format));
            assertEquals(4, out.width());
            assertEquals(3, out.height());
            assertEquals(180, out.get(3, 1, 0), format);
            assertEquals(90, out.get(3, 1, 1), format);
            assertEquals(33, out.get(3, 1, 2), format);
        }
    }

    @Test
    void jpegExifOrientationIsApplied() throws Exception {
        // 32x16: left half red, right half blue. Orientation 6 (rotate 90 clockwise) makes it 16x32, red on top.
        BufferedImage img = new BufferedImage(32, 16, BufferedImage.TYPE_3BYTE_BGR);
        for (int y = 0; y < 16; y++) for (int x = 0; x < 32; x++) img.setRGB(x, y, x < 16 ? 0xFF0000 : 0x0000FF);
        byte[] jpeg = TestImages.encode(img, "jpeg");
        RgbImage plain = ImageDecoder.decode(jpeg);
        assertEquals(32, plain.width());
        RgbImage rotated = ImageDecoder.decode(TestImages.jpegWithOrientation(jpeg, 6));
        assertEquals(16, rotated.width());
        assertEquals(32, rotated.height());
        assertTrue(rotated.get(8, 4, 0) > 200 && rotated.get(8, 4, 2) < 60, "top is red");
        assertTrue(rotated.get(8, 28, 2) > 200 && rotated.get(8, 28, 0) < 60, "bottom is blue");
        assertArrayEquals(ExifOrientation.apply(plain, 6).rgb(), rotated.rgb());
        assertEquals(8, ExifOrientation.read(TestImages.jpegWithOrientation(jpeg, 8)));
    }

    @Test
    void pngExifOrientationIsApplied() throws Exception {
        BufferedImage img = new BufferedImage(3, 2, BufferedImage.TYPE_3BYTE_BGR);
        img.setRGB(0, 0, 0xFFFFFF);
        byte[] png = TestImages.pngWithOrientation(TestImages.encode(img, "png"), 3);
        assertEquals(3, ExifOrientation.read(png));
        RgbImage out = ImageDecoder.decode(png);
        assertEquals(255, out.get(2, 1, 0)); // rotated 180: top-left white pixel now bottom-right
        assertEquals(0, out.get(0, 0, 0));
    }

    @Test
    void allEightOrientationsMatchPillowTranspose() {
        RgbImage in = TestImages.gradient(3, 2); // pixel (x, y) has R = 40x, G = 40y
        // For each orientation: output size and, for each output pixel, the source (x, y) Pillow's transpose picks.
        int w = 3, h = 2;
        for (int o = 1; o <= 8; o++) {
            RgbImage out = ExifOrientation.apply(in, o);
            for (int y = 0; y < out.height(); y++)
                for (int x = 0; x < out.width(); x++) {
                    int[] s = switch (o) {
                        case 1 -> new int[] {x, y};
                        case 2 -> new int[] {w - 1 - x, y};               // FLIP_LEFT_RIGHT
                        case 3 -> new int[] {w - 1 - x, h - 1 - y};       // ROTATE_180
                        case 4 -> new int[] {x, h - 1 - y};               // FLIP_TOP_BOTTOM
                        case 5 -> new int[] {y, x};                       // TRANSPOSE
                        case 6 -> new int[] {y, h - 1 - x};               // ROTATE_270 (clockwise)
                        case 7 -> new int[] {w - 1 - y, h - 1 - x};       // TRANSVERSE
                        default -> new int[] {w - 1 - y, x};              // ROTATE_90 (counter-clockwise)
                    };
                    assertEquals(s[0] * 40, out.get(x, y, 0), "orientation " + o);
                    assertEquals(s[1] * 40, out.get(x, y, 1), "orientation " + o);
                }
        }
        // Spot-check the geometry against plain words: 6 turns the top-left corner into the top-right one.
        RgbImage cw = ExifOrientation.apply(in, 6);
        assertEquals(2, cw.width());
        assertEquals(0, cw.get(1, 0, 0)); // source (0, 0)
        assertEquals(0, cw.get(1, 0, 1));
    }

    @Test
    void garbageIsNotAnImage() {
        ImageException e = assertThrows(ImageException.class,
                () -> ImageDecoder.decode("<html>hello</html>".getBytes()));
        assertEquals(ImageException.Reason.NOT_AN_IMAGE, e.reason());
        assertEquals(ImageException.Reason.NOT_AN_IMAGE,
                assertThrows(ImageException.class, () -> ImageDecoder.decode(new byte[0])).reason());
    }

    @Test
    void truncatedImageIsUndecodable() {
        BufferedImage img = new BufferedImage(64, 64, BufferedImage.TYPE_3BYTE_BGR);
        byte[] png = TestImages.encode(img, "png");
        byte[] cut = Arrays.copyOf(png, 60);
        ImageException e = assertThrows(ImageException.class, () -> ImageDecoder.decode(cut));
        assertEquals(ImageException.Reason.UNDECODABLE, e.reason());
        assertTrue(!e.getMessage().contains("Exception"), "message stays user-safe: " + e.getMessage());
    }

    @Test
    void pixelLimitRefusesBeforeDecoding() throws Exception {
        BufferedImage img = new BufferedImage(20, 20, BufferedImage.TYPE_3BYTE_BGR);
        byte[] png = TestImages.encode(img, "png");
        assertEquals(ImageException.Reason.TOO_MANY_PIXELS,
                assertThrows(ImageException.class, () -> new ImageDecoder(399).read(png)).reason());
        assertEquals(20, new ImageDecoder(400).read(png).width());
        // A bomb: the header claims 60000 x 60000 (3.6 G pixels, ~10 GB of RGB) with a few bytes of data.
        // Refused from the header alone; decoding it would throw OutOfMemoryError instead.
        byte[] bomb = png.clone();
        java.nio.ByteBuffer.wrap(bomb, 16, 8).putInt(60000).putInt(60000);
        ImageException e = assertThrows(ImageException.class, () -> ImageDecoder.decode(bomb));
        assertEquals(ImageException.Reason.TOO_MANY_PIXELS, e.reason());
    }

    /** Header bombs in every format with a reader: refused from the declared size, before any pixel buffer exists. */
    @Test
    void headerBombsAreRefusedBeforeAllocation() throws Exception {
        byte[] png = TestImages.encode(new BufferedImage(4, 4, BufferedImage.TYPE_3BYTE_BGR), "png");
        java.nio.ByteBuffer.wrap(png, 16, 8).putInt(50_000).putInt(50_000);
        byte[] gif = TestImages.encode(new BufferedImage(4, 4, BufferedImage.TYPE_BYTE_INDEXED), "gif");
        gif[6] = (byte) 0x50; gif[7] = (byte) 0xc3; gif[8] = (byte) 0x50; gif[9] = (byte) 0xc3; // screen 50000 x 50000
        byte[] jpeg = TestImages.encode(new BufferedImage(8, 8, BufferedImage.TYPE_3BYTE_BGR), "jpg");
        for (int i = 2; i < jpeg.length - 8; i++) { // SOF0: FF C0 len(2) precision(1) height(2) width(2)
            if ((jpeg[i] & 0xff) == 0xff && (jpeg[i + 1] & 0xff) == 0xc0) {
                java.nio.ByteBuffer.wrap(jpeg, i + 5, 4).putShort((short) 60_000).putShort((short) 60_000);
                break;
            }
        }
        for (byte[] bomb : java.util.List.of(png, gif, jpeg)) {
            ImageException e = assertThrows(ImageException.class, () -> ImageDecoder.decode(bomb));
            assertEquals(ImageException.Reason.TOO_MANY_PIXELS, e.reason());
        }
        // WebP: 4 x 4 limit against a 61 x 47 file.
        byte[] webp = java.nio.file.Files.readAllBytes(java.nio.file.Path.of(
                getClass().getResource("/pillow/lossy.webp").toURI()));
        assertEquals(ImageException.Reason.TOO_MANY_PIXELS,
                assertThrows(ImageException.class, () -> new ImageDecoder(16).read(webp)).reason());
        assertEquals(61, ImageDecoder.decode(webp).width()); // and the next decode works
    }

    @Test
    void truncatedFilesOfEveryFormatAreUndecodable() throws Exception {
        for (String name : java.util.List.of("q90_420.jpg", "lossy.webp", "lossless.webp", "cmyk.jpg", "p.gif")) {
            byte[] full = java.nio.file.Files.readAllBytes(java.nio.file.Path.of(
                    getClass().getResource("/pillow/" + name).toURI()));
            byte[] cut = Arrays.copyOf(full, full.length / 3);
            ImageException e = assertThrows(ImageException.class, () -> ImageDecoder.decode(cut), name);
            assertEquals(ImageException.Reason.UNDECODABLE, e.reason(), name);
            assertTrue(!e.getMessage().contains("Exception"), "message stays user-safe: " + e.getMessage());
            assertEquals(61, ImageDecoder.decode(full).width(), name); // the next decode works
        }
    }
}
