package dev.retina.vision;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/** Reads numpy's {@code .npz} (a zip of {@code .npy}) holding little-endian float32 arrays, for test goldens. */
final class Npz {
    record Array(int[] shape, float[] data) {
    }

    private static final Pattern SHAPE = Pattern.compile("'shape':\\s*\\(([^)]*)\\)");

    private Npz() {
    }

    static Map<String, Array> read(Path file) throws IOException {
        Map<String, Array> out = new LinkedHashMap<>();
        try (InputStream in = Files.newInputStream(file); ZipInputStream zip = new ZipInputStream(in)) {
            for (ZipEntry e; (e = zip.getNextEntry()) != null; ) {
                String name = e.getName().endsWith(".npy") ? e.getName().substring(0, e.getName().length() - 4)
                        : e.getName();
                out.put(name, npy(zip.readAllBytes()));
            }
        }
        return out;
    }

    /** One .npy: magic, version, header length, a Python dict header, then the raw data. */
    static Array npy(byte[] bytes) {
        if (bytes.length < 10 || (bytes[0] & 0xFF) != 0x93 || bytes[1] != 'N' || bytes[2] != 'U')
            throw new IllegalArgumentException("not a .npy file");
        int major = bytes[6];
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int headerLength = major == 1 ? b.getShort(8) & 0xFFFF : b.getInt(8);
        int headerStart = major == 1 ? 10 : 12;
        String header = new String(bytes, headerStart, headerLength, StandardCharsets.ISO_8859_1);
        boolean uint8 = header.contains("'descr': '|u1'");
        if (!uint8 && !header.contains("'descr': '<f4'")) throw new IllegalArgumentException("expected <f4 or |u1, got " + header);
        if (header.contains("'fortran_order': True")) throw new IllegalArgumentException("fortran order: " + header);
        Matcher m = SHAPE.matcher(header);
        if (!m.find()) throw new IllegalArgumentException("no shape in " + header);
        String[] dims = m.group(1).split(",");
        int count = 0;
        int[] shape = new int[dims.length];
        int total = 1;
        for (String d : dims) {
            if (d.isBlank()) continue;
            shape[count++] = Integer.parseInt(d.strip());
            total *= shape[count - 1];
        }
        shape = java.util.Arrays.copyOf(shape, count);
        float[] data = new float[total];
        b.position(headerStart + headerLength);
        if (uint8) {
            for (int i = 0; i < total; i++) data[i] = bytes[headerStart + headerLength + i] & 0xFF;
        } else {
            b.asFloatBuffer().get(data);
        }
        return new Array(shape, data);
    }
}
