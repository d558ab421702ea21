#pragma once
// ReferenceFasta: a reference genome (FASTA) for the pileup and the variant operators.
//
//   ReferenceFasta ref("ref.fa");                 // plain, gzip or BGZF
//   std::string s = ref.fetch("chr1", 100, 200);  // 0-based half-open, upper case
//   ref.check_contig("chr1", bam_contig_length);  // does a BAM's contig match?
//
// When an htslib index is next to the file (ref.fa.fai; for BGZF also ref.fa.gz.gzi) sequences
// are fetched from disk on demand (faidx); otherwise the whole file is read into memory once
// (any FASTA that LineReader reads: plain, gzip or BGZF, any line width). Nothing is written next
// to the file.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <htslib/faidx.h>

#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/io/line_reader.hpp>

namespace diffbio::io {

class ReferenceFasta {
public:
    /// Opens `path`. O(1) with an index, else O(file size).
    /// Errors: diffbio::Error when the file cannot be opened; ParseError(file, line) for a
    /// file that is not FASTA (text before the first '>', an empty name, a duplicate name, a
    /// sequence character that is not a letter, '*' or '-'), or one without any sequence.
    explicit ReferenceFasta(std::string path) : path_(std::move(path)) {
        namespace fs = std::filesystem;
        std::error_code ec;
        if (!fs::exists(path_, ec)) throw Error("cannot open reference '" + path_ + "': no such file");
        try {
            if (fs::exists(path_ + ".fai", ec)) {
                fai_ = fai_load3(path_.c_str(), nullptr, nullptr, 0);
                if (fai_ == nullptr) throw Error("cannot load the faidx index of reference '" + path_ + "'");
                const int n = faidx_nseq(fai_);
                for (int i = 0; i < n; ++i) {
                    const char* name = faidx_iseq(fai_, i);
                    contigs_.push_back(ContigInfo{name, static_cast<std::int64_t>(faidx_seq_len(fai_, name))});
                }
            } else {
                load();
            }
            if (contigs_.empty()) throw ParseError(path_, 0, "no sequences: the reference is empty");
        } catch (...) {
            if (fai_ != nullptr) fai_destroy(fai_);
            fai_ = nullptr;
            throw;
        }
    }

    ReferenceFasta(const ReferenceFasta&) = delete;
    ReferenceFasta& operator=(const ReferenceFasta&) = delete;
    ~ReferenceFasta() {
        if (fai_ != nullptr) fai_destroy(fai_);
    }

    const std::string& path() const noexcept { return path_; }
    /// True when sequences are read through a faidx index (false: held in memory).
    bool indexed() const noexcept { return fai_ != nullptr; }
    const std::vector<ContigInfo>& contigs() const noexcept { return contigs_; }

    /// Index of contig `name`, or −1.
    std::int32_t contig_index(std::string_view name) const noexcept {
        for (std::size_t c = 0; c < contigs_.size(); ++c) {
            if (contigs_[c].name == name) return static_cast<std::int32_t>(c);
        }
        return -1;
    }

    /// Length of contig `name`. Errors: InvalidArgument when it is not in the reference.
    std::int64_t length(std::string_view name) const { return contigs_[require(name)].length; }

    /// Bases [beg, end) (0-based) of contig `name`, upper case.
    /// Errors: InvalidArgument when the contig is not in the reference or the range is not
    /// inside it; ParseError when the indexed file cannot be read.
    std::string fetch(std::string_view name, std::int64_t beg, std::int64_t end) const {
        const std::size_t c = require(name);
        if (beg < 0 || end < beg || end > contigs_[c].length) {
            throw InvalidArgument("reference '" + path_ + "': range [" + std::to_string(beg) + ", " +
                                  std::to_string(end) + ") is not inside contig '" + std::string(name) + "' of length " +
                                  std::to_string(contigs_[c].length));
        }
        std::string out;
        if (beg == end) return out;
        if (fai_ != nullptr) {
            hts_pos_t got = 0;
            char* s = faidx_fetch_seq64(fai_, contigs_[c].name.c_str(), beg, end - 1, &got);
            if (s == nullptr || got != end - beg) {
                std::free(s);
                throw ParseError(path_, 0, "cannot read " + contigs_[c].name + ":" + std::to_string(beg + 1) + "-" +
                                               std::to_string(end) + " through its faidx index (stale index or truncated file?)");
            }
            out.assign(s, static_cast<std::size_t>(got));
            std::free(s);
        } else {
            out = seqs_[c].substr(static_cast<std::size_t>(beg), static_cast<std::size_t>(end - beg));
        }
        for (char& ch : out) {
            if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
        }
        return out;
    }

    /// As fetch, as base codes (0 A, 1 C, 2 G, 3 T, 4 other).
    std::vector<std::uint8_t> fetch_codes(std::string_view name, std::int64_t beg, std::int64_t end) const {
        const std::string s = fetch(name, beg, end);
        std::vector<std::uint8_t> out(s.size());
        for (std::size_t i = 0; i < s.size(); ++i) out[i] = base_code(s[i]);
        return out;
    }

    /// Checks that contig `name` of an alignment file (whose header gives it `header_length`)
    /// is in this reference with the same length.
    /// Errors: InvalidArgument naming both files' view when the contig is missing or the
    /// lengths differ.
    void check_contig(std::string_view name, std::int64_t header_length) const {
        const std::size_t c = require(name);
        if (contigs_[c].length != header_length) {
            throw InvalidArgument("reference '" + path_ + "' does not match the alignments: contig '" + std::string(name) +
                                  "' has length " + std::to_string(contigs_[c].length) +
                                  " in the reference but " + std::to_string(header_length) + " in the alignment header");
        }
    }

    /// Checks that [beg, end) of contig `name` lies inside the reference (weaker than
    /// check_contig: for references that hold only part of a contig, as test data often do).
    void check_range(std::string_view name, std::int64_t beg, std::int64_t end) const {
        const std::size_t c = require(name);
        if (beg < 0 || end < beg || end > contigs_[c].length) {
            throw InvalidArgument("reference '" + path_ + "' does not cover " + std::string(name) + ":[" +
                                  std::to_string(beg) + ", " + std::to_string(end) + "): its contig '" +
                                  std::string(name) + "' has length " + std::to_string(contigs_[c].length));
        }
    }

private:
    std::size_t require(std::string_view name) const {
        const std::int32_t c = contig_index(name);
        if (c < 0) {
            std::string known;
            for (std::size_t i = 0; i < contigs_.size() && i < 5; ++i) known += (i ? ", " : "") + contigs_[i].name;
            if (contigs_.size() > 5) known += ", ...";
            throw InvalidArgument("contig '" + std::string(name) + "' is not in reference '" + path_ + "' (it has " +
                                  std::to_string(contigs_.size()) + " contigs: " + known + ")");
        }
        return static_cast<std::size_t>(c);
    }

    static bool is_fasta_char(char ch) noexcept {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '*' || ch == '-';
    }

    void load() {
        LineReader in(path_);
        std::string_view ln;
        while (in.next(ln)) {
            if (ln.empty()) continue;
            if (ln[0] == '>') {
                std::string_view name = ln.substr(1);
                const auto ws = name.find_first_of(" \t");
                if (ws != std::string_view::npos) name = name.substr(0, ws);
                if (name.empty()) throw ParseError(path_, static_cast<long>(in.line()), "empty sequence name after '>'");
                if (contig_index(name) >= 0) {
                    throw ParseError(path_, static_cast<long>(in.line()), "duplicate sequence name '" + std::string(name) + "'");
                }
                contigs_.push_back(ContigInfo{std::string(name), 0});
                seqs_.emplace_back();
                continue;
            }
            if (contigs_.empty()) {
                throw ParseError(path_, static_cast<long>(in.line()), "not FASTA: text before the first '>' header line");
            }
            for (std::size_t i = 0; i < ln.size(); ++i) {
                if (!is_fasta_char(ln[i])) {
                    throw ParseError(path_, static_cast<long>(in.line()),
                                     "invalid sequence character at column " + std::to_string(i + 1) + " of sequence '" +
                                         contigs_.back().name + "'");
                }
            }
            seqs_.back().append(ln);
            contigs_.back().length = static_cast<std::int64_t>(seqs_.back().size());
        }
    }

    std::string path_;
    faidx_t* fai_ = nullptr;
    std::vector<ContigInfo> contigs_;
    std::vector<std::string> seqs_;
};

} // namespace diffbio::io
