#pragma once
// AlignedBatch: aligned reads in memory (what a SAM/BAM/CRAM file holds), the input of the pileup
// and, later, of the variant classifiers. It holds no file state: io/alignment.hpp fills it, and
// ops/variant/ consume it, so it lives in core.
//
// Layout (N reads, M = Σ query lengths bases, K = Σ CIGAR lengths operations; CSR, no padding):
//   per contig   contigs[c]          name and length, as the file's header lists them
//   per read     contig[i]           index into contigs (−1: unplaced)
//                ref_start[i]        0-based leftmost reference position of the first aligned base
//                ref_end[i]          one past the last reference position its CIGAR covers
//                                    (ref_start + reference length of the CIGAR)
//                mapq[i], flags[i]   mapping quality and SAM flags (reverse(i) = flag 0x10)
//                base_offset[i..i+1] its bases in bases/qualities, in read (query) order
//                cigar_offset[i..i+1] its CIGAR operations in cigar
//                name(i)             read name (empty when the reader was told not to keep names)
//   per base     bases[m]            base code: 0 A, 1 C, 2 G, 3 T, 4 anything else (N, IUPAC)
//                qualities[m]        Phred score; 255 = not available (SAM '*', BAM 0xff)
//   per op       cigar[k]            length << 4 | op, with BAM's operation numbers (CigarOp)
//
// Every query base is kept (soft clips and insertions included); which reference position a
// base sits on follows from the CIGAR: for_each_block() walks it once, giving runs of aligned
// bases, and reference_positions() expands it per base (−1 for soft-clipped and inserted bases).
// The run form is what the pileup's segment sums consume: a match run adds bases m..m+len−1 to
// reference positions r..r+len−1, with no per-base index to load.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <diffbio/core/error.hpp>

namespace diffbio {

/// CIGAR operations, numbered as in the BAM format.
enum class CigarOp : std::uint8_t {
    Match = 0,       ///< M: aligned, base may or may not match
    Insertion = 1,   ///< I: bases in the read, not in the reference
    Deletion = 2,    ///< D: reference positions the read skips (a deletion)
    RefSkip = 3,     ///< N: reference positions skipped (an intron); not a deletion
    SoftClip = 4,    ///< S: bases in the read, unaligned
    HardClip = 5,    ///< H: bases not in the read
    Padding = 6,     ///< P: nothing in either
    SeqMatch = 7,    ///< =: aligned, base equals the reference
    SeqMismatch = 8, ///< X: aligned, base differs from the reference
};

inline constexpr std::uint32_t cigar_pack(CigarOp op, std::uint32_t length) noexcept {
    return length << 4 | static_cast<std::uint32_t>(op);
}
inline constexpr CigarOp cigar_op(std::uint32_t c) noexcept { return static_cast<CigarOp>(c & 0xfu); }
inline constexpr std::uint32_t cigar_length(std::uint32_t c) noexcept { return c >> 4; }
/// True for operations that consume read bases (M I S = X).
inline constexpr bool consumes_query(CigarOp op) noexcept {
    return op == CigarOp::Match || op == CigarOp::Insertion || op == CigarOp::SoftClip || op == CigarOp::SeqMatch ||
           op == CigarOp::SeqMismatch;
}
/// True for operations that consume reference positions (M D N = X).
inline constexpr bool consumes_reference(CigarOp op) noexcept {
    return op == CigarOp::Match || op == CigarOp::Deletion || op == CigarOp::RefSkip || op == CigarOp::SeqMatch ||
           op == CigarOp::SeqMismatch;
}
/// The SAM letter of an operation (MIDNSHP=X).
inline constexpr char cigar_char(CigarOp op) noexcept {
    constexpr char letters[] = "MIDNSHP=X";
    const auto k = static_cast<unsigned>(op);
    return k < 9 ? letters[k] : '?';
}

/// Base code of a letter: 0 A, 1 C, 2 G, 3 T/U (any case), 4 for everything else.
inline constexpr std::uint8_t base_code(char b) noexcept {
    switch (b) {
    case 'A': case 'a': return 0;
    case 'C': case 'c': return 1;
    case 'G': case 'g': return 2;
    case 'T': case 't': case 'U': case 'u': return 3;
    default: return 4;
    }
}

namespace sam_flag {
inline constexpr std::uint16_t paired = 0x1, proper_pair = 0x2, unmapped = 0x4, mate_unmapped = 0x8, reverse = 0x10,
                               mate_reverse = 0x20, read1 = 0x40, read2 = 0x80, secondary = 0x100, qc_fail = 0x200,
                               duplicate = 0x400, supplementary = 0x800;
}

/// Quality value meaning "not available".
inline constexpr std::uint8_t missing_quality = 255;

struct ContigInfo {
    std::string name;
    std::int64_t length = 0;
};

/// One run of a read's CIGAR, as for_each_block() reports it.
struct AlignedBlock {
    CigarOp op;
    std::int64_t ref_start;   ///< reference position where the run starts (for I and S: the next
                              ///< aligned position, i.e. the position after the anchor)
    std::size_t query_start;  ///< index of its first base in the batch's bases (for D and N: the
                              ///< index of the next base)
    std::uint32_t length;
};

struct AlignedBatch {
    std::vector<ContigInfo> contigs;

    std::vector<std::int32_t> contig;
    std::vector<std::int64_t> ref_start;
    std::vector<std::int64_t> ref_end;
    std::vector<std::uint8_t> mapq;
    std::vector<std::uint16_t> flags;
    std::vector<std::size_t> base_offset{0};
    std::vector<std::size_t> cigar_offset{0};
    std::vector<std::size_t> name_offset{0};
    std::string name_data;

    std::vector<std::uint8_t> bases;
    std::vector<std::uint8_t> qualities;
    std::vector<std::uint32_t> cigar;

    std::size_t num_reads() const noexcept { return contig.size(); }
    std::size_t num_bases() const noexcept { return bases.size(); }
    std::size_t read_length(std::size_t i) const noexcept { return base_offset[i + 1] - base_offset[i]; }
    bool reverse(std::size_t i) const noexcept { return (flags[i] & sam_flag::reverse) != 0; }
    bool unmapped(std::size_t i) const noexcept { return (flags[i] & sam_flag::unmapped) != 0 || contig[i] < 0; }
    std::string_view name(std::size_t i) const noexcept {
        return std::string_view(name_data).substr(name_offset[i], name_offset[i + 1] - name_offset[i]);
    }
    std::span<const std::uint32_t> read_cigar(std::size_t i) const noexcept {
        return {cigar.data() + cigar_offset[i], cigar_offset[i + 1] - cigar_offset[i]};
    }
    std::span<const std::uint8_t> read_bases(std::size_t i) const noexcept {
        return {bases.data() + base_offset[i], read_length(i)};
    }
    std::span<const std::uint8_t> read_qualities(std::size_t i) const noexcept {
        return {qualities.data() + base_offset[i], read_length(i)};
    }

    /// Index of the contig named `name`, or −1.  O(contigs).
    std::int32_t contig_index(std::string_view contig_name) const noexcept {
        for (std::size_t c = 0; c < contigs.size(); ++c) {
            if (contigs[c].name == contig_name) return static_cast<std::int32_t>(c);
        }
        return -1;
    }

    void clear() noexcept {
        contig.clear();
        ref_start.clear();
        ref_end.clear();
        mapq.clear();
        flags.clear();
        base_offset.assign(1, 0);
        cigar_offset.assign(1, 0);
        name_offset.assign(1, 0);
        name_data.clear();
        bases.clear();
        qualities.clear();
        cigar.clear();
    }

    /// Appends a read from its SAM fields: `seq` letters (any case; anything but ACGTU becomes
    /// code 4), decoded Phred `qual` (same length as seq, or empty for "not available"), CIGAR
    /// as packed operations. contig_id −1 (or flag 0x4) marks an unplaced/unmapped read, whose
    /// CIGAR may be empty.
    /// Errors: ShapeError when qual and seq differ in length or the CIGAR's query length differs
    /// from seq's; InvalidArgument for a contig id not in contigs, a negative start, or an
    /// unknown CIGAR operation.
    void add(std::string_view read_name, std::int32_t contig_id, std::int64_t start, std::uint8_t mapping_quality,
             std::uint16_t sam_flags, std::span<const std::uint32_t> ops, std::string_view seq,
             std::span<const std::uint8_t> qual) {
        const std::string who = "AlignedBatch::add: read '" + std::string(read_name) + "'";
        if (!qual.empty() && qual.size() != seq.size()) {
            throw ShapeError(who + " has " + std::to_string(seq.size()) + " bases but " + std::to_string(qual.size()) +
                             " quality scores");
        }
        if (contig_id < -1 || (contig_id >= 0 && static_cast<std::size_t>(contig_id) >= contigs.size())) {
            throw InvalidArgument(who + ": contig id " + std::to_string(contig_id) + " is not one of the " +
                                  std::to_string(contigs.size()) + " contigs");
        }
        if (contig_id >= 0 && start < 0) {
            throw InvalidArgument(who + ": negative reference start " + std::to_string(start));
        }
        std::int64_t ref_len = 0;
        std::size_t query_len = 0;
        for (const std::uint32_t c : ops) {
            const auto op = cigar_op(c);
            if (static_cast<unsigned>(op) > 8) {
                throw InvalidArgument(who + ": unknown CIGAR operation code " + std::to_string(c & 0xfu));
            }
            if (consumes_query(op)) query_len += cigar_length(c);
            if (consumes_reference(op)) ref_len += cigar_length(c);
        }
        if (!ops.empty() && query_len != seq.size()) {
            throw ShapeError(who + ": its CIGAR covers " + std::to_string(query_len) + " read bases but it has " +
                             std::to_string(seq.size()));
        }
        contig.push_back(contig_id);
        ref_start.push_back(start);
        ref_end.push_back(start + ref_len);
        mapq.push_back(mapping_quality);
        flags.push_back(sam_flags);
        for (const char b : seq) bases.push_back(base_code(b));
        if (qual.empty()) {
            qualities.insert(qualities.end(), seq.size(), missing_quality);
        } else {
            qualities.insert(qualities.end(), qual.begin(), qual.end());
        }
        cigar.insert(cigar.end(), ops.begin(), ops.end());
        base_offset.push_back(bases.size());
        cigar_offset.push_back(cigar.size());
        name_data.append(read_name);
        name_offset.push_back(name_data.size());
    }

    /// Calls fn(const AlignedBlock&) for each CIGAR operation of read i that touches bases or
    /// reference (H and P are skipped), in order. O(CIGAR length).
    template <class F>
    void for_each_block(std::size_t i, F&& fn) const {
        std::int64_t r = ref_start[i];
        std::size_t q = base_offset[i];
        for (const std::uint32_t c : read_cigar(i)) {
            const CigarOp op = cigar_op(c);
            const std::uint32_t len = cigar_length(c);
            if (op == CigarOp::HardClip || op == CigarOp::Padding) continue;
            fn(AlignedBlock{op, r, q, len});
            if (consumes_reference(op)) r += len;
            if (consumes_query(op)) q += len;
        }
    }

    /// Reference position of every base of read i (−1 for soft-clipped and inserted bases).
    std::vector<std::int64_t> reference_positions(std::size_t i) const {
        std::vector<std::int64_t> pos(read_length(i), -1);
        for_each_block(i, [&](const AlignedBlock& b) {
            if (b.op == CigarOp::Match || b.op == CigarOp::SeqMatch || b.op == CigarOp::SeqMismatch) {
                for (std::uint32_t k = 0; k < b.length; ++k) {
                    pos[b.query_start - base_offset[i] + k] = b.ref_start + static_cast<std::int64_t>(k);
                }
            }
        });
        return pos;
    }

    /// One-hot rows [read_length(i) × 4] of read i (code 4 → the uniform row 0.25, as ReadBatch).
    std::vector<float> one_hot(std::size_t i) const {
        std::vector<float> out(read_length(i) * 4, 0.0f);
        const auto b = read_bases(i);
        for (std::size_t l = 0; l < b.size(); ++l) {
            if (b[l] < 4) {
                out[l * 4 + b[l]] = 1.0f;
            } else {
                for (int k = 0; k < 4; ++k) out[l * 4 + static_cast<std::size_t>(k)] = 0.25f;
            }
        }
        return out;
    }

    /// The CIGAR of read i as SAM text ("*" when empty).
    std::string cigar_string(std::size_t i) const {
        const auto ops = read_cigar(i);
        if (ops.empty()) return "*";
        std::string s;
        for (const std::uint32_t c : ops) {
            s += std::to_string(cigar_length(c));
            s += cigar_char(cigar_op(c));
        }
        return s;
    }
};

} // namespace diffbio
