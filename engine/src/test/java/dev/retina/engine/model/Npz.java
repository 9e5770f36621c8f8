package dev.retina.engine.model;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/** Test-side reader of NumPy .npz archives holding little-endian float32 arrays in C order. */
final class Npz {
    record Array(long[] shape, float[] data) {
    }

    private Npz() {
    }

    static Array read(Path npz, String key) throws IOException {
        try (ZipFile zip = new ZipFile(npz.toFile())) {
            ZipEntry entry = zip.getEntry(key + ".npy");
            if (entry == null) throw new IOException(npz + " has no array " + key);
            try (InputStream in = zip.getInputStream(entry)) {
                return parseNpy(in.readAllBytes());
            }
        }
    }

    static Array parseNpy(byte[] bytes) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if ((b.get(0) & 0xFF) != 0x93 || b.get(1) != 'N') throw new IOException("not an .npy file");
        int major = b.get(6);
        int headerLen = major == 1 ? Short.toUnsignedInt(b.getShort(8)) : b.getInt(8);
        int headerStart = major == 1 ? 10 : 12;
        String header = new String(bytes, headerStart, headerLen, StandardCharsets.ISO_8859_1);
        if (!header.contains("'descr': '<f4'")) throw new IOException("only <f4 supported: " + header);
        if (header.contains("'fortran_order': True")) throw new IOException("Fortran order not supported");
        Matcher m = Pattern.compile("'shape': \\(([^)]*)\\)").matcher(header);
        if (!m.find()) throw new IOException("no shape in " + header);
        List<Long> dims = new ArrayList<>();
        for (String d : m.group(1).split(",")) if (!d.isBlank()) dims.add(Long.parseLong(d.trim()));
        long[] shape = dims.stream().mapToLong(Long::longValue).toArray();
        long n = 1;
        for (long d : shape) n *= d;
        float[] data = new float[Math.toIntExact(n)];
        b.position(headerStart + headerLen);
        b.asFloatBuffer().get(data);
        return new Array(shape, data);
    }
}
