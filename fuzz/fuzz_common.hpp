#pragma once
// Shared by the fuzz targets (libFuzzer, see fuzz/README.md): the readers take file paths, so each
// input is written to a scratch file in /dev/shm (or $TMPDIR) first. A target accepts
// diffbio::Error (the library's documented failure for bad input); any other exception escapes
// and libFuzzer reports it, as it reports crashes, sanitizer findings, leaks and runaway memory.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace diffbio::fuzz {

/// Writes the input to "<dir>/diffbio-fuzz-<pid><suffix>" and returns that path (the same file
/// for every input of a process: one input at a time).
inline std::string scratch_file(const std::uint8_t* data, std::size_t size, const char* suffix) {
    static const std::string dir = [] {
        std::error_code ec;
        if (std::filesystem::is_directory("/dev/shm", ec)) return std::string("/dev/shm");
        const char* t = std::getenv("TMPDIR");
        return std::string(t != nullptr ? t : "/tmp");
    }();
    const std::string path = dir + "/diffbio-fuzz-" + std::to_string(::getpid()) + suffix;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) std::abort();
    if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    return path;
}

} // namespace diffbio::fuzz
