#pragma once
// FastqReader: reads FASTQ and FASTA files (plain, gzip or BGZF) into FastqRecords or straight
// into a ReadBatch (one-hot bases, decoded Phred scores).
//
// Accepted input, as htslib accepts it:
//   FASTQ  '@'name[ whitespace comment] / sequence on one or more lines / '+'[anything] /
//          quality on one or more lines, read until it is as long as the sequence (so quality
//          lines may begin with '@' or '+'). CASAVA tags and SAM-style aux fields are comment.
//   FASTA  '>'name[ whitespace comment] / sequence on zero or more lines, up to the next '>'.
//   The first record decides the format of the whole file. Blank lines between records are
//   skipped; CRLF line endings read as LF.
//   Sequence characters: letters (IUPAC codes, any case), '.', '-' and '*'. A, C, G, T and U
//   become one-hot rows; everything else ('N', '.', other IUPAC codes) the uniform row 0.25.
//   Quality characters: '!'..'~' (and not below '@' in a phred+64 file).

#include <cmath>
#include <cstddef>
#include <deque>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/core/read_batch.hpp>
#include <diffbio/io/fastq_record.hpp>
#include <diffbio/io/line_reader.hpp>

namespace diffbio::io {

struct FastqOptions {
    /// Auto detects the encoding from the first `auto_detect_records` records (see FastqReader).
    PhredEncoding encoding = PhredEncoding::Auto;
    std::size_t auto_detect_records = 1000;
    /// FASTA has no qualities: every base of a FASTA record decodes to this Phred score
    /// (40 = error probability 1e-4), so FASTA reads count as confident bases downstream.
    float fasta_quality = 40.0f;
};

class FastqReader {
public:
    /// Opens `path` (plain, gzip or BGZF; "-" is standard input).
    /// With PhredEncoding::Auto the constructor reads ahead the first `auto_detect_records`
    /// records (kept in memory and returned by next() as usual) and picks the encoding from
    /// their quality characters: any character below ';' (59) means phred+33; otherwise, when all
    /// are ≥ '@' (64) and some are above 'J' (74), phred+64; otherwise phred+33 (also when
    /// there are no qualities to look at: FASTA, or auto_detect_records = 0). Reading ahead
    /// never throws a ParseError: an error met there is raised by next() once the records
    /// before it have been returned.
    /// Complexity: O(bytes of the records read ahead).
    /// Errors: diffbio::Error naming the path and strerror when the file cannot be opened;
    /// diffbio::InvalidArgument when options.fasta_quality is negative or not finite.
    explicit FastqReader(std::string path, FastqOptions options = {})
        : in_(std::move(path)), options_(options), encoding_(options.encoding) {
        if (!std::isfinite(options_.fasta_quality) || options_.fasta_quality < 0.0f) {
            throw InvalidArgument("FastqReader: fasta_quality must be finite and >= 0, got " +
                                  std::to_string(options_.fasta_quality));
        }
        if (encoding_ == PhredEncoding::Auto) detect();
    }

    /// Reads the next record into `record` (its strings are reused, so a loop over a file does
    /// not allocate once they have grown). Returns false after the last record.
    /// Complexity: O(bytes of the record).
    /// Errors: diffbio::ParseError(file, line, what) for malformed input, with the line of the
    /// problem: a header not starting with '@' or '>' (or '>' in a FASTQ file and vice versa),
    /// a missing '+' separator, a quality string longer or shorter than the sequence, a
    /// quality character outside '!'..'~' or below '@' in a phred+64 file, a sequence
    /// character that is not a letter, '.', '-' or '*', a record cut off by the end of the file,
    /// a file without any record ("no records"; line 0 for an empty file), unreadable
    /// compressed data. After an error the reader stays failed: every later call throws the
    /// same error. `record` is unspecified after a throw.
    bool next(FastqRecord& record) {
        if (!ahead_.empty()) {
            Pending p = std::move(ahead_.front());
            ahead_.pop_front();
            try {
                check_offset(p.record, p.meta);
            } catch (...) {
                pending_ = std::current_exception();
                ahead_.clear();
                throw;
            }
            record = std::move(p.record);
            deliver(p.meta);
            return true;
        }
        if (pending_) std::rethrow_exception(pending_);
        if (done_) return false;
        try {
            Meta meta;
            if (!parse(record, meta)) {
                done_ = true;
                return false;
            }
            check_offset(record, meta);
            deliver(meta);
            return true;
        } catch (...) {
            pending_ = std::current_exception();
            throw;
        }
    }

    /// Appends up to `max_reads` reads to `batch` (ReadBatch::add: one-hot bases, Phred scores
    /// decoded with encoding(), fasta_quality for FASTA reads) and returns how many it
    /// appended: fewer than max_reads only at the end of the file, 0 after it.
    /// Complexity: O(bytes read), plus ReadBatch's re-padding when a read is longer than all
    /// reads before it in the batch.
    /// Errors: as next().
    std::size_t read_batch(ReadBatch& batch, std::size_t max_reads) {
        std::size_t n = 0;
        while (n < max_reads && next(scratch_)) {
            decode_quality(scratch_, phred_);
            batch.add(scratch_.name, scratch_.sequence, phred_, scratch_.comment);
            ++n;
        }
        return n;
    }

    /// Decodes the quality of a record read by this reader: character − offset of encoding(),
    /// or fasta_quality for every base when the record has no quality (FASTA). O(length).
    /// Errors: diffbio::ShapeError when a non-empty quality differs in length from the sequence.
    void decode_quality(const FastqRecord& record, std::vector<float>& phred) const {
        phred.resize(record.sequence.size());
        if (record.quality.empty()) {
            for (float& q : phred) q = options_.fasta_quality;
            return;
        }
        decode_phred(record.quality, encoding_, phred);
    }

    /// The encoding used to decode qualities: the one given in the options, or the detected one
    /// (never Auto).
    PhredEncoding encoding() const noexcept { return encoding_; }
    /// True when the file is FASTA (known once the first record has been read).
    bool is_fasta() const noexcept { return format_ == Format::Fasta; }
    /// Number of the last line of the record last returned by next() (0 before the first).
    std::size_t line() const noexcept { return line_; }
    /// Number of the header line of the record last returned by next() (0 before the first).
    std::size_t record_line() const noexcept { return record_line_; }
    /// Records returned so far.
    std::size_t records() const noexcept { return returned_; }
    const std::string& path() const noexcept { return in_.path(); }
    const FastqOptions& options() const noexcept { return options_; }

private:
    enum class Format { Unknown, Fastq, Fasta };
    struct Meta {
        std::size_t first_line = 0, last_line = 0;
        std::size_t low_line = 0, low_column = 0; ///< first quality character below '@' (0: none)
        char low_char = 0;
    };
    struct Pending {
        FastqRecord record;
        Meta meta;
    };

    [[noreturn]] void fail(std::size_t line, const std::string& what) const {
        throw ParseError(in_.path(), static_cast<long>(line), what);
    }

    std::string record_desc(const FastqRecord& r, const Meta& m) const {
        return "record '" + r.name + "' (header at line " + std::to_string(m.first_line) + ")";
    }

    void check_sequence(std::string_view ln, const FastqRecord& r, const Meta& m) const {
        for (std::size_t i = 0; i < ln.size(); ++i) {
            if (!detail::is_sequence_char(ln[i])) {
                fail(in_.line(), "invalid sequence character " + detail::describe_char(ln[i]) + " at column " +
                                     std::to_string(i + 1) + " of " + record_desc(r, m) +
                                     ": bases must be letters (IUPAC codes), '.', '-' or '*'");
            }
        }
    }

    /// Parses one record; false at the end of the file.
    bool parse(FastqRecord& r, Meta& m) {
        std::string_view ln;
        for (;;) {
            if (!in_.next(ln)) {
                if (parsed_ == 0) {
                    fail(in_.line(), in_.line() == 0 ? "no records: the file is empty"
                                                     : "no records: the file holds only blank lines");
                }
                return false;
            }
            if (!ln.empty()) break;
        }
        m = Meta{};
        m.first_line = in_.line();
        const char h = ln[0];
        if (format_ == Format::Unknown) {
            if (h == '@') {
                format_ = Format::Fastq;
            } else if (h == '>') {
                format_ = Format::Fasta;
            } else {
                fail(in_.line(), "expected a record header starting with '@' (FASTQ) or '>' (FASTA), found " +
                                     detail::describe_line(ln));
            }
        } else if (format_ == Format::Fastq && h != '@') {
            fail(in_.line(), "expected a FASTQ record header starting with '@', found " + detail::describe_line(ln));
        } else if (format_ == Format::Fasta && h != '>') {
            fail(in_.line(), "expected a FASTA record header starting with '>', found " + detail::describe_line(ln));
        }
        detail::split_header(ln.substr(1), r.name, r.comment);
        r.sequence.clear();
        r.quality.clear();
        m.last_line = m.first_line;

        if (format_ == Format::Fasta) {
            while (in_.next(ln)) {
                if (!ln.empty() && ln[0] == '>') {
                    in_.unget();
                    break;
                }
                check_sequence(ln, r, m);
                r.sequence.append(ln);
                m.last_line = in_.line();
            }
            ++parsed_;
            return true;
        }

        // FASTQ: sequence lines up to the '+' separator.
        for (;;) {
            if (!in_.next(ln)) {
                fail(in_.line(), "truncated " + record_desc(r, m) +
                                     ": the file ends before its '+' separator line and quality");
            }
            if (!ln.empty() && ln[0] == '+') break;
            if (!ln.empty() && ln[0] == '@') {
                fail(in_.line(), "missing '+' separator: " + record_desc(r, m) +
                                     " is followed by the header line " + detail::describe_line(ln) +
                                     " before any '+' line");
            }
            check_sequence(ln, r, m);
            r.sequence.append(ln);
        }
        m.last_line = in_.line();

        // Quality lines until the quality is as long as the sequence.
        const std::size_t n = r.sequence.size();
        if (n == 0) {
            // An empty read is written with an empty quality line; take it when it is there.
            if (in_.next(ln)) {
                if (ln.empty()) {
                    m.last_line = in_.line();
                } else {
                    in_.unget();
                }
            }
        }
        while (r.quality.size() < n) {
            if (!in_.next(ln)) {
                if (r.quality.empty()) {
                    fail(in_.line(), "truncated " + record_desc(r, m) +
                                         ": the file ends after the '+' line, before the quality");
                }
                fail(in_.line(), "quality length " + std::to_string(r.quality.size()) +
                                     " differs from sequence length " + std::to_string(n) + " in " + record_desc(r, m) +
                                     " (the file ends there)");
            }
            if (r.quality.size() + ln.size() > n) {
                if (!r.quality.empty() && ln[0] == '@') {
                    // The quality ended short and the next record began.
                    fail(in_.line() - 1, "quality length " + std::to_string(r.quality.size()) +
                                             " differs from sequence length " + std::to_string(n) + " in " +
                                             record_desc(r, m));
                }
                fail(in_.line(), "quality length " + std::to_string(r.quality.size() + ln.size()) +
                                     " differs from sequence length " + std::to_string(n) + " in " + record_desc(r, m));
            }
            for (std::size_t i = 0; i < ln.size(); ++i) {
                const char c = ln[i];
                if (!detail::is_quality_char(c)) {
                    fail(in_.line(), "invalid quality character " + detail::describe_char(c) + " at column " +
                                         std::to_string(i + 1) + " of " + record_desc(r, m) +
                                         ": quality characters must lie in '!'..'~'");
                }
                if (c < '@' && m.low_line == 0) {
                    m.low_line = in_.line();
                    m.low_column = i + 1;
                    m.low_char = c;
                }
            }
            r.quality.append(ln);
            m.last_line = in_.line();
        }
        ++parsed_;
        return true;
    }

    void check_offset(const FastqRecord& r, const Meta& m) const {
        if (encoding_ != PhredEncoding::Phred64 || m.low_line == 0) return;
        std::string why = options_.encoding == PhredEncoding::Auto
                              ? " (phred+64 was detected from the first " + std::to_string(options_.auto_detect_records) +
                                    " records; set FastqOptions::encoding to Phred33 if the file is phred+33)"
                              : "";
        fail(m.low_line, "quality character " + detail::describe_char(m.low_char) + " at column " +
                             std::to_string(m.low_column) + " of " + record_desc(r, m) +
                             " is below the phred+64 offset '@' (64)" + why);
    }

    void deliver(const Meta& m) noexcept {
        line_ = m.last_line;
        record_line_ = m.first_line;
        ++returned_;
    }

    void detect() {
        try {
            while (ahead_.size() < options_.auto_detect_records) {
                Pending p;
                if (!parse(p.record, p.meta)) {
                    done_ = true;
                    break;
                }
                ahead_.push_back(std::move(p));
            }
        } catch (...) {
            pending_ = std::current_exception();
        }
        bool below_59 = false, all_from_64 = true, above_74 = false, any = false;
        for (const Pending& p : ahead_) {
            for (const char c : p.record.quality) {
                any = true;
                below_59 = below_59 || c < ';';
                all_from_64 = all_from_64 && c >= '@';
                above_74 = above_74 || c > 'J';
            }
        }
        encoding_ = (any && !below_59 && all_from_64 && above_74) ? PhredEncoding::Phred64 : PhredEncoding::Phred33;
    }

    LineReader in_;
    FastqOptions options_;
    PhredEncoding encoding_;
    Format format_ = Format::Unknown;
    std::deque<Pending> ahead_;
    std::exception_ptr pending_;
    bool done_ = false;
    std::size_t parsed_ = 0, returned_ = 0, line_ = 0, record_line_ = 0;
    FastqRecord scratch_;
    std::vector<float> phred_;
};

/// Reads every record of a FASTQ or FASTA file into one ReadBatch (see FastqReader).
/// Complexity: O(bytes of the file) plus O(N·L) for every time a longer read grows the
/// padded length L; memory 20·N·L bytes (one-hot and quality floats).
/// Errors: as FastqReader's constructor and next(); an empty file is a ParseError ("no records").
inline ReadBatch read_fastq(const std::string& path, FastqOptions options = {}) {
    FastqReader reader(path, options);
    ReadBatch batch;
    while (reader.read_batch(batch, 4096) > 0) {
    }
    return batch;
}

} // namespace diffbio::io
