package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.util.JsonUtils;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads safetensors checkpoints through memory maps: one mapping per file (any size, through
 * {@link MemorySegment}), tensors read as views on their byte regions. Not thread-safe; close it when the weights
 * are loaded (arrays it created stay valid: they are copies).
 *
 * <p>Format: u64 little-endian header length, a JSON header {@code {name: {dtype, shape, data_offsets: [begin,
 * end]}}} (plus {@code __metadata__}), then the data; offsets are relative to the end of the header.
 * BF16 never reaches DJL (it kills the JVM in DJL 0.36): it is widened to float32 in Java, exactly.
 */
public final class SafetensorsReader implements AutoCloseable {
    /** One tensor's entry in a header. */
    public record TensorInfo(String name, String dtype, long[] shape, int fileIndex, long begin, long end) {
        public long numElements() {
            long n = 1;
            for (long d : shape) n *= d;
            return n;
        }
    }

    /** Tensors above this many bytes are read in row chunks: a ByteBuffer view holds at most 2 GiB. */
    private static final long MAX_CHUNK_BYTES = 1L << 29;

    private final Arena arena = Arena.ofShared();
    private final List<MemorySegment> files = new ArrayList<>();
    private final Map<String, TensorInfo> tensors = new LinkedHashMap<>();

    private SafetensorsReader() {
    }

    /** Opens {@code model.safetensors}, or the shards listed in {@code model.safetensors.index.json}. */
    public static SafetensorsReader open(Path modelDir) throws IOException {
        Path single = modelDir.resolve("model.safetensors");
        Path index = modelDir.resolve("model.safetensors.index.json");
        List<Path> paths = new ArrayList<>();
        if (Files.exists(index)) {
            JsonObject weightMap = JsonUtils.GSON.fromJson(Files.readString(index), JsonObject.class)
                    .getAsJsonObject("weight_map");
            for (Map.Entry<String, JsonElement> e : weightMap.entrySet()) {
                Path p = modelDir.resolve(e.getValue().getAsString());
                if (!paths.contains(p)) paths.add(p);
            }
        } else if (Files.exists(single)) {
            paths.add(single);
        } else {
            try (var list = Files.list(modelDir)) {
                list.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().forEach(paths::add);
            }
        }
        if (paths.isEmpty()) throw new IOException("no safetensors files in " + modelDir);
        return openFiles(paths);
    }

    public static SafetensorsReader openFiles(List<Path> paths) throws IOException {
        SafetensorsReader reader = new SafetensorsReader();
        try {
            for (Path p : paths) reader.map(p);
        } catch (IOException | RuntimeException e) {
            reader.close();
            throw e;
        }
        return reader;
    }

    private void map(Path path) throws IOException {
        MemorySegment file;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            file = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
        }
        if (file.byteSize() < 8) throw new IOException(path + ": too short for a safetensors header");
        long headerLen = file.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
        if (headerLen <= 0 || 8 + headerLen > file.byteSize())
            throw new IOException(path + ": bad header length " + headerLen);
        byte[] headerBytes = file.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
        JsonObject header = JsonUtils.GSON.fromJson(new String(headerBytes, StandardCharsets.UTF_8), JsonObject.class);
        long dataStart = 8 + headerLen;
        int fileIndex = files.size();
        files.add(file);
        for (Map.Entry<String, JsonElement> e : header.entrySet()) {
            if (e.getKey().equals("__metadata__")) continue;
            JsonObject t = e.getValue().getAsJsonObject();
            String dtype = t.get("dtype").getAsString();
            var shapeJson = t.getAsJsonArray("shape");
            long[] shape = new long[shapeJson.size()];
            for (int i = 0; i < shape.length; i++) shape[i] = shapeJson.get(i).getAsLong();
            var offsets = t.getAsJsonArray("data_offsets");
            long begin = dataStart + offsets.get(0).getAsLong();
            long end = dataStart + offsets.get(1).getAsLong();
            TensorInfo info = new TensorInfo(e.getKey(), dtype, shape, fileIndex, begin, end);
            if (end > file.byteSize() || end - begin != info.numElements() * bytesPerElement(dtype))
                throw new IOException(path + ": tensor " + e.getKey() + " has inconsistent offsets");
            tensors.put(e.getKey(), info);
        }
    }

    public Set<String> names() {
        return Collections.unmodifiableSet(tensors.keySet());
    }

    public TensorInfo info(String name) {
        TensorInfo info = tensors.get(name);
        if (info == null) throw new IllegalArgumentException("no tensor " + name);
        return info;
    }

    /** The tensor's raw little-endian bytes, a read-only view valid until {@link #close()}. At most 2 GiB. */
    public ByteBuffer bytes(String name) {
        TensorInfo info = info(name);
        return region(info, info.begin(), info.end() - info.begin());
    }

    private ByteBuffer region(TensorInfo info, long offset, long length) {
        return files.get(info.fileIndex()).asSlice(offset, length).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The tensor widened to float32 in Java (F32, F16, BF16), for tests and small tensors. */
    public float[] readFloats(String name) {
        TensorInfo info = info(name);
        ByteBuffer b = bytes(name);
        float[] out = new float[Math.toIntExact(info.numElements())];
        switch (info.dtype()) {
            case "F32" -> b.asFloatBuffer().get(out);
            case "F16" -> {
                for (int i = 0; i < out.length; i++) out[i] = Float.float16ToFloat(b.getShort(2 * i));
            }
            case "BF16" -> {
                for (int i = 0; i < out.length; i++) out[i] = bf16ToFloat(b.getShort(2 * i));
            }
            default -> throw new IllegalArgumentException(name + ": cannot read " + info.dtype() + " as floats");
        }
        return out;
    }

    /** bfloat16 bits to float32, exact: bf16 is the upper half of a float32. */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /**
     * Creates the tensor in {@code manager} (on its device) as {@code target} (FLOAT32 or FLOAT16 for floating
     * tensors; integer tensors keep their type). The result owns its memory: it does not alias the mapping.
     */
    public NDArray load(String name, NDManager manager, DataType target) {
        TensorInfo info = info(name);
        long[] shape = info.shape();
        int elemBytes = bytesPerElement(info.dtype());
        long rows = shape.length == 0 ? 1 : shape[0];
        long rowElems = rows == 0 ? 0 : info.numElements() / rows;
        long rowBytes = Math.max(1, rowElems * elemBytes);
        long rowsPerChunk = Math.max(1, MAX_CHUNK_BYTES / rowBytes);
        if (rows <= rowsPerChunk) return loadRegion(info, info.begin(), new Shape(shape), manager, target);
        NDList chunks = new NDList();
        try {
            for (long r = 0; r < rows; r += rowsPerChunk) {
                long n = Math.min(rowsPerChunk, rows - r);
                long[] chunkShape = shape.clone();
                chunkShape[0] = n;
                chunks.add(loadRegion(info, info.begin() + r * rowBytes, new Shape(chunkShape), manager, target));
            }
            return NDArrays.concat(chunks, 0);
        } finally {
            chunks.close();
        }
    }

    private NDArray loadRegion(TensorInfo info, long offset, Shape shape, NDManager manager, DataType target) {
        long numElements = shape.size();
        ByteBuffer src = region(info, offset, numElements * bytesPerElement(info.dtype()));
        DataType stored = switch (info.dtype()) {
            case "F32" -> DataType.FLOAT32;
            case "F16" -> DataType.FLOAT16;
            case "BF16" -> DataType.FLOAT32; // widened below, before DJL sees it
            case "I64" -> DataType.INT64;
            case "I32" -> DataType.INT32;
            default -> throw new IllegalArgumentException(info.name() + ": unsupported dtype " + info.dtype());
        };
        if (info.dtype().equals("BF16")) {
            ByteBuffer widened = ByteBuffer.allocateDirect(Math.toIntExact(numElements * 4)).order(ByteOrder.nativeOrder());
            for (int i = 0; i < numElements; i++) widened.putFloat(4 * i, bf16ToFloat(src.getShort(2 * i)));
            src = widened;
        } else if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new UnsupportedOperationException("big-endian hosts are not supported");
        }
        DataType want = stored.isFloating() ? target : stored;
        // On CPU DJL wraps a direct buffer without copying (and toType to the same type aliases): duplicate or convert
        // so the result never points into the mapping, which close() unmaps.
        try (NDArray view = manager.create(src, shape, stored)) {
            return want == stored ? view.duplicate() : view.toType(want, false);
        }
    }

    static int bytesPerElement(String dtype) {
        return switch (dtype) {
            case "F64", "I64", "U64" -> 8;
            case "F32", "I32", "U32" -> 4;
            case "F16", "BF16", "I16", "U16" -> 2;
            case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2" -> 1;
            default -> throw new IllegalArgumentException("unknown safetensors dtype " + dtype);
        };
    }

    @Override
    public void close() {
        files.clear();
        arena.close();
    }
}
