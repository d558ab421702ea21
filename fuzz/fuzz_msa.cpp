// Fuzz target: the multiple-alignment parsers behind the profile HMM (aligned FASTA or
// Stockholm, detected), DNA and protein; then, for an alignment that parses, ProfileHmm::from_msa
// and the forward score of each row with its gaps removed, which must be finite.
#include <cmath>
#include <sstream>

#include <diffbio/ops/alignment/msa.hpp>
#include <diffbio/ops/alignment/profile_hmm.hpp>

#include "fuzz_common.hpp"

namespace ops = diffbio::ops;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    for (const auto a : {ops::SequenceAlphabet::dna, ops::SequenceAlphabet::protein}) {
        try {
            std::istringstream in(text);
            const ops::Msa msa = ops::parse_msa(in, a, "<fuzz>");
            if (msa.columns() > 400 || msa.size() > 64) continue; // keep an input's cost bounded
            const ops::ProfileHmm hmm = ops::ProfileHmm::from_msa(msa);
            ops::SequenceBatch batch;
            for (const std::string& row : msa.rows) {
                std::string seq;
                for (char c : row) {
                    if (c != '-' && c != '.') seq += c;
                }
                if (!seq.empty()) batch.add(a, seq);
            }
            if (batch.size() == 0) continue;
            diffbio::ad::Binder<double> bind;
            const auto r = hmm.apply(bind, batch);
            for (double s : r.score) {
                if (!std::isfinite(s)) std::abort();
            }
        } catch (const diffbio::Error&) {
        }
        try {
            std::istringstream in(text);
            const auto recs = ops::parse_fasta(in, a, "<fuzz>");
            (void)recs;
        } catch (const diffbio::Error&) {
        }
    }
    return 0;
}
