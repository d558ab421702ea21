#pragma once
// LineReader: the lines of a text file that may be plain, gzip- or BGZF-compressed, read one
// at a time through htslib's BGZF layer (which recognises the compression from the data, not
// from the file name). The record parsers of diffbio/io are built on it.

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include <htslib/bgzf.h>
#include <htslib/kstring.h>

#include <diffbio/core/error.hpp>

namespace diffbio::io {

class LineReader {
public:
    /// Opens `path` for reading ("-" is standard input). Plain text, gzip and BGZF are all
    /// accepted; the format is sniffed from the first bytes.
    /// Errors: diffbio::Error naming the path and the system's reason (strerror) when the file
    /// cannot be opened or is not readable (a missing file, a directory, no permission).
    explicit LineReader(std::string path) : path_(std::move(path)) {
        errno = 0;
        fp_ = bgzf_open(path_.c_str(), "r");
        if (fp_ == nullptr) {
            const int err = errno;
            throw Error("cannot open '" + path_ + "' for reading: " +
                        (err != 0 ? std::string(std::strerror(err)) : std::string("not a readable file")));
        }
    }

    LineReader(const LineReader&) = delete;
    LineReader& operator=(const LineReader&) = delete;
    LineReader(LineReader&& other) noexcept
        : path_(std::move(other.path_)), fp_(std::exchange(other.fp_, nullptr)),
          buf_(std::exchange(other.buf_, kstring_t{0, 0, nullptr})), line_(other.line_), pushed_back_(other.pushed_back_),
          eof_(other.eof_) {}
    LineReader& operator=(LineReader&& other) noexcept {
        if (this != &other) {
            release();
            path_ = std::move(other.path_);
            fp_ = std::exchange(other.fp_, nullptr);
            buf_ = std::exchange(other.buf_, kstring_t{0, 0, nullptr});
            line_ = other.line_;
            pushed_back_ = other.pushed_back_;
            eof_ = other.eof_;
        }
        return *this;
    }
    ~LineReader() { release(); }

    /// Reads the next line into `line` without its '\n' (and without a '\r' before it, so CRLF
    /// files read like LF files). A last line without a final '\n' is returned too. The view
    /// stays valid until the next call of next(). Returns false at the end of the file.
    /// Complexity: O(length of the line), amortised; no allocation once the buffer has grown
    /// to the longest line.
    /// Errors: diffbio::ParseError (file, number of the line being read) when the data cannot
    /// be read, e.g. corrupt or truncated compressed data.
    bool next(std::string_view& line) {
        if (pushed_back_) {
            pushed_back_ = false;
            ++line_;
            line = view();
            return true;
        }
        if (eof_) return false;
        const int r = bgzf_getline(fp_, '\n', &buf_);
        if (r == -1) {
            eof_ = true;
            buf_.l = 0;
            return false;
        }
        if (r < -1) {
            throw ParseError(path_, static_cast<long>(line_ + 1),
                             "read error: the file's data is corrupt or truncated (htslib bgzf_getline returned " +
                                 std::to_string(r) + ")");
        }
        if (buf_.l > 0 && buf_.s[buf_.l - 1] == '\r') --buf_.l;
        ++line_;
        line = view();
        return true;
    }

    /// Makes the next call of next() return the line it returned last, again (one line of
    /// push-back; line() steps back by one). Only valid directly after a next() that returned
    /// true. O(1).
    void unget() noexcept {
        pushed_back_ = true;
        --line_;
    }

    /// 1-based number of the line last returned by next(); 0 before the first line.
    std::size_t line() const noexcept { return line_; }
    const std::string& path() const noexcept { return path_; }
    /// True when the file is gzip or BGZF compressed.
    bool compressed() const noexcept { return fp_ != nullptr && fp_->is_compressed; }

private:
    std::string_view view() const noexcept { return buf_.s ? std::string_view(buf_.s, buf_.l) : std::string_view(); }
    void release() noexcept {
        if (fp_ != nullptr) bgzf_close(fp_);
        fp_ = nullptr;
        std::free(buf_.s);
        buf_ = kstring_t{0, 0, nullptr};
    }

    std::string path_;
    BGZF* fp_ = nullptr;
    kstring_t buf_{0, 0, nullptr};
    std::size_t line_ = 0;
    bool pushed_back_ = false;
    bool eof_ = false;
};

} // namespace diffbio::io
