// Fuzz target: VcfReader on VCF text (htslib parses; diffbio reads the fields it exposes).
#include <diffbio/io/vcf_reader.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string path = diffbio::fuzz::scratch_file(data, size, ".vcf");
    try {
        diffbio::io::VcfReader in(path);
        diffbio::io::VcfSite s;
        while (in.next(s)) {
        }
    } catch (const diffbio::Error&) {
    }
    return 0;
}
