#pragma once
// Small in-memory read batches for operator tests.

#include <string>
#include <vector>

#include <diffbio/core/read_batch.hpp>

namespace diffbio::test {

/// Reads named r0, r1, ... with the given bases and a constant quality.
inline ReadBatch batch_of(const std::vector<std::string>& reads, float quality = 30.0f) {
    ReadBatch b;
    for (std::size_t i = 0; i < reads.size(); ++i) {
        const std::vector<float> q(reads[i].size(), quality);
        b.add(std::string("r").append(std::to_string(i)), reads[i], q); // not "r" + …: GCC 12 warns falsely there
    }
    return b;
}

} // namespace diffbio::test
