#!/usr/bin/env bash
# Regenerates the PTX of Retina's own CUDA kernels (loaded at run time by CudaKernels through the CUDA driver API).
# compute_90 PTX: the driver JIT-compiles it for the GPU it finds (Hopper and later). Needs nvcc (CUDA 13.0 used).
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/engine/src/main/resources/dev/retina/engine/model/kernels"
nvcc -ptx -arch=compute_90 -O3 -std=c++17 -o "${PTX_OUT:-$dir}/paged_attention.ptx" "$dir/paged_attention.cu"
echo "wrote ${PTX_OUT:-$dir}/paged_attention.ptx"
