// Fuzz target: SAM text through htslib and AlignmentReader into an AlignedBatch, then the hard
// and the quality-weighted pileup over every contig of the header (clipped to 10 kb).
#include <algorithm>

#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/io/alignment.hpp>
#include <diffbio/ops/variant/pileup.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string path = diffbio::fuzz::scratch_file(data, size, ".sam");
    try {
        diffbio::io::AlignmentReader in(path);
        diffbio::AlignedBatch batch;
        in.read_all(batch);
        for (std::int32_t c = 0; c < static_cast<std::int32_t>(batch.contigs.size()); ++c) {
            const std::int64_t len = std::min<std::int64_t>(batch.contigs[static_cast<std::size_t>(c)].length, 10000);
            for (const bool quality : {false, true}) {
                diffbio::ops::PileupConfig cfg;
                cfg.use_quality_weights = quality;
                diffbio::ad::Binder<double> bind;
                const auto r = diffbio::ops::DifferentiablePileup(cfg).apply(bind, batch, {c, 0, len});
                (void)r;
            }
        }
    } catch (const diffbio::Error&) {
    }
    return 0;
}
