#pragma once
// TextWriter: a text file written plain (htslib hFILE) or BGZF-compressed (htslib BGZF). BGZF
// is a series of gzip members, so gzip, zcat and every gzip reader accept it, and htslib can
// index it. The FASTQ and FASTA writers of diffbio/io are built on it.

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include <htslib/bgzf.h>
#include <htslib/hfile.h>

#include <diffbio/core/error.hpp>

namespace diffbio::io {

/// True when `path` ends in ".gz" (the default choice of compression of the writers).
inline bool has_gz_suffix(std::string_view path) noexcept { return path.ends_with(".gz"); }

class TextWriter {
public:
    /// Creates (or truncates) `path` ("-" is standard output), BGZF-compressed when `compress`
    /// is true, plain otherwise. `level` is the zlib compression level 0–9 (−1: zlib's default, 6).
    /// Errors: diffbio::Error naming the path and the system's reason when it cannot be created;
    /// InvalidArgument for a level outside −1..9.
    TextWriter(std::string path, bool compress, int level = -1) : path_(std::move(path)) {
        if (level < -1 || level > 9) {
            throw InvalidArgument("TextWriter: compression level must be in -1..9, got " + std::to_string(level));
        }
        errno = 0;
        if (compress) {
            const std::string mode = level < 0 ? std::string("w") : "w" + std::to_string(level);
            bgzf_ = bgzf_open(path_.c_str(), mode.c_str());
        } else {
            plain_ = hopen(path_.c_str(), "w");
        }
        if (bgzf_ == nullptr && plain_ == nullptr) {
            const int err = errno;
            throw Error("cannot open '" + path_ + "' for writing: " +
                        (err != 0 ? std::string(std::strerror(err)) : std::string("unknown error")));
        }
    }

    TextWriter(const TextWriter&) = delete;
    TextWriter& operator=(const TextWriter&) = delete;
    TextWriter(TextWriter&& other) noexcept
        : path_(std::move(other.path_)), bgzf_(std::exchange(other.bgzf_, nullptr)),
          plain_(std::exchange(other.plain_, nullptr)) {}
    TextWriter& operator=(TextWriter&& other) noexcept {
        if (this != &other) {
            close_quietly();
            path_ = std::move(other.path_);
            bgzf_ = std::exchange(other.bgzf_, nullptr);
            plain_ = std::exchange(other.plain_, nullptr);
        }
        return *this;
    }
    /// Closes the file; errors are swallowed here (call close() to see them).
    ~TextWriter() { close_quietly(); }

    /// Appends `text` (buffered; compressed in 64 KiB blocks). O(text.size()).
    /// Errors: diffbio::Error when the writer is closed or the data cannot be written.
    void write(std::string_view text) {
        if (!is_open()) throw Error("cannot write to '" + path_ + "': the file is closed");
        if (text.empty()) return;
        errno = 0;
        const ssize_t n = bgzf_ != nullptr ? bgzf_write(bgzf_, text.data(), text.size())
                                           : hwrite(plain_, text.data(), text.size());
        if (n < 0 || static_cast<std::size_t>(n) != text.size()) {
            const int err = errno;
            throw Error("cannot write to '" + path_ + "'" + (err != 0 ? ": " + std::string(std::strerror(err)) : ""));
        }
    }

    /// Flushes the buffered data (and, when compressed, writes the BGZF end-of-file block) and
    /// closes the file. Calling it again does nothing.
    /// Errors: diffbio::Error naming the path when the data cannot be written (disk full, ...).
    /// (htslib 1.16's bgzf_close does not free its handle when that last write fails, so a
    /// failed close of a compressed file leaks it.)
    void close() {
        if (!is_open()) return;
        errno = 0;
        int rc = 0;
        if (bgzf_ != nullptr) rc = bgzf_close(std::exchange(bgzf_, nullptr));
        if (plain_ != nullptr) rc = hclose(std::exchange(plain_, nullptr));
        if (rc != 0) {
            const int err = errno;
            throw Error("error while writing and closing '" + path_ + "'" +
                        (err != 0 ? ": " + std::string(std::strerror(err)) : ""));
        }
    }

    bool is_open() const noexcept { return bgzf_ != nullptr || plain_ != nullptr; }
    const std::string& path() const noexcept { return path_; }

private:
    void close_quietly() noexcept {
        if (bgzf_ != nullptr) bgzf_close(std::exchange(bgzf_, nullptr));
        if (plain_ != nullptr && hclose(std::exchange(plain_, nullptr)) != 0) {
            // the error is dropped: a destructor must not throw
        }
    }

    std::string path_;
    BGZF* bgzf_ = nullptr;
    hFILE* plain_ = nullptr;
};

} // namespace diffbio::io
