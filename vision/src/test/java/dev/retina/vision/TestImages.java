package dev.retina.vision;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.zip.CRC32;
import javax.imageio.ImageIO;

/** Factories for encoded test images. */
final class TestImages {
    private TestImages() {
    }

    static byte[] encode(BufferedImage image, String format) {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            if (!ImageIO.write(image, format, out)) throw new IllegalStateException("no writer for " + format);
            return out.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A TIFF structure with IFD0 holding only Orientation (0x0112, SHORT) = {@code orientation}. */
    static byte[] tiffWithOrientation(int orientation, boolean littleEndian) {
        ByteBuffer b = ByteBuffer.allocate(26).order(littleEndian ? java.nio.ByteOrder.LITTLE_ENDIAN
                : java.nio.ByteOrder.BIG_ENDIAN);
        b.put(littleEndian ? (byte) 'I' : (byte) 'M').put(littleEndian ? (byte) 'I' : (byte) 'M');
        b.putShort((short) 42).putInt(8);
        b.putShort((short) 1);                                            // one entry
        b.putShort((short) 0x0112).putShort((short) 3).putInt(1).putShort((short) orientation).putShort((short) 0);
        b.putInt(0);                                                      // no next IFD
        return b.array();
    }

    /** Inserts an APP1 "Exif" segment right after the JPEG's SOI marker. */
    static byte[] jpegWithOrientation(byte[] jpeg, int orientation) {
        byte[] tiff = tiffWithOrientation(orientation, false);
        int length = 2 + 6 + tiff.length;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(jpeg, 0, 2);
        out.write(0xFF);
        out.write(0xE1);
        out.write(length >> 8);
        out.write(length & 0xFF);
        out.writeBytes(new byte[] {'E', 'x', 'i', 'f', 0, 0});
        out.writeBytes(tiff);
        out.write(jpeg, 2, jpeg.length - 2);
        return out.toByteArray();
    }

    /** Inserts an eXIf chunk right after the PNG's IHDR chunk. */
    static byte[] pngWithOrientation(byte[] png, int orientation) {
        byte[] tiff = tiffWithOrientation(orientation, true);
        int ihdrEnd = 8 + 4 + 4 + 13 + 4;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(png, 0, ihdrEnd);
        out.writeBytes(chunk("eXIf", tiff));
        out.write(png, ihdrEnd, png.length - ihdrEnd);
        return out.toByteArray();
    }

    static byte[] chunk(String type, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(12 + data.length);
        b.putInt(data.length);
        byte[] t = type.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        b.put(t).put(data);
        CRC32 crc = new CRC32();
        crc.update(t);
        crc.update(data);
        b.putInt((int) crc.getValue());
        return b.array();
    }

    /** A w x h RGB image whose pixel (x, y) is (x*40, y*40, 7): every pixel distinct for small sizes. */
    static RgbImage gradient(int w, int h) {
        byte[] rgb = new byte[3 * w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int p = (y * w + x) * 3;
                rgb[p] = (byte) (x * 40);
                rgb[p + 1] = (byte) (y * 40);
                rgb[p + 2] = 7;
            }
        return new RgbImage(w, h, rgb);
    }
}
