package dev.retina.vision;

/**
 * Reads the EXIF Orientation tag (0x0112) from JPEG (APP1 "Exif"), PNG (eXIf chunk) and TIFF (IFD0) bytes and
 * applies it as Pillow's {@code ImageOps.exif_transpose} does, which transformers' {@code load_image} calls before
 * {@code convert("RGB")}. ImageIO ignores orientation, so without this a phone photo reaches the model sideways.
 * Stateless; safe from any thread. Malformed metadata means "no orientation", never an error.
 */
public final class ExifOrientation {
    private static final int ORIENTATION_TAG = 0x0112;

    private ExifOrientation() {
    }

    /** The orientation (1..8) the encoded image declares; 1 (as stored) when absent or unreadable. */
    public static int read(byte[] bytes) {
        try {
            int value = 1;
            if (bytes.length >= 4 && (bytes[0] & 0xFF) == 0xFF && (bytes[1] & 0xFF) == 0xD8) value = fromJpeg(bytes);
            else if (bytes.length >= 8 && (bytes[0] & 0xFF) == 0x89 && bytes[1] == 'P' && bytes[2] == 'N'
                    && bytes[3] == 'G') value = fromPng(bytes);
            else if (bytes.length >= 8 && ((bytes[0] == 'I' && bytes[1] == 'I') || (bytes[0] == 'M'
                    && bytes[1] == 'M'))) value = fromTiff(bytes, 0, bytes.length);
            return value >= 1 && value <= 8 ? value : 1;
        } catch (RuntimeException malformed) {
            return 1;
        }
    }

    private static int fromJpeg(byte[] b) {
        int p = 2;
        while (p + 4 <= b.length) {
            if ((b[p] & 0xFF) != 0xFF) return 1;
            int marker = b[p + 1] & 0xFF;
            if (marker == 0xFF) { // fill byte
                p++;
                continue;
            }
            if (marker == 0xD9 || marker == 0xDA) return 1; // end of image / start of scan: no metadata after
            if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) { // markers without a length
                p += 2;
                continue;
            }
            int length = u16(b, p + 2, false);
            if (length < 2) return 1;
            int data = p + 4;
            int end = Math.min(b.length, p + 2 + length);
            if (marker == 0xE1 && end - data >= 14 && b[data] == 'E' && b[data + 1] == 'x' && b[data + 2] == 'i'
                    && b[data + 3] == 'f' && b[data + 4] == 0 && b[data + 5] == 0) {
                return fromTiff(b, data + 6, end);
            }
            p += 2 + length;
        }
        return 1;
    }

    private static int fromPng(byte[] b) {
        int p = 8;
        while (p + 8 <= b.length) {
            long length = u32(b, p, false);
            if (length < 0 || p + 12 + length > b.length) return 1;
            int len = (int) length;
            if (b[p + 4] == 'e' && b[p + 5] == 'X' && b[p + 6] == 'I' && b[p + 7] == 'f') {
                int data = p + 8;
                // Some writers keep the JPEG "Exif\0\0" prefix inside eXIf.
                if (len >= 6 && b[data] == 'E' && b[data + 1] == 'x' && b[data + 2] == 'i' && b[data + 3] == 'f')
                    return fromTiff(b, data + 6, data + len);
                return fromTiff(b, data, data + len);
            }
            if (b[p + 4] == 'I' && b[p + 5] == 'E' && b[p + 6] == 'N' && b[p + 7] == 'D') return 1;
            p += 12 + len;
        }
        return 1;
    }

    /** Orientation from a TIFF structure at {@code [start, end)}: header, IFD0, tag 0x0112 of type SHORT. */
    private static int fromTiff(byte[] b, int start, int end) {
        if (end - start < 8) return 1;
        boolean little;
        if (b[start] == 'I' && b[start + 1] == 'I') little = true;
        else if (b[start] == 'M' && b[start + 1] == 'M') little = false;
        else return 1;
        if (u16(b, start + 2, little) != 42) return 1;
        long ifd = u32(b, start + 4, little);
        if (ifd < 8 || start + ifd + 2 > end) return 1;
        int p = start + (int) ifd;
        int numEntries = u16(b, p, little);
        p += 2;
        for (int i = 0; i < numEntries && p + 12 <= end; i++, p += 12) {
            if (u16(b, p, little) == ORIENTATION_TAG) {
                int type = u16(b, p + 2, little);
                if (type == 3) return u16(b, p + 8, little); // SHORT, held in the value field's first 2 bytes
                if (type == 4) return (int) u32(b, p + 8, little); // LONG, tolerated
                return 1;
            }
        }
        return 1;
    }

    private static int u16(byte[] b, int p, boolean little) {
        return little ? (b[p] & 0xFF) | (b[p + 1] & 0xFF) << 8 : (b[p] & 0xFF) << 8 | (b[p + 1] & 0xFF);
    }

    private static long u32(byte[] b, int p, boolean little) {
        long v = little
                ? (b[p] & 0xFFL) | (b[p + 1] & 0xFFL) << 8 | (b[p + 2] & 0xFFL) << 16 | (b[p + 3] & 0xFFL) << 24
                : (b[p] & 0xFFL) << 24 | (b[p + 1] & 0xFFL) << 16 | (b[p + 2] & 0xFFL) << 8 | (b[p + 3] & 0xFFL);
        return v;
    }

    /**
     * Applies an EXIF orientation the way Pillow's {@code exif_transpose} does: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180,
     * 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270 (90 degrees clockwise), 7 TRANSVERSE, 8 ROTATE_90 (counter-clockwise).
     */
    public static RgbImage apply(RgbImage in, int orientation) {
        if (orientation < 2 || orientation > 8) return in;
        int w = in.width();
        int h = in.height();
        boolean swap = orientation >= 5;
        int outW = swap ? h : w;
        int outH = swap ? w : h;
        byte[] src = in.rgb();
        byte[] dst = new byte[src.length];
        int o = 0;
        for (int y = 0; y < outH; y++) {
            for (int x = 0; x < outW; x++, o += 3) {
                int sx, sy;
                switch (orientation) {
                    case 2 -> { sx = w - 1 - x; sy = y; }
                    case 3 -> { sx = w - 1 - x; sy = h - 1 - y; }
                    case 4 -> { sx = x; sy = h - 1 - y; }
                    case 5 -> { sx = y; sy = x; }
                    case 6 -> { sx = y; sy = h - 1 - x; }
                    case 7 -> { sx = w - 1 - y; sy = h - 1 - x; }
                    default -> { sx = w - 1 - y; sy = x; } // 8
                }
                int s = (sy * w + sx) * 3;
                dst[o] = src[s];
                dst[o + 1] = src[s + 1];
                dst[o + 2] = src[s + 2];
            }
        }
        return new RgbImage(outW, outH, dst);
    }
}
