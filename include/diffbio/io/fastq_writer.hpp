#pragma once
// FastqWriter: writes reads as four-line FASTQ records, plain or BGZF-compressed (which every
// gzip reader accepts).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <diffbio/core/error.hpp>
#include <diffbio/core/read_batch.hpp>
#include <diffbio/io/fastq_record.hpp>
#include <diffbio/io/text_writer.hpp>

namespace diffbio::io {

namespace detail {

/// Throws InvalidArgument unless `name` can stand in a header: no whitespace, no line break.
inline void check_writable_name(std::string_view name, std::string_view who) {
    if (name.find_first_of(" \t\r\n") != std::string_view::npos) {
        throw InvalidArgument(std::string(who) + ": read name '" + std::string(name) +
                              "' contains whitespace or a line break; a reader would split it there");
    }
}

/// Throws InvalidArgument unless `comment` fits on the header line.
inline void check_writable_comment(std::string_view comment, std::string_view name, std::string_view who) {
    if (comment.find_first_of("\r\n") != std::string_view::npos) {
        throw InvalidArgument(std::string(who) + ": the comment of read '" + std::string(name) + "' contains a line break");
    }
}

/// Throws InvalidArgument unless every character is a letter, '.', '-' or '*'.
inline void check_writable_sequence(std::string_view seq, std::string_view name, std::string_view who) {
    for (std::size_t i = 0; i < seq.size(); ++i) {
        if (!is_sequence_char(seq[i])) {
            throw InvalidArgument(std::string(who) + ": read '" + std::string(name) + "' has the invalid base " +
                                  describe_char(seq[i]) + " at position " + std::to_string(i));
        }
    }
}

/// "<marker>name[ comment]\n" appended to `out`.
inline void append_header(std::string& out, char marker, std::string_view name, std::string_view comment) {
    out += marker;
    out.append(name);
    if (!comment.empty()) {
        out += ' ';
        out.append(comment);
    }
    out += '\n';
}

} // namespace detail

class FastqWriter {
public:
    /// Creates `path`, BGZF-compressed when it ends in ".gz", plain otherwise.
    /// Errors: diffbio::Error naming the path and strerror when it cannot be created.
    explicit FastqWriter(std::string path) : FastqWriter(path, has_gz_suffix(path)) {}
    /// Creates `path`, BGZF-compressed when `gzip` is true, plain otherwise.
    FastqWriter(std::string path, bool gzip, int level = -1) : out_(std::move(path), gzip, level) {}

    /// Writes "@name comment\nsequence\n+\nquality\n" ("@name\n" without a comment), with the
    /// record's raw quality characters. O(record length).
    /// Errors: diffbio::InvalidArgument when the record cannot be written faithfully: a name
    /// with whitespace or a line break, a comment with a line break, a base that is not a
    /// letter, '.', '-' or '*', a quality length different from the sequence's (e.g. a FASTA
    /// record: use the overload taking Phred scores), a quality character outside '!'..'~'.
    /// diffbio::Error when the file cannot be written.
    void write(const FastqRecord& record) {
        check_common(record.name, record.comment, record.sequence);
        if (record.quality.size() != record.sequence.size()) {
            throw InvalidArgument("FastqWriter: read '" + record.name + "' has " + std::to_string(record.sequence.size()) +
                                  " bases but " + std::to_string(record.quality.size()) +
                                  " quality characters (a FASTA record has none: write it with Phred scores)");
        }
        for (std::size_t i = 0; i < record.quality.size(); ++i) {
            if (!detail::is_quality_char(record.quality[i])) {
                throw InvalidArgument("FastqWriter: read '" + record.name + "' has the invalid quality character " +
                                      detail::describe_char(record.quality[i]) + " at position " + std::to_string(i));
            }
        }
        emit(record.name, record.comment, record.sequence, record.quality);
    }

    /// Writes one read from decoded Phred scores: each score is rounded to the nearest integer
    /// (halves away from zero), clamped to [0, 93] for phred+33 or [0, 62] for phred+64 (the
    /// scores '~' can carry) and written as score + offset. O(length).
    /// Errors: as write(const FastqRecord&); diffbio::ShapeError when phred and sequence differ
    /// in length; diffbio::InvalidArgument for a NaN score or PhredEncoding::Auto.
    void write(std::string_view name, std::string_view comment, std::string_view sequence, std::span<const float> phred,
               PhredEncoding encoding = PhredEncoding::Phred33) {
        check_common(name, comment, sequence);
        if (phred.size() != sequence.size()) {
            throw ShapeError("FastqWriter: read '" + std::string(name) + "' has " + std::to_string(sequence.size()) +
                             " bases but " + std::to_string(phred.size()) + " quality scores");
        }
        if (encoding == PhredEncoding::Auto) {
            throw InvalidArgument("FastqWriter: choose PhredEncoding::Phred33 or Phred64 for writing, not Auto");
        }
        const int offset = phred_offset(encoding);
        const float top = static_cast<float>('~' - offset);
        quality_.resize(phred.size());
        for (std::size_t i = 0; i < phred.size(); ++i) {
            if (std::isnan(phred[i])) {
                throw InvalidArgument("FastqWriter: read '" + std::string(name) + "' has a NaN quality score at position " +
                                      std::to_string(i));
            }
            const long q = std::lround(std::clamp(phred[i], 0.0f, top));
            quality_[i] = static_cast<char>(q + offset);
        }
        emit(name, comment, sequence, quality_);
    }

    /// Writes every read of a batch: its name, comment, bases (ReadBatch::sequence: the argmax
    /// base, 'N' for uniform rows) and Phred scores (as the overload above). O(N·L).
    /// Errors: as the overload above; diffbio::ShapeError when the batch's arrays disagree.
    void write(const ReadBatch& batch, PhredEncoding encoding = PhredEncoding::Phred33) {
        if (batch.lengths.size() != batch.num_reads || batch.names.size() != batch.num_reads ||
            batch.comments.size() != batch.num_reads || batch.quality.size() != batch.num_reads * batch.length) {
            throw ShapeError("FastqWriter: the ReadBatch's lengths, names, comments and quality do not match its " +
                             std::to_string(batch.num_reads) + " reads");
        }
        for (std::size_t i = 0; i < batch.num_reads; ++i) {
            write(batch.names[i], batch.comments[i], batch.sequence(i),
                  batch.read_quality(i).first(batch.lengths[i]), encoding);
        }
    }

    /// Flushes and closes the file (writing the BGZF end-of-file block when compressed). A
    /// second call does nothing. The destructor closes too, but silently: call close() to
    /// learn whether everything reached the disk.
    /// Errors: diffbio::Error naming the path when the data cannot be written.
    void close() { out_.close(); }

    /// Records written so far.
    std::size_t records() const noexcept { return records_; }
    const std::string& path() const noexcept { return out_.path(); }

private:
    static void check_common(std::string_view name, std::string_view comment, std::string_view sequence) {
        detail::check_writable_name(name, "FastqWriter");
        detail::check_writable_comment(comment, name, "FastqWriter");
        detail::check_writable_sequence(sequence, name, "FastqWriter");
    }

    void emit(std::string_view name, std::string_view comment, std::string_view sequence, std::string_view quality) {
        buf_.clear();
        detail::append_header(buf_, '@', name, comment);
        buf_.append(sequence);
        buf_ += "\n+\n";
        buf_.append(quality);
        buf_ += '\n';
        out_.write(buf_);
        ++records_;
    }

    TextWriter out_;
    std::string buf_, quality_;
    std::size_t records_ = 0;
};

} // namespace diffbio::io
