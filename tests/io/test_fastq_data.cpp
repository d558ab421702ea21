// FastqReader on data that others wrote: htslib's own FASTQ/FASTA test files (compared record by
// record with htslib's reader) and SeqPrep's example runs. Each case WARNs and passes when its
// Debian package (htslib-test, seqprep-data) is not installed.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <htslib/hts.h>
#include <htslib/sam.h>

#include <diffbio/core/error.hpp>
#include <diffbio/core/read_batch.hpp>
#include <diffbio/io/fastq.hpp>
#include <diffbio/io/paired.hpp>
#include <diffbio/io/text_writer.hpp>

#include "io_fixtures.hpp"

namespace fs = std::filesystem;
using diffbio::ParseError;
using diffbio::ReadBatch;
using diffbio::io::FastqReader;
using diffbio::io::FastqRecord;
using diffbio::io::PhredEncoding;

namespace {

struct HtsRead {
    std::string name, seq;
    std::vector<std::uint8_t> qual;
};

/// All records of a FASTQ/FASTA file as htslib's own reader (hts_open + sam_read1) sees them;
/// nullopt when htslib cannot open it or reports an error.
std::optional<std::vector<HtsRead>> read_with_htslib(const std::string& path) {
    samFile* fp = hts_open(path.c_str(), "r");
    if (fp == nullptr) return std::nullopt;
    sam_hdr_t* hdr = sam_hdr_read(fp);
    bam1_t* b = bam_init1();
    std::vector<HtsRead> out;
    int r = 0;
    while ((r = sam_read1(fp, hdr, b)) >= 0) {
        HtsRead h;
        h.name = bam_get_qname(b);
        const std::uint8_t* s = bam_get_seq(b);
        const std::uint8_t* q = bam_get_qual(b);
        for (int i = 0; i < b->core.l_qseq; ++i) {
            h.seq += seq_nt16_str[bam_seqi(s, i)];
            h.qual.push_back(q[i]);
        }
        out.push_back(std::move(h));
    }
    bam_destroy1(b);
    if (hdr != nullptr) sam_hdr_destroy(hdr);
    const bool ok = hts_close(fp) == 0 && r == -1;
    if (!ok) return std::nullopt;
    return out;
}

/// Our sequence as htslib stores it: its 4-bit codes print IUPAC codes in upper case, other
/// characters ('.', '-', '*') as N.
std::string as_nt16(const std::string& seq) {
    std::string s;
    for (const char c : seq) s += seq_nt16_str[seq_nt16_table[static_cast<unsigned char>(c)]];
    return s;
}

bool is_read_file(const std::string& name) {
    std::string n = name;
    if (n.ends_with(".gz")) n.resize(n.size() - 3);
    return n.ends_with(".fq") || n.ends_with(".fa") || n.ends_with(".fastq") || n.ends_with(".fasta");
}

struct Outcome {
    bool parsed = false;
    std::vector<FastqRecord> records;
    PhredEncoding encoding = PhredEncoding::Auto;
    std::string error;
};

/// Reads a file with FastqReader. A ParseError is an outcome; any other exception escapes and
/// fails the test.
Outcome read_ours(const std::string& path) {
    Outcome o;
    try {
        FastqReader reader(path);
        o.encoding = reader.encoding();
        FastqRecord r;
        while (reader.next(r)) o.records.push_back(r);
        o.parsed = true;
    } catch (const ParseError& e) {
        o.error = e.what();
        CHECK(e.file() == path);
        CHECK(e.line() >= 0);
        CHECK_THAT(o.error, Catch::Matchers::StartsWith(path + ":" + std::to_string(e.line()) + ": "));
    }
    return o;
}

/// Ours and htslib's agree on the file: both reject it, or both read the same records.
void compare_with_htslib(const std::string& path, const Outcome& ours) {
    INFO("file " << path);
    const auto theirs = read_with_htslib(path);
    if (!ours.parsed) {
        INFO("we rejected it: " << ours.error);
        CHECK_FALSE(theirs.has_value()); // a rejection must be a genuine format problem
        return;
    }
    REQUIRE(theirs.has_value());
    REQUIRE(ours.records.size() == theirs->size());
    for (std::size_t i = 0; i < ours.records.size(); ++i) {
        const FastqRecord& a = ours.records[i];
        const HtsRead& b = (*theirs)[i];
        INFO("record " << i << " '" << a.name << "'");
        // htslib drops a /1 or /2 mate suffix from names.
        CHECK((a.name == b.name || std::string(diffbio::io::strip_mate_suffix(a.name)) == b.name));
        CHECK(as_nt16(a.sequence) == b.seq);
        if (!a.quality.empty()) {
            REQUIRE(a.quality.size() == b.qual.size());
            for (std::size_t k = 0; k < b.qual.size(); ++k) CHECK(static_cast<int>(a.quality[k]) - 33 == b.qual[k]);
        }
    }
}

} // namespace

TEST_CASE("htslib-test FASTQ/FASTA files parse exactly as htslib reads them", "[io][fastq][data]") {
    const fs::path dir = DIFFBIO_HTSLIB_TEST_DIR;
    if (!fs::is_directory(dir)) {
        WARN("htslib-test not installed: skipping the htslib-test FASTQ/FASTA files (" << dir.string() << ")");
        return;
    }
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.is_regular_file() && is_read_file(entry.path().filename().string())) files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    REQUIRE_FALSE(files.empty());

    std::map<std::string, std::size_t> counts;
    for (const std::string& path : files) {
        const Outcome ours = read_ours(path);
        compare_with_htslib(path, ours);
        const std::string name = fs::path(path).filename().string();
        if (ours.parsed) {
            counts[name] = ours.records.size();
            std::cout << "htslib-test " << name << ": parsed " << ours.records.size() << " records ("
                      << diffbio::io::to_string(ours.encoding) << ")\n";
        } else {
            std::cout << "htslib-test " << name << ": rejected: " << ours.error << "\n";
        }

        // The same bytes BGZF-compressed read the same way (htslib-test ships no .gz files).
        if (!path.ends_with(".gz")) {
            diffbio::test::ScratchFile gz(name + ".gz");
            {
                diffbio::io::TextWriter w(gz.path(), true);
                w.write(diffbio::test::slurp(path));
                w.close();
            }
            const Outcome zipped = read_ours(gz.path());
            INFO("compressed copy of " << name);
            CHECK(zipped.parsed == ours.parsed);
            CHECK(zipped.records == ours.records);
            compare_with_htslib(gz.path(), zipped);
        }
    }
    // Counts checked by hand against the files.
    CHECK(counts["minimal.fq"] == 1);
    CHECK(counts["minimal.fa"] == 1);
    CHECK(counts["multiline.fq"] == 2);
    CHECK(counts["multiline.fa"] == 2);
    CHECK(counts["longline.fq"] == 1);
    CHECK(counts["single.fq"] == 5);
    CHECK(counts["interleaved.fq"] == 10);
    CHECK(counts["interleaved_casava.fa"] == 10);
    CHECK(counts["filter_casava.fq"] == 4);
    CHECK(counts["name2.fq"] == 4);
}

TEST_CASE("htslib-test files: multi-line records, quality lines starting with '@' or '+', comments",
          "[io][fastq][data]") {
    const fs::path dir = DIFFBIO_HTSLIB_TEST_DIR;
    if (!fs::is_directory(dir)) {
        WARN("htslib-test not installed: skipping the htslib-test FASTQ/FASTA files (" << dir.string() << ")");
        return;
    }
    const auto multi = diffbio::test::read_records((dir / "multiline.fq").string());
    REQUIRE(multi.size() == 2);
    CHECK(multi[0].sequence == "NAAAAAAAAACCCCCCCCCCGGGGGGGGGGTTTTTTTTN");
    CHECK(multi[0].quality == "++++++++++@@@@@@@@@@##########........>");
    CHECK(multi[1].quality == "<<<<<<<<<<!!!!!!!!!!##########@@@@@@@@@");

    const auto minimal = diffbio::test::read_records((dir / "minimal.fq").string());
    REQUIRE(minimal.size() == 1);
    CHECK(minimal[0] == FastqRecord{"x", "", "A", "+"});

    const auto casava = diffbio::test::read_records((dir / "filter_casava.fq").string());
    REQUIRE(casava.size() == 4);
    CHECK(casava[2].name == "HS25_09827:2:1201:1559:70726#49");
    CHECK(casava[2].comment == "1:Y:0:NGTCTATC");

    const auto name2 = diffbio::test::read_records((dir / "name2.fq").string());
    REQUIRE(name2.size() == 4);
    CHECK(name2[1].name == "ignore_002");
    CHECK(name2[1].comment == "name_002");
    CHECK(name2[2].comment == "     name_003"); // only the one separating tab is dropped

    const auto aux = diffbio::test::read_records((dir / "single.fq").string());
    REQUIRE(aux.size() == 5);
    CHECK(aux[0].comment == "RG:Z:1#49");
}

TEST_CASE("SeqPrep's simulated run: 10,000 phred+33 reads of length 100", "[io][fastq][data]") {
    const std::string path = std::string(DIFFBIO_SEQPREP_DATA_DIR) + "/SimTest/simSeq10k_1.fq.gz";
    if (!fs::exists(path)) {
        WARN("seqprep-data not installed: skipping " << path);
        return;
    }
    FastqReader reader(path);
    CHECK(reader.encoding() == PhredEncoding::Phred33);
    const ReadBatch b = diffbio::io::read_fastq(path);
    REQUIRE(b.num_reads == 10000);
    CHECK(b.length == 100);
    CHECK(std::all_of(b.lengths.begin(), b.lengths.end(), [](std::uint32_t l) { return l == 100; }));
    // zcat simSeq10k_1.fq.gz | head -4: @SimSeq_1/229/1, TAGGAGGCTT..., quality E=AGEFGGGF...
    CHECK(b.names[0] == "SimSeq_1/229/1");
    CHECK(b.sequence(0).substr(0, 10) == "TAGGAGGCTT");
    CHECK(b.quality[0] == 36.0f); // 'E'
    CHECK(b.quality[1] == 28.0f); // '='
    CHECK(b.names[9999].ends_with("/1"));
}

TEST_CASE("SeqPrep's multiplexed run: phred+64 detected, '.' bases uniform", "[io][fastq][data]") {
    const std::string path = std::string(DIFFBIO_SEQPREP_DATA_DIR) + "/data/multiplex_bad_contam_1.fq.gz";
    if (!fs::exists(path)) {
        WARN("seqprep-data not installed: skipping " << path);
        return;
    }
    FastqReader reader(path);
    CHECK(reader.encoding() == PhredEncoding::Phred64);
    ReadBatch b;
    REQUIRE(reader.read_batch(b, 3) == 3);
    // zcat multiplex_bad_contam_1.fq.gz | head -12
    //   read 1: CAGTAAAGT...................TGACATTTACTGT... / [[[______BBBB...
    //   read 3: GGTAGCCTTTGCACATTGATCCATTTGATTTTGGAAGATGATAATGA.GT.G.TATT... / ^[ZcccccaeeYbd[de]...
    CHECK(b.names[0] == "HWI-ST593:1:1101:1256:2109#ACA/1");
    CHECK(b.sequence(0).substr(0, 12) == "CAGTAAAGTNNN");
    for (std::size_t l = 9; l < 28; ++l) {
        const float* o = b.one_hot.data() + l * 4;
        CHECK((o[0] == 0.25f && o[1] == 0.25f && o[2] == 0.25f && o[3] == 0.25f));
    }
    const auto q = [&](std::size_t read, std::size_t pos) { return b.quality[read * b.length + pos]; };
    CHECK(q(0, 0) == 27.0f); // '['
    CHECK(q(0, 3) == 31.0f); // '_'
    CHECK(q(0, 9) == 2.0f);  // 'B'
    CHECK(q(2, 0) == 30.0f); // '^'
    CHECK(q(2, 2) == 26.0f); // 'Z'
    CHECK(q(2, 3) == 35.0f); // 'c'
    CHECK(q(2, 9) == 37.0f); // 'e'
    CHECK(q(2, 11) == 25.0f); // 'Y'

    // The whole file: zcat | wc -l gives 400,000 lines.
    FastqRecord r;
    while (reader.next(r)) {
    }
    CHECK(reader.records() == 100000);
    CHECK(reader.line() == 400000);
}
