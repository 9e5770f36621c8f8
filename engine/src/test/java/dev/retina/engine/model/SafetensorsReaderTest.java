package dev.retina.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class SafetensorsReaderTest {
    @TempDir
    Path dir;

    @Test
    void bf16WideningIsExactBitShift() {
        // 0x3FC0 is 1.5; 0xC049 is -3.140625; 0x7F80 is +inf; 0x0001 is the smallest bf16 subnormal.
        assertEquals(1.5f, SafetensorsReader.bf16ToFloat((short) 0x3FC0));
        assertEquals(-3.140625f, SafetensorsReader.bf16ToFloat((short) 0xC049));
        assertEquals(Float.POSITIVE_INFINITY, SafetensorsReader.bf16ToFloat((short) 0x7F80));
        assertEquals(Float.intBitsToFloat(0x00010000), SafetensorsReader.bf16ToFloat((short) 0x0001));
        for (int bits = 0; bits < 0x10000; bits += 97) {
            float f = SafetensorsReader.bf16ToFloat((short) bits);
            assertEquals(bits, Float.floatToRawIntBits(f) >>> 16);
        }
    }

    @Test
    void readsF32F16Bf16AsFloat32Arrays() throws IOException {
        float[] values = {0f, 1.5f, -2.25f, 0.1f, 65504f, -1e-3f};
        Map<String, TinyCheckpoint.Tensor> tensors = new TreeMap<>();
        for (String dt : new String[] {"F32", "F16", "BF16"}) {
            float[] rounded = new float[values.length];
            for (int i = 0; i < values.length; i++) rounded[i] = TinyCheckpoint.round(values[i], dt);
            tensors.put("t_" + dt, new TinyCheckpoint.Tensor(rounded, new long[] {2, 3}, dt));
        }
        Path file = dir.resolve("model.safetensors");
        TinyCheckpoint.writeSafetensors(file, tensors);
        try (SafetensorsReader reader = SafetensorsReader.open(dir); NDManager manager = NDManager.newBaseManager()) {
            assertEquals(3, reader.names().size());
            for (String dt : new String[] {"F32", "F16", "BF16"}) {
                float[] expected = tensors.get("t_" + dt).values();
                assertArrayEquals(expected, reader.readFloats("t_" + dt), 0f, dt);
                NDArray array = reader.load("t_" + dt, manager, DataType.FLOAT32);
                assertEquals(DataType.FLOAT32, array.getDataType());
                assertArrayEquals(new long[] {2, 3}, array.getShape().getShape());
                assertArrayEquals(expected, array.toFloatArray(), 0f, dt);
                NDArray half = reader.load("t_" + dt, manager, DataType.FLOAT16);
                assertEquals(DataType.FLOAT16, half.getDataType());
            }
        }
    }

    @Test
    void arraysOutliveTheReader() throws IOException {
        Map<String, TinyCheckpoint.Tensor> tensors = Map.of("w",
                new TinyCheckpoint.Tensor(new float[] {1, 2, 3, 4}, new long[] {4}, "F32"));
        TinyCheckpoint.writeSafetensors(dir.resolve("model.safetensors"), tensors);
        try (NDManager manager = NDManager.newBaseManager()) {
            NDArray w;
            try (SafetensorsReader reader = SafetensorsReader.open(dir)) {
                w = reader.load("w", manager, DataType.FLOAT32);
            } // unmapped here: w must be a copy
            assertArrayEquals(new float[] {1, 2, 3, 4}, w.toFloatArray(), 0f);
        }
    }

    @Test
    void rejectsInconsistentOffsets() throws IOException {
        Path file = dir.resolve("model.safetensors");
        String header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}";
        byte[] json = header.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + json.length + 16).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putLong(json.length).put(json);
        java.nio.file.Files.write(file, b.array());
        assertThrows(IOException.class, () -> SafetensorsReader.open(dir));
    }

    @Test
    void canonicalNamesUnifyBothLayouts() {
        assertEquals("language_model.layers.0.mlp.up_proj.weight",
                CheckpointWeights.canonicalName("language_model.model.layers.0.mlp.up_proj.weight"));
        assertEquals("language_model.layers.0.mlp.up_proj.weight",
                CheckpointWeights.canonicalName("model.language_model.layers.0.mlp.up_proj.weight"));
        assertEquals("lm_head.weight", CheckpointWeights.canonicalName("language_model.lm_head.weight"));
        assertEquals("lm_head.weight", CheckpointWeights.canonicalName("lm_head.weight"));
        assertEquals("vision_tower.pre_layrnorm.weight",
                CheckpointWeights.canonicalName("vision_tower.vision_model.pre_layrnorm.weight"));
        assertEquals("vision_tower.pre_layrnorm.weight",
                CheckpointWeights.canonicalName("model.vision_tower.vision_model.pre_layrnorm.weight"));
        assertEquals("vision_tower.pre_layrnorm.weight",
                CheckpointWeights.canonicalName("model.vision_tower.pre_layrnorm.weight"));
        assertEquals("multi_modal_projector.linear_1.bias",
                CheckpointWeights.canonicalName("model.multi_modal_projector.linear_1.bias"));
        assertEquals(null, CheckpointWeights.canonicalName("some_other.weight"));
    }
}
