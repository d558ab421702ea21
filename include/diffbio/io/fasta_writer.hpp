#pragma once
// FastaWriter: writes sequences as FASTA records, plain or BGZF-compressed, optionally wrapping
// the sequence lines.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include <diffbio/core/error.hpp>
#include <diffbio/io/fastq_record.hpp>
#include <diffbio/io/fastq_writer.hpp>
#include <diffbio/io/text_writer.hpp>

namespace diffbio::io {

class FastaWriter {
public:
    /// Creates `path`, BGZF-compressed when it ends in ".gz"; each sequence on one line.
    /// Errors: diffbio::Error naming the path and strerror when it cannot be created.
    explicit FastaWriter(std::string path) : FastaWriter(path, has_gz_suffix(path)) {}
    /// Creates `path`, BGZF-compressed when `gzip` is true; sequence lines wrapped every
    /// `line_width` bases (0: no wrapping).
    FastaWriter(std::string path, bool gzip, std::size_t line_width = 0)
        : out_(std::move(path), gzip), width_(line_width) {}

    /// Writes ">name comment\n" and the sequence. O(length).
    /// Errors: diffbio::InvalidArgument for a name with whitespace or a line break, a comment
    /// with a line break or a base that is not a letter, '.', '-' or '*'; diffbio::Error when
    /// the file cannot be written.
    void write(std::string_view name, std::string_view comment, std::string_view sequence) {
        detail::check_writable_name(name, "FastaWriter");
        detail::check_writable_comment(comment, name, "FastaWriter");
        detail::check_writable_sequence(sequence, name, "FastaWriter");
        buf_.clear();
        detail::append_header(buf_, '>', name, comment);
        const std::size_t step = width_ == 0 ? (sequence.empty() ? 1 : sequence.size()) : width_;
        for (std::size_t i = 0; i < sequence.size(); i += step) {
            buf_.append(sequence.substr(i, step));
            buf_ += '\n';
        }
        out_.write(buf_);
        ++records_;
    }

    /// Writes a record's name, comment and sequence; its quality is dropped.
    void write(const FastqRecord& record) { write(record.name, record.comment, record.sequence); }

    /// Flushes and closes (see FastqWriter::close). Errors: diffbio::Error naming the path.
    void close() { out_.close(); }

    std::size_t records() const noexcept { return records_; }
    const std::string& path() const noexcept { return out_.path(); }

private:
    TextWriter out_;
    std::size_t width_;
    std::string buf_;
    std::size_t records_ = 0;
};

} // namespace diffbio::io
