#pragma once
// Launch geometry helpers. nvcc only.

#include <cstddef>

#include <cuda_runtime.h>

namespace diffbio::exec::cuda {

inline constexpr unsigned block_size = 256;

/// Blocks to cover n items with `block` threads each, capped so that grid-stride loops cover the
/// rest (a grid of 2^16 blocks keeps every current GPU busy).
inline unsigned grid_size(std::size_t n, unsigned block = block_size) {
    const std::size_t blocks = (n + block - 1) / block;
    const std::size_t cap = 65536;
    return static_cast<unsigned>(blocks == 0 ? 1 : (blocks < cap ? blocks : cap));
}

} // namespace diffbio::exec::cuda
