// Fuzz target: read_fastq on plain FASTQ/FASTA bytes, encoding auto-detected and phred+33.
#include <diffbio/io/fastq.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string path = diffbio::fuzz::scratch_file(data, size, ".fq");
    for (const bool detect : {true, false}) {
        try {
            diffbio::io::FastqOptions o;
            if (!detect) o.encoding = diffbio::io::PhredEncoding::Phred33;
            const diffbio::ReadBatch b = diffbio::io::read_fastq(path, o);
            if (b.num_reads == 0) std::abort(); // an empty file must be rejected, not returned
        } catch (const diffbio::Error&) {
        }
    }
    return 0;
}
