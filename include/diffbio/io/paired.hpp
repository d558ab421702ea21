#pragma once
// PairedFastqReader: the two files of a paired-end run (R1 and R2) read in lockstep, checking
// that the mates belong together.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/core/read_batch.hpp>
#include <diffbio/io/fastq.hpp>
#include <diffbio/io/fastq_record.hpp>

namespace diffbio::io {

/// A read name without its mate suffix: a trailing "/1" or "/2" is dropped. O(1).
inline std::string_view strip_mate_suffix(std::string_view name) noexcept {
    if (name.size() >= 2 && name[name.size() - 2] == '/' && (name.back() == '1' || name.back() == '2')) {
        name.remove_suffix(2);
    }
    return name;
}

class PairedFastqReader {
public:
    /// Opens both files with the same options. Each file detects its own Phred encoding (see
    /// FastqReader).
    /// Errors: as FastqReader's constructor, for either file.
    PairedFastqReader(std::string path1, std::string path2, FastqOptions options = {})
        : r1_(std::move(path1), options), r2_(std::move(path2), options) {}

    /// Reads the next pair. Returns false when both files end together.
    /// Complexity: O(bytes of the two records).
    /// Errors: diffbio::ParseError from either file's parser; a ParseError naming both files
    /// when the names differ after strip_mate_suffix() (reported at the header line of the R1
    /// record, with the R2 file and line in the message), or when one file ends before the
    /// other (reported at the last line of the file that ended).
    bool next(FastqRecord& mate1, FastqRecord& mate2) {
        const bool has1 = r1_.next(mate1);
        const bool has2 = r2_.next(mate2);
        if (has1 != has2) {
            const FastqReader& ended = has1 ? r2_ : r1_;
            const FastqReader& other = has1 ? r1_ : r2_;
            const FastqRecord& extra = has1 ? mate1 : mate2;
            throw ParseError(ended.path(), static_cast<long>(ended.line()),
                             "paired files out of step: this file ends after " + std::to_string(ended.records()) +
                                 " records, but '" + other.path() + "' has more (record '" + extra.name + "' at line " +
                                 std::to_string(other.record_line()) + ")");
        }
        if (!has1) return false;
        if (strip_mate_suffix(mate1.name) != strip_mate_suffix(mate2.name)) {
            throw ParseError(r1_.path(), static_cast<long>(r1_.record_line()),
                             "mate names differ: '" + mate1.name + "' here, but '" + mate2.name + "' at " + r2_.path() +
                                 ":" + std::to_string(r2_.record_line()) + " (pair " + std::to_string(r1_.records()) +
                                 "; names are compared without a trailing /1 or /2)");
        }
        return true;
    }

    /// Appends up to `max_pairs` pairs, mate 1 to `batch1` and mate 2 to `batch2` (decoded as
    /// FastqReader::read_batch does); returns the number of pairs appended (0 at the end).
    /// Complexity: O(bytes read) plus ReadBatch re-padding. Errors: as next().
    std::size_t read_batch(ReadBatch& batch1, ReadBatch& batch2, std::size_t max_pairs) {
        std::size_t n = 0;
        while (n < max_pairs && next(m1_, m2_)) {
            r1_.decode_quality(m1_, q1_);
            r2_.decode_quality(m2_, q2_);
            batch1.add(m1_.name, m1_.sequence, q1_, m1_.comment);
            batch2.add(m2_.name, m2_.sequence, q2_, m2_.comment);
            ++n;
        }
        return n;
    }

    const FastqReader& first() const noexcept { return r1_; }
    const FastqReader& second() const noexcept { return r2_; }
    /// Pairs returned so far.
    std::size_t pairs() const noexcept { return r1_.records(); }

private:
    FastqReader r1_, r2_;
    FastqRecord m1_, m2_;
    std::vector<float> q1_, q2_;
};

/// Reads two paired files completely: {mate-1 batch, mate-2 batch}, read i of one the mate of
/// read i of the other. Complexity and errors: as PairedFastqReader and read_fastq().
inline std::pair<ReadBatch, ReadBatch> read_paired_fastq(const std::string& path1, const std::string& path2,
                                                         FastqOptions options = {}) {
    PairedFastqReader reader(path1, path2, options);
    std::pair<ReadBatch, ReadBatch> out;
    while (reader.read_batch(out.first, out.second, 4096) > 0) {
    }
    return out;
}

} // namespace diffbio::io
