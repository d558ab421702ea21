// Fuzz target: ReferenceFasta on an unindexed FASTA (loaded into memory), then every contig
// fetched whole and as codes.
#include <diffbio/io/reference.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string path = diffbio::fuzz::scratch_file(data, size, ".fa");
    try {
        diffbio::io::ReferenceFasta ref(path);
        for (const auto& c : ref.contigs()) {
            const std::string s = ref.fetch(c.name, 0, c.length);
            if (static_cast<std::int64_t>(s.size()) != c.length) std::abort();
            (void)ref.fetch_codes(c.name, c.length / 2, c.length);
        }
    } catch (const diffbio::Error&) {
    }
    return 0;
}
