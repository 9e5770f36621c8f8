package dev.retina.vision;

import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.Iterator;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import javax.imageio.stream.MemoryCacheImageInputStream;

/**
 * Decodes encoded image bytes (PNG, JPEG including CMYK/YCCK, GIF first frame,
 * WebP lossy and lossless through libwebp, BMP, TIFF, WBMP through ImageIO) into an {@link RgbImage}
 * holding exactly what transformers' {@code load_image} gives: Pillow's {@code ImageOps.exif_transpose} then
 * {@code convert("RGB")}. Immutable (only its pixel limit);
 * thread-safe: one instance may decode on many threads at once.
 *
 * <p>Pillow's conversions are reproduced from the raster samples, never {@code BufferedImage.getRGB()} (which applies
 * a gamma curve to grayscale and colour management to ICC-tagged images; Pillow does neither):
 * L and LA replicate the gray level (alpha dropped); RGBA drops alpha without compositing; palette images (P,
 * including transparent palettes, and 1-bit) look up the palette colour; 16-bit grayscale (Pillow's I;16) clips to
 * 255 as Pillow's {@code I16_RGB} does; 16-bit colour and gray+alpha keep the high byte (Pillow's "RGB;16B" and
 * "LA;16B" unpackers). CMYK/YCCK JPEGs are read as a raw raster and converted with Pillow's formula
 * ({@link #cmykToRgb}). WebP goes through libwebp (darkxanter's webp-imageio, the only WebP reader on the class path),
 * which gives Pillow's bytes; alpha is dropped. A GIF's first frame is placed on its logical screen as Pillow does
 * ({@link GifCanvas}).
 *
 * <p>The declared width and height are read from the header first and checked against {@code maxImagePixels}, so a
 * decompression bomb is refused before any pixel buffer is allocated.
 */
public final class ImageDecoder {
    /**
     * Default pixel limit: Pillow's {@code MAX_IMAGE_PIXELS} (89,478,485; Pillow warns above it and refuses above
     * twice it). Chosen over Pillow's hard limit because a server decodes many images at once: at this size one
     * image already costs ~0.6 GB (ImageIO raster plus RGB copy).
     */
    public static final long DEFAULT_MAX_IMAGE_PIXELS = 89_478_485L;

    private static final ImageDecoder DEFAULT = new ImageDecoder(DEFAULT_MAX_IMAGE_PIXELS);

    private final long maxImagePixels;

    public ImageDecoder(long maxImagePixels) {
        if (maxImagePixels < 1) throw new IllegalArgumentException("maxImagePixels must be >= 1");
        this.maxImagePixels = maxImagePixels;
    }

    public long maxImagePixels() {
        return maxImagePixels;
    }

    /** Decodes with the default pixel limit. */
    public static RgbImage decode(byte[] bytes) throws ImageException {
        return DEFAULT.read(bytes);
    }

    /** Decodes {@code bytes}, refusing images above this decoder's pixel limit before decoding them. */
    public RgbImage read(byte[] bytes) throws ImageException {
        if (bytes == null || bytes.length == 0)
            throw new ImageException(ImageException.Reason.NOT_AN_IMAGE, "the image is empty");
        RgbImage rgb;
        // MemoryCacheImageInputStream: ImageIO must never spill request data to temporary files.
        try (ImageInputStream stream = new MemoryCacheImageInputStream(new ByteArrayInputStream(bytes))) {
            Iterator<ImageReader> readers = ImageIO.getImageReaders(stream);
            if (!readers.hasNext())
                throw new ImageException(ImageException.Reason.NOT_AN_IMAGE,
                        "the data is not an image in a supported format (PNG, JPEG, GIF, WebP, BMP, TIFF)");
            ImageReader reader = readers.next();
            try {
                String format = reader.getFormatName().toLowerCase(java.util.Locale.ROOT);
                boolean gif = format.equals("gif");
                // ignoreMetadata: ancillary chunks (text, ICC) are not needed and not inflated; orientation is
                // parsed separately by ExifOrientation. GIF keeps its (small) metadata: screen size, frame offset.
                reader.setInput(stream, true, !gif);
                // The JDK JPEG reader fills a truncated file with gray and only warns; Pillow (and so transformers'
                // load_image) refuses it ("image file is truncated"). Refuse it too.
                boolean[] truncated = {false};
                reader.addIIOReadWarningListener((source, warning) -> {
                    String w = warning == null ? "" : warning.toLowerCase(java.util.Locale.ROOT);
                    if (w.contains("premature end") || w.contains("truncated") || w.contains("missing eoi"))
                        truncated[0] = true;
                });
                long width = reader.getWidth(0);
                long height = reader.getHeight(0);
                checkPixels(width, height);
                GifCanvas canvas = gif ? GifCanvas.of(reader, (int) width, (int) height) : null;
                if (canvas != null) checkPixels(canvas.width(), canvas.height());
                if ((format.equals("jpeg") || format.equals("jpg")) && reader.getRawImageType(0) == null) {
                    // The JDK reader has no BufferedImage type for 4-component (CMYK/YCCK) JPEGs but reads their
                    // raster: libjpeg's CMYK samples (YCCK already converted to CMYK by libjpeg).
                    rgb = cmykToRgb(reader.readRaster(0, null));
                } else {
                    BufferedImage decoded = reader.read(0);
                    rgb = canvas != null ? canvas.toRgb(decoded) : toRgb(decoded);
                }
                if (truncated[0])
                    throw new ImageException(ImageException.Reason.UNDECODABLE, "the image file is truncated");
            } finally {
                reader.dispose();
            }
        } catch (ImageException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            // ImageIO reports corrupt data as IIOException, IndexOutOfBounds, IllegalArgument, NegativeArraySize...
            throw new ImageException(ImageException.Reason.UNDECODABLE, "the image could not be decoded", e);
        }
        return ExifOrientation.apply(rgb, ExifOrientation.read(bytes));
    }

    private void checkPixels(long width, long height) throws ImageException {
        if (width < 1 || height < 1)
            throw new ImageException(ImageException.Reason.UNDECODABLE, "the image has no pixels");
        if (width * height > maxImagePixels || width * height * 4 > Integer.MAX_VALUE)
            throw new ImageException(ImageException.Reason.TOO_MANY_PIXELS, "the image is " + width + "x"
                    + height + " pixels, more than the limit of " + maxImagePixels + " pixels");
    }

    /**
     * Pillow's CMYK JPEG path: its JPEG plugin always unpacks 4-component JPEGs as "CMYK;I" (inverted, "assume adobe
     * conventions"), so C = 255 - sample; then {@code convert("RGB")} (Convert.c {@code cmyk2rgb}, no ICC):
     * {@code nk = 255 - K; R = nk - MULDIV255(C, nk)} with {@code MULDIV255(a, b) = ((a*b+128) >> 8 + a*b+128) >> 8}.
     */
    static RgbImage cmykToRgb(Raster raster) throws ImageException {
        if (raster.getNumBands() != 4)
            throw new ImageException(ImageException.Reason.UNDECODABLE, "the JPEG's colour space is not supported");
        int width = raster.getWidth(), height = raster.getHeight();
        byte[] out = new byte[3 * width * height];
        int[] row = new int[4 * width];
        for (int y = 0, o = 0; y < height; y++) {
            raster.getPixels(raster.getMinX(), raster.getMinY() + y, width, 1, row);
            for (int x = 0, i = 0; x < width; x++, i += 4) {
                int nk = row[i + 3]; // 255 - K, with K = 255 - sample
                for (int c = 0; c < 3; c++, o++) {
                    int tmp = (255 - row[i + c]) * nk + 128;
                    out[o] = (byte) Math.clamp(nk - (((tmp >> 8) + tmp) >> 8), 0, 255);
                }
            }
        }
        return new RgbImage(width, height, out);
    }

    /** Pillow's {@code convert("RGB")} from the decoded raster (see the class comment for each mode). */
    static RgbImage toRgb(BufferedImage image) throws ImageException {
        int width = image.getWidth();
        int height = image.getHeight();
        ColorModel cm = image.getColorModel();
        Raster raster = image.getRaster();
        byte[] out = new byte[3 * width * height];
        int numBands = raster.getNumBands();
        int[] row = new int[width * numBands];
        if (cm instanceof IndexColorModel icm) {
            int mapSize = icm.getMapSize();
            byte[] reds = new byte[mapSize], greens = new byte[mapSize], blues = new byte[mapSize];
            icm.getReds(reds);
            icm.getGreens(greens);
            icm.getBlues(blues);
            for (int y = 0, o = 0; y < height; y++) {
                raster.getSamples(0, y, width, 1, 0, row);
                for (int x = 0; x < width; x++, o += 3) {
                    int index = Math.min(row[x], mapSize - 1); // out-of-range index: Pillow reads the padded palette
                    out[o] = reds[index];
                    out[o + 1] = greens[index];
                    out[o + 2] = blues[index];
                }
            }
            return new RgbImage(width, height, out);
        }
        if (cm == null) throw new ImageException(ImageException.Reason.UNDECODABLE, "the image has no colour model");
        int colorType = cm.getColorSpace().getType();
        int numColor = cm.getNumColorComponents();
        if (colorType == ColorSpace.TYPE_GRAY && numColor == 1) {
            int bits = cm.getComponentSize(0);
            boolean hasAlpha = cm.hasAlpha();
            int[] lut = grayLut(bits, hasAlpha);
            for (int y = 0, o = 0; y < height; y++) {
                raster.getPixels(0, y, width, 1, row);
                for (int x = 0, i = 0; x < width; x++, o += 3, i += numBands) {
                    byte v = (byte) lut[row[i]];
                    out[o] = v;
                    out[o + 1] = v;
                    out[o + 2] = v;
                }
            }
            return new RgbImage(width, height, out);
        }
        if (colorType == ColorSpace.TYPE_RGB && numColor == 3) {
            int[][] luts = new int[3][];
            for (int c = 0; c < 3; c++) luts[c] = colorLut(cm.getComponentSize(c));
            for (int y = 0, o = 0; y < height; y++) {
                raster.getPixels(0, y, width, 1, row);
                for (int x = 0, i = 0; x < width; x++, o += 3, i += numBands) {
                    out[o] = (byte) luts[0][row[i]];
                    out[o + 1] = (byte) luts[1][row[i + 1]];
                    out[o + 2] = (byte) luts[2][row[i + 2]];
                }
            }
            return new RgbImage(width, height, out);
        }
        throw new ImageException(ImageException.Reason.UNDECODABLE,
                "the image's colour space is not supported (only RGB, grayscale and palette images)");
    }

    /**
     * Gray level to 8 bits as Pillow stores it: 8 bits as is; 16-bit gray (Pillow I;16) clipped to 255; 16-bit gray
     * with alpha (Pillow LA from "LA;16B") the high byte; 1/2/4 bits scaled to 0..255 (Pillow's "L;2"/"L;4" unpack).
     */
    private static int[] grayLut(int bits, boolean hasAlpha) {
        int max = (1 << bits) - 1;
        int[] lut = new int[max + 1];
        for (int v = 0; v <= max; v++) {
            if (bits == 8) lut[v] = v;
            else if (bits == 16) lut[v] = hasAlpha ? v >> 8 : Math.min(v, 255);
            else if (bits > 8) lut[v] = v >> (bits - 8);
            else lut[v] = v * 255 / max;
        }
        return lut;
    }

    /** Colour component to 8 bits: high byte for 16-bit ("RGB;16B"), {@code v*255/max} for packed 5/6-bit BMPs. */
    private static int[] colorLut(int bits) {
        int max = (1 << bits) - 1;
        int[] lut = new int[max + 1];
        for (int v = 0; v <= max; v++) lut[v] = bits == 8 ? v : bits > 8 ? v >> (bits - 8) : v * 255 / max;
        return lut;
    }
}
