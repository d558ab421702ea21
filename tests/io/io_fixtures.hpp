#pragma once
// Helpers shared by the io tests: fixture paths, scratch files, and a check of a ParseError's
// file, line and message.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include <diffbio/core/error.hpp>
#include <diffbio/io/fastq.hpp>

namespace diffbio::test {

/// tests/data/<name>
inline std::string data_file(const std::string& name) {
    std::string path = DIFFBIO_TEST_DATA_DIR;
    path += '/';
    path += name;
    return path;
}

/// A path in the build tree's scratch folder, unique to this process (ctest runs each test
/// case in its own process, possibly in parallel); the file is removed on destruction.
class ScratchFile {
public:
    explicit ScratchFile(const std::string& name)
        : path_(std::string(DIFFBIO_TEST_SCRATCH_DIR) + "/" + std::to_string(::getpid()) + "_" + name) {
        std::filesystem::create_directories(DIFFBIO_TEST_SCRATCH_DIR);
        std::filesystem::remove(path_);
    }
    ScratchFile(const ScratchFile&) = delete;
    ScratchFile& operator=(const ScratchFile&) = delete;
    ~ScratchFile() {
        std::error_code ec;
        std::filesystem::remove(path_, ec);
    }
    const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
};

inline std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void spit(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
    REQUIRE(out.good());
}

/// Every record of a file, through FastqReader::next.
inline std::vector<io::FastqRecord> read_records(const std::string& path, io::FastqOptions options = {}) {
    io::FastqReader reader(path, options);
    std::vector<io::FastqRecord> out;
    io::FastqRecord r;
    while (reader.next(r)) out.push_back(r);
    return out;
}

/// Runs f, which must throw diffbio::ParseError for `file` at `line` whose message contains
/// "<file>:<line>: " and `fragment`. Any other exception escapes and fails the test case.
template <class F>
void require_parse_error(F&& f, const std::string& file, long line, const std::string& fragment) {
    try {
        f();
    } catch (const ParseError& e) {
        const std::string what = e.what();
        INFO("message: " << what);
        CHECK(e.file() == file);
        CHECK(e.line() == line);
        CHECK_THAT(what, Catch::Matchers::StartsWith(file + ":" + std::to_string(line) + ": "));
        CHECK_THAT(what, Catch::Matchers::Contains(fragment));
        return;
    }
    FAIL("expected a diffbio::ParseError for " << file << ":" << line << " (" << fragment << "), nothing was thrown");
}

} // namespace diffbio::test
