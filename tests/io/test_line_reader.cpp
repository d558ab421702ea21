#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/io/line_reader.hpp>
#include <diffbio/io/text_writer.hpp>

#include "io_fixtures.hpp"

using diffbio::io::LineReader;
using diffbio::test::ScratchFile;

namespace {
std::vector<std::string> all_lines(const std::string& path) {
    LineReader r(path);
    std::vector<std::string> out;
    std::string_view l;
    while (r.next(l)) {
        out.emplace_back(l);
        CHECK(r.line() == out.size());
    }
    return out;
}
} // namespace

TEST_CASE("LineReader returns lines without LF or CRLF, including a last unterminated line", "[io][line_reader]") {
    ScratchFile f("lines.txt");
    diffbio::test::spit(f.path(), "a\r\nbb\n\nccc");
    CHECK(all_lines(f.path()) == std::vector<std::string>{"a", "bb", "", "ccc"});

    ScratchFile empty("nothing.txt");
    diffbio::test::spit(empty.path(), "");
    CHECK(all_lines(empty.path()).empty());
}

TEST_CASE("LineReader::unget returns the last line again", "[io][line_reader]") {
    ScratchFile f("unget.txt");
    diffbio::test::spit(f.path(), "one\ntwo\n");
    LineReader r(f.path());
    std::string_view l;
    REQUIRE(r.next(l));
    REQUIRE(r.next(l));
    CHECK(r.line() == 2);
    r.unget();
    CHECK(r.line() == 1);
    REQUIRE(r.next(l));
    CHECK(l == "two");
    CHECK(r.line() == 2);
    CHECK_FALSE(r.next(l));
    CHECK_FALSE(r.next(l));
}

TEST_CASE("TextWriter and LineReader: BGZF and plain files read the same", "[io][line_reader][text_writer]") {
    CHECK(diffbio::io::has_gz_suffix("x.fq.gz"));
    CHECK_FALSE(diffbio::io::has_gz_suffix("x.fq"));
    for (const bool gz : {false, true}) {
        ScratchFile f(gz ? "text.gz" : "text.txt");
        diffbio::io::TextWriter w(f.path(), gz);
        CHECK(w.is_open());
        std::string big(200000, 'x'); // spans several 64 KiB BGZF blocks
        w.write("first\n");
        w.write(big);
        w.write("\nlast\n");
        w.close();
        CHECK_FALSE(w.is_open());
        w.close();
        CHECK_THROWS_AS(w.write("more"), diffbio::Error);
        CHECK(all_lines(f.path()) == std::vector<std::string>{"first", big, "last"});
        CHECK(LineReader(f.path()).compressed() == gz);
    }
}

TEST_CASE("LineReader reports files it cannot open", "[io][line_reader][errors]") {
    CHECK_THROWS_WITH(LineReader("/nonexistent/file.txt"),
                      Catch::Matchers::Contains("'/nonexistent/file.txt'") &&
                          Catch::Matchers::Contains("No such file or directory"));
}
