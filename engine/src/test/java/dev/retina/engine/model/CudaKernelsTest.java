package dev.retina.engine.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;

/** The launchers' host-side arithmetic (the kernels themselves run only on a GPU: CudaKernelsCheck). */
class CudaKernelsTest {
    @Test
    void warpThreadsRoundUpToWholeWarpsWithinBounds() {
        assertEquals(512, CudaKernels.warpThreads(4096 / 8, 1024)); // rms_norm_vec at hidden 4096
        assertEquals(1024, CudaKernels.warpThreads(4096 / 4, 1024)); // rms_norm at hidden 4096
        assertEquals(1024, CudaKernels.warpThreads(8192 / 4, 1024)); // capped
        assertEquals(32, CudaKernels.warpThreads(5, 1024));           // at least one warp
        assertEquals(32, CudaKernels.warpThreads(0, 256));
        assertEquals(64, CudaKernels.warpThreads(33, 256));
        assertEquals(128, CudaKernels.warpThreads(128, 256));          // paged_attention_reduce at head_dim 128
        assertEquals(256, CudaKernels.warpThreads(512, 256));          // embed_rows at hidden 4096
    }

    @Test
    void gemvShapesAndBlocks() {
        assertTrue(CudaKernels.gemvFits(1, 4096));
        assertTrue(CudaKernels.gemvFits(2, 11008));
        assertTrue(CudaKernels.gemvFits(4, 8));
        assertFalse(CudaKernels.gemvFits(3, 4096)); // no gemv_m3: a 3-row eager step takes cuBLAS
        assertFalse(CudaKernels.gemvFits(5, 4096));
        assertFalse(CudaKernels.gemvFits(1, 4100)); // 16-byte chunks
        // One row, the tuned set: o and down (narrow) 2 loads per thread, qkv and lm_head 4, gate | up 4 (glu)
        assertEquals("gemv_m1_plain_l2", CudaKernels.gemvEntry(1, false, 4096, 4));
        assertEquals("gemv_m1_plain_l4", CudaKernels.gemvEntry(1, false, 12288, 4));
        assertEquals("gemv_m1_plain_l4", CudaKernels.gemvEntry(1, false, 32064, 4));
        assertEquals("gemv_m1_glu_l4", CudaKernels.gemvEntry(1, true, 22016, 4));
        // 8 loads (2 and 4 rows, or -Dretina.gemvLoads=8): 8 W rows per block for narrow outputs
        assertEquals("gemv_m1_plain_r8", CudaKernels.gemvEntry(1, false, 4096, 8));
        assertEquals("gemv_m2_plain", CudaKernels.gemvEntry(2, false, 12288, 4));
        assertEquals("gemv_m4_glu", CudaKernels.gemvEntry(4, true, 22016, 4));
        assertEquals(8, CudaKernels.gemvBlockRows("gemv_m2_plain_r8"));
        assertEquals(4, CudaKernels.gemvBlockRows("gemv_m1_plain_l2"));
        assertEquals(4, CudaKernels.gemvBlockRows("gemv_m1_glu_l4")); // gate | up: 2 gate + 2 up rows
    }

    /**
     * A kernel launched programmatically may start while the kernel before it still runs, so it must wait
     * (griddepcontrol.wait) before it stores anything, and let the next one launch. Every entry of the shipped PTX
     * that CudaKernels may launch that way does both, and writes no global memory before the wait.
     */
    @Test
    void programmaticKernelsWaitBeforeTheyWrite() throws IOException {
        Map<String, String[]> entries = ptxEntries();
        List<String> checked = new ArrayList<>();
        for (Map.Entry<String, String[]> e : entries.entrySet()) {
            String name = e.getKey();
            if (CudaKernels.PROGRAMMATIC_KERNELS.stream().noneMatch(name::startsWith)) continue;
            String body = e.getValue()[1];
            int wait = body.indexOf("griddepcontrol.wait");
            assertTrue(wait >= 0, name + " has no griddepcontrol.wait");
            assertTrue(body.contains("griddepcontrol.launch_dependents"), name + " never lets the next kernel launch");
            for (String write : new String[] {"st.global", "red.global", "atom.global", "st.shared"}) {
                int at = body.indexOf(write);
                assertTrue(at < 0 || at > wait, name + ": " + write + " before griddepcontrol.wait");
            }
            checked.add(name);
        }
        // the decode step's kernels are all there
        for (String name : List.of("gemv_m1_plain", "gemv_m1_plain_r8", "gemv_m1_glu", "gemv_m2_glu", "gemv_m4_plain",
                "rope_kv_write", "rope_kv_write_vec", "paged_attention_decode_g_d128", "paged_attention_split_g_d128",
                "paged_attention_reduce", "silu_mul_vec", "rms_norm_vec"))
            assertTrue(checked.contains(name), name + " not in the PTX or not checked");
    }

    /** The GEMV entries take (y, x, w, n, k, accumulate): what CudaKernels.gemv packs. */
    @Test
    void gemvEntriesTakeWhatTheLauncherPacks() throws IOException {
        Map<String, String[]> entries = ptxEntries();
        int gemvs = 0;
        for (Map.Entry<String, String[]> e : entries.entrySet()) {
            if (!e.getKey().startsWith("gemv_")) continue;
            List<String> types = new ArrayList<>();
            Matcher m = Pattern.compile("\\.param\\s+\\.(\\w+)").matcher(e.getValue()[0]);
            while (m.find()) types.add(m.group(1));
            assertEquals(List.of("u64", "u64", "u64", "u32", "u32", "u32"), types, e.getKey());
            gemvs++;
        }
        assertEquals(3 * 3 + 3, gemvs); // plain, plain_r8, glu at 1, 2 and 4 rows; plain_l4, glu_l4, plain_l2 at 1
    }

    /**
     * The one-row GEMVs (the decode graphs' batch-1 kernels) are held to 4 resident blocks per SM, so the glu variant
     * keeps the plain kernel's loads in flight (left alone it took 80 registers: 3 blocks per SM), and the _l4 ones
     * to 6 or 8. Entry bodies start with the performance directives.
     */
    @Test
    void oneRowGemvsKeepFourBlocksPerSm() throws IOException {
        Map<String, String[]> entries = ptxEntries();
        for (String name : List.of("gemv_m1_plain", "gemv_m1_plain_r8", "gemv_m1_glu")) {
            String head = entries.get(name)[1].substring(0, entries.get(name)[1].indexOf('{'));
            assertTrue(head.contains(".maxntid 256") && head.contains(".minnctapersm 4"), name + ": " + head);
        }
        for (String name : List.of("gemv_m1_plain_l4", "gemv_m1_glu_l4", "gemv_m1_plain_l2")) {
            String head = entries.get(name)[1].substring(0, entries.get(name)[1].indexOf('{'));
            String blocks = name.endsWith("_l2") ? "8" : "6"; // 2 loads in flight: 8 blocks per SM; 4 loads: 6
            assertTrue(head.contains(".maxntid 256") && head.contains(".minnctapersm " + blocks), name + ": " + head);
        }
    }

    /** name -> {parameter list, body} of every .entry in the shipped PTX. */
    private static Map<String, String[]> ptxEntries() throws IOException {
        String ptx;
        try (InputStream in = CudaKernelsTest.class.getResourceAsStream(
                "/dev/retina/engine/model/kernels/paged_attention.ptx")) {
            assertTrue(in != null, "PTX resource missing");
            ptx = new String(in.readAllBytes(), StandardCharsets.US_ASCII);
        }
        Map<String, String[]> entries = new LinkedHashMap<>();
        Matcher m = Pattern.compile("\\.entry\\s+(\\w+)\\(").matcher(ptx);
        List<int[]> starts = new ArrayList<>();
        List<String> names = new ArrayList<>();
        while (m.find()) {
            starts.add(new int[] {m.start(), m.end()});
            names.add(m.group(1));
        }
        for (int i = 0; i < starts.size(); i++) {
            int end = i + 1 < starts.size() ? starts.get(i + 1)[0] : ptx.length();
            String chunk = ptx.substring(starts.get(i)[1], end);
            int close = chunk.indexOf(')');
            entries.put(names.get(i), new String[] {chunk.substring(0, close), chunk.substring(close)});
        }
        return entries;
    }
}
