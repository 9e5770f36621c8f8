package dev.retina.vision;

import java.awt.image.BufferedImage;
import java.awt.image.IndexColorModel;
import java.awt.image.WritableRaster;
import java.io.IOException;
import javax.imageio.ImageReader;
import javax.imageio.metadata.IIOMetadata;
import org.w3c.dom.Node;

/**
 * Where a GIF's first frame sits, so it is decoded as Pillow 9.4 does: an image of the logical screen size (grown to
 * hold the frame if the frame sticks out), filled with the frame's transparent index if it has one and index 0
 * otherwise, the frame's indices pasted at its offset, and the whole mapped through the frame's palette (local, else
 * global). The JDK reader alone gives only the frame. Immutable.
 *
 * @param transparentIndex -1 when the frame has no transparent colour
 */
record GifCanvas(int width, int height, int left, int top, int transparentIndex) {
    private static final String STREAM_FORMAT = "javax_imageio_gif_stream_1.0";
    private static final String IMAGE_FORMAT = "javax_imageio_gif_image_1.0";

    /** Reads the logical screen and the first frame's descriptor; {@code frameWidth/Height} from the reader. */
    static GifCanvas of(ImageReader reader, int frameWidth, int frameHeight) throws IOException {
        int screenWidth = 0, screenHeight = 0, left = 0, top = 0, transparent = -1;
        IIOMetadata stream = reader.getStreamMetadata();
        if (stream != null) {
            Node lsd = child(stream.getAsTree(STREAM_FORMAT), "LogicalScreenDescriptor");
            if (lsd != null) {
                screenWidth = intAttr(lsd, "logicalScreenWidth", 0);
                screenHeight = intAttr(lsd, "logicalScreenHeight", 0);
            }
        }
        IIOMetadata image = reader.getImageMetadata(0);
        if (image != null) {
            Node root = image.getAsTree(IMAGE_FORMAT);
            Node desc = child(root, "ImageDescriptor");
            if (desc != null) {
                left = intAttr(desc, "imageLeftPosition", 0);
                top = intAttr(desc, "imageTopPosition", 0);
            }
            Node gce = child(root, "GraphicControlExtension");
            if (gce != null && "TRUE".equalsIgnoreCase(attr(gce, "transparentColorFlag")))
                transparent = intAttr(gce, "transparentColorIndex", -1);
        }
        return new GifCanvas(Math.max(screenWidth, left + frameWidth), Math.max(screenHeight, top + frameHeight),
                left, top, transparent);
    }

    /** The frame on the canvas, as RGB; a frame that fills the canvas goes straight through. */
    RgbImage toRgb(BufferedImage frame) throws ImageException {
        if (left == 0 && top == 0 && frame.getWidth() == width && frame.getHeight() == height)
            return ImageDecoder.toRgb(frame);
        if (!(frame.getColorModel() instanceof IndexColorModel icm))
            return ImageDecoder.toRgb(frame); // not expected from the GIF reader
        // A palette image of the canvas size sharing the frame's palette: reuse the decoder's palette lookup.
        WritableRaster canvas = icm.createCompatibleWritableRaster(width, height);
        int fill = transparentIndex >= 0 ? transparentIndex : 0;
        int[] row = new int[width];
        java.util.Arrays.fill(row, Math.min(fill, (1 << icm.getPixelSize()) - 1));
        for (int y = 0; y < height; y++) canvas.setSamples(0, y, width, 1, 0, row);
        canvas.setRect(left, top, frame.getRaster());
        return ImageDecoder.toRgb(new BufferedImage(icm, canvas, false, null));
    }

    private static Node child(Node parent, String name) {
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling())
            if (name.equals(n.getNodeName())) return n;
        return null;
    }

    private static String attr(Node node, String name) {
        Node a = node.getAttributes() == null ? null : node.getAttributes().getNamedItem(name);
        return a == null ? null : a.getNodeValue();
    }

    private static int intAttr(Node node, String name, int fallback) {
        try {
            String v = attr(node, name);
            return v == null ? fallback : Integer.parseInt(v);
        } catch (NumberFormatException e) {
            return fallback;
        }
    }
}
