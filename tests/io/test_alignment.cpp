// AlignmentReader: SAM, BAM (written from the SAM fixture with htslib at run time) and CRAM
// read into an AlignedBatch; region queries against a brute-force overlap; bad input: truncated
// BAM, malformed SAM, missing index, unknown contig, CRAM with a wrong reference.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include <htslib/faidx.h>
#include <htslib/hts.h>
#include <htslib/sam.h>

#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/io/alignment.hpp>

#include "io_fixtures.hpp"

using namespace diffbio;
using diffbio::test::data_file;
using diffbio::test::ScratchFile;
using Catch::Matchers::Contains;

namespace {

/// Copies every record of `in` to `out` with htslib (mode "wb" = BAM, "wc" = CRAM with `ref`),
/// `repeat` times over.
void convert(const std::string& in, const std::string& out, const char* mode, const std::string& ref = "",
             int repeat = 1) {
    samFile* fi = sam_open(in.c_str(), "r");
    REQUIRE(fi != nullptr);
    sam_hdr_t* h = sam_hdr_read(fi);
    REQUIRE(h != nullptr);
    samFile* fo = sam_open(out.c_str(), mode);
    REQUIRE(fo != nullptr);
    if (!ref.empty()) REQUIRE(hts_set_fai_filename(fo, ref.c_str()) == 0);
    REQUIRE(sam_hdr_write(fo, h) == 0);
    std::vector<bam1_t*> recs;
    for (;;) {
        bam1_t* b = bam_init1();
        if (sam_read1(fi, h, b) < 0) {
            bam_destroy1(b);
            break;
        }
        recs.push_back(b);
    }
    for (int k = 0; k < repeat; ++k) {
        for (bam1_t* b : recs) REQUIRE(sam_write1(fo, h, b) >= 0);
    }
    for (bam1_t* b : recs) bam_destroy1(b);
    REQUIRE(sam_close(fo) == 0);
    sam_hdr_destroy(h);
    sam_close(fi);
}

AlignedBatch read_all(const std::string& path, io::AlignmentReaderOptions opt = {}) {
    io::AlignmentReader r(path, opt);
    AlignedBatch b;
    r.read_all(b);
    return b;
}

std::vector<std::uint8_t> phred(const std::string& s) {
    std::vector<std::uint8_t> q;
    for (char c : s) q.push_back(static_cast<std::uint8_t>(c - 33));
    return q;
}

/// The fields of aln_small.sam, checked by hand.
void check_small(const AlignedBatch& b, bool names = true, bool cram = false) {
    REQUIRE(b.num_reads() == 8);
    REQUIRE(b.contigs.size() == 2);
    CHECK(b.contigs[0].name == "chrA");
    CHECK(b.contigs[0].length == 60);
    CHECK(b.contigs[1].name == "chrB");
    CHECK(b.contigs[1].length == 30);
    if (names) {
        const std::vector<std::string> expect{"q1", "q2", "q3", "q4", "q8", "q5", "q7", "q6"};
        for (std::size_t i = 0; i < 8; ++i) CHECK(b.name(i) == expect[i]);
    }
    const std::vector<std::int32_t> contig{0, 0, 0, 0, 0, 1, 1, -1};
    const std::vector<std::int64_t> start{0, 5, 20, 40, 50, 2, 15, -1};
    const std::vector<std::int64_t> end{10, 22, 28, 53, 60, 12, 23, -1};
    const std::vector<int> mapq{60, 30, 50, 0, 60, 60, 42, 0};
    const std::vector<int> flags{0, 16, 1091, 256, 0, 0, 0, 4};
    const std::vector<std::string> cigars{"10M", "2S6M1I4M2D5M", "3H8M", "5M3N5M", "10M", "10M", "4M1X3=", "*"};
    for (std::size_t i = 0; i < 8; ++i) {
        INFO("read " << i);
        CHECK(b.contig[i] == contig[i]);
        CHECK(b.ref_start[i] == start[i]);
        CHECK(b.ref_end[i] == end[i]);
        CHECK(b.mapq[i] == mapq[i]);
        CHECK(b.flags[i] == flags[i]);
        // CRAM does not keep = and X: it stores them as M
        CHECK(b.cigar_string(i) == (cram && i == 6 ? std::string("8M") : cigars[i]));
    }
    CHECK(b.reverse(1));
    CHECK(b.unmapped(7));
    // q2: TT AGACAA G GTTA CAACA(T)..., bases and qualities
    const std::string seq2 = "TTAGACAAGTTACAACAT";
    REQUIRE(b.read_length(1) == seq2.size());
    for (std::size_t l = 0; l < seq2.size(); ++l) CHECK(b.read_bases(1)[l] == base_code(seq2[l]));
    const auto q2 = phred("?F$+29@G%,3:AH&-4;");
    CHECK(std::vector<std::uint8_t>(b.read_qualities(1).begin(), b.read_qualities(1).end()) == q2);
    // q3: an N base, no qualities
    CHECK(b.read_bases(2)[3] == 4);
    for (std::uint8_t q : b.read_qualities(2)) CHECK(q == missing_quality);
    // q6: unmapped, ACGNT (odd length: its last base is the high nibble of the last byte)
    const std::vector<std::uint8_t> codes6{0, 1, 2, 4, 3};
    CHECK(std::vector<std::uint8_t>(b.read_bases(7).begin(), b.read_bases(7).end()) == codes6);
    // per-base reference positions of q2: 2 clipped, 6 aligned, 1 inserted, 4 aligned, (2 deleted), 5 aligned
    const std::vector<std::int64_t> pos2{-1, -1, 5, 6, 7, 8, 9, 10, -1, 11, 12, 13, 14, 17, 18, 19, 20, 21};
    CHECK(b.reference_positions(1) == pos2);
    CHECK(b.num_bases() == 10 + 18 + 8 + 10 + 10 + 10 + 8 + 5);
}

bool same_batch(const AlignedBatch& a, const AlignedBatch& b) {
    return a.contig == b.contig && a.ref_start == b.ref_start && a.ref_end == b.ref_end && a.mapq == b.mapq &&
           a.flags == b.flags && a.cigar == b.cigar && a.bases == b.bases && a.qualities == b.qualities &&
           a.base_offset == b.base_offset && a.cigar_offset == b.cigar_offset;
}

} // namespace

TEST_CASE("AlignmentReader: SAM fields, CIGARs, bases, qualities, flags", "[io][alignment]") {
    const std::string sam = data_file("aln_small.sam");
    io::AlignmentReader r(sam);
    CHECK(r.format() == io::AlignmentFormat::Sam);
    CHECK(r.contig_index("chrB") == 1);
    CHECK(r.contig_index("chrZ") == -1);
    AlignedBatch b;
    CHECK(r.read_all(b) == 8);
    check_small(b);
    CHECK(r.read_all(b) == 0);

    SECTION("in chunks, without names") {
        io::AlignmentReader c(sam, {.keep_names = false});
        AlignedBatch bc;
        CHECK(c.read_batch(bc, 3) == 3);
        CHECK(c.read_batch(bc, 3) == 3);
        CHECK(c.read_batch(bc, 3) == 2);
        CHECK(c.read_batch(bc, 3) == 0);
        check_small(bc, false);
        CHECK(bc.name(0).empty());
    }
    SECTION("filters") {
        const AlignedBatch f = read_all(sam, {.skip_unmapped = true, .exclude_flags = 0x500, .min_mapq = 1});
        // q3 (dup), q4 (secondary, mapq 0), q6 (unmapped) dropped
        REQUIRE(f.num_reads() == 5);
        CHECK(f.name(2) == "q8");
    }
}

TEST_CASE("AlignmentReader: BAM and CRAM equal the SAM; region queries", "[io][alignment]") {
    const std::string sam = data_file("aln_small.sam");
    ScratchFile bam("aln_small.bam"), bai("aln_small.bam.bai");
    convert(sam, bam.path(), "wb");
    const AlignedBatch from_sam = read_all(sam);
    const AlignedBatch from_bam = read_all(bam.path(), {.threads = 1});
    check_small(from_bam);
    CHECK(same_batch(from_sam, from_bam));

    // Region query without an index
    {
        io::AlignmentReader r(bam.path());
        CHECK_THROWS_WITH(r.query("chrA:1-10"), Contains("no index"));
    }
    REQUIRE(sam_index_build(bam.path().c_str(), 0) == 0);
    io::AlignmentReader r(bam.path());
    CHECK_THROWS_WITH(r.query("chrZ:1-10"), Contains("not in the file's header"));
    // Every region against the brute-force overlap of the whole file (1-based inclusive text).
    for (const auto& [ctg, beg, end] : std::vector<std::tuple<std::string, int, int>>{
             {"chrA", 1, 6}, {"chrA", 6, 6}, {"chrA", 23, 40}, {"chrA", 29, 40}, {"chrA", 41, 60}, {"chrB", 1, 30},
             {"chrB", 13, 15}, {"chrA", 45, 48}}) {
        INFO(ctg << ":" << beg << "-" << end);
        r.query(ctg + ":" + std::to_string(beg) + "-" + std::to_string(end));
        AlignedBatch q;
        r.read_all(q);
        std::set<std::string> got, want;
        for (std::size_t i = 0; i < q.num_reads(); ++i) got.emplace(q.name(i));
        const std::int32_t c = from_sam.contig_index(ctg);
        for (std::size_t i = 0; i < from_sam.num_reads(); ++i) {
            if (from_sam.contig[i] == c && from_sam.ref_start[i] < end && from_sam.ref_end[i] > beg - 1) {
                want.emplace(from_sam.name(i));
            }
        }
        CHECK(got == want);
        // The same range through the index form
        r.query(c, beg - 1, end);
        AlignedBatch qi;
        r.read_all(qi);
        CHECK(qi.num_reads() == q.num_reads());
    }
    CHECK_THROWS_AS(r.query(5, 0, 10), InvalidArgument);

    SECTION("CRAM with its reference") {
        setenv("REF_PATH", "/nonexistent", 1); // never look for references on the network
        setenv("REF_CACHE", "/nonexistent", 1);
        ScratchFile ref("aln_ref.fa"), fai("aln_ref.fa.fai"), cram("aln_small.cram");
        diffbio::test::spit(ref.path(), diffbio::test::slurp(data_file("aln_ref.fa")));
        REQUIRE(fai_build(ref.path().c_str()) == 0);
        convert(sam, cram.path(), "wc", ref.path());
        const AlignedBatch from_cram = read_all(cram.path(), {.reference = ref.path()});
        check_small(from_cram, true, true);
        CHECK(from_cram.bases == from_sam.bases);
        CHECK(from_cram.qualities == from_sam.qualities);
        CHECK(from_cram.ref_start == from_sam.ref_start);

        // The same CRAM decoded against a reference with other bases: a clear ParseError.
        ScratchFile wrong("aln_wrong.fa"), wrong_fai("aln_wrong.fa.fai");
        diffbio::test::spit(wrong.path(), ">chrA\n" + std::string(60, 'A') + "\n>chrB\n" + std::string(30, 'C') + "\n");
        REQUIRE(fai_build(wrong.path().c_str()) == 0);
        CHECK_THROWS_AS(read_all(cram.path(), {.reference = wrong.path()}), ParseError);
    }
}

TEST_CASE("AlignmentReader: truncated BAM, malformed SAM, missing and wrong files", "[io][alignment][errors]") {
    const std::string sam = data_file("aln_small.sam");
    // A BAM of several BGZF blocks, cut in the middle.
    ScratchFile big("aln_big.bam"), cut("aln_cut.bam");
    convert(sam, big.path(), "wb", "", 4000);
    const std::string bytes = diffbio::test::slurp(big.path());
    REQUIRE(bytes.size() > 1000);
    diffbio::test::spit(cut.path(), bytes.substr(0, bytes.size() * 6 / 10));
    CHECK(read_all(big.path()).num_reads() == 8 * 4000);
    try {
        io::AlignmentReader r(cut.path());
        FAIL("a truncated BAM was accepted");
    } catch (const ParseError& e) {
        CHECK_THAT(std::string(e.what()), Contains("truncated"));
        CHECK(e.file() == cut.path());
    }
    // Told to read what is there, the reader fails at the cut with the record number.
    {
        io::AlignmentReader r(cut.path(), {.require_eof_marker = false});
        AlignedBatch b;
        try {
            r.read_all(b);
            FAIL("reading past the cut did not throw");
        } catch (const ParseError& e) {
            CHECK(e.line() > 1);
            CHECK(static_cast<std::size_t>(e.line()) == b.num_reads() + 1);
            CHECK_THAT(std::string(e.what()), Contains("truncated or corrupt"));
        }
    }
    // A SAM line whose CIGAR and sequence disagree: record 2.
    diffbio::test::require_parse_error([&] { read_all(data_file("aln_bad_cigar.sam")); }, data_file("aln_bad_cigar.sam"),
                                       2, "record 2");
    CHECK_THROWS_AS(io::AlignmentReader(data_file("does_not_exist.bam")), Error);
    CHECK_THROWS_WITH(io::AlignmentReader(data_file("does_not_exist.bam")), Contains("does_not_exist.bam"));
    CHECK_THROWS_AS(io::AlignmentReader(data_file("valid.fq")), ParseError);
    CHECK_THROWS_AS(io::AlignmentReader(sam, {.threads = -1}), InvalidArgument);
    // A batch of other contigs cannot be appended to.
    AlignedBatch other;
    other.contigs = {{"x", 5}};
    io::AlignmentReader r(sam);
    CHECK_THROWS_AS(r.read_all(other), InvalidArgument);
}

TEST_CASE("AlignmentReader: skip_unmapped drops an unmapped read placed at its mate's position", "[io][alignment]") {
    // Pairs with one unmapped mate: the unmapped read carries its mate's contig and position
    // (SAM spec 2.4), so it has a contig id and only its flag says that it is unmapped.
    ScratchFile sam("aln_placed.sam");
    diffbio::test::spit(sam.path(), "@SQ\tSN:ref\tLN:30\n"
                                    "m1\t73\tref\t5\t30\t5M\t=\t5\t0\tACGTA\tIIIII\n"
                                    "u1\t133\tref\t5\t0\t*\t=\t5\t0\tCCGTT\tIIIII\n");
    io::AlignmentReader all(sam.path());
    AlignedBatch b;
    CHECK(all.read_all(b) == 2);
    CHECK(all.records() == 2);
    CHECK(b.unmapped(1));
    CHECK(b.contig[1] == 0);
    io::AlignmentReader mapped(sam.path(), {.skip_unmapped = true});
    AlignedBatch m;
    CHECK(mapped.read_all(m) == 1);
    CHECK(mapped.records() == 1);
    CHECK(m.name(0) == "m1");
}

TEST_CASE("AlignmentReader: SEQ '*' gives unknown bases, a CIGAR longer than a stored SEQ is a ParseError",
          "[io][alignment][errors]") {
    // Found by fuzz_sam_pileup: a mapped record without a stored sequence left the batch with no
    // bases for the query positions its CIGAR walks over (the pileup then read past the arrays).
    ScratchFile noseq("aln_noseq.sam");
    diffbio::test::spit(noseq.path(), "@SQ\tSN:ref\tLN:30\n"
                                      "r1\t0\tref\t1\t30\t20M\t*\t0\t0\t*\t*\n"
                                      "r2\t0\tref\t5\t30\t2S8M1I1D5M\t*\t0\t0\t*\t*\n");
    const AlignedBatch b = read_all(noseq.path());
    REQUIRE(b.num_reads() == 2);
    REQUIRE(b.read_length(0) == 20);
    REQUIRE(b.read_length(1) == 16); // 2 clipped + 8 + 1 inserted + 5
    CHECK(b.num_bases() == 36);
    for (std::uint8_t c : b.bases) CHECK(c == 4);
    for (std::uint8_t q : b.qualities) CHECK(q == missing_quality);
    CHECK(b.ref_end[1] == 4 + 8 + 1 + 5);

    // A BAM record whose CIGAR (12M) consumes more bases than its sequence holds (10): htslib
    // writes it as given, and its reader (1.16) rejects it; AlignmentReader::append checks the
    // same for readers that do not. Either way a ParseError names record 2.
    ScratchFile sam("aln_len.sam"), bam("aln_len.bam");
    diffbio::test::spit(sam.path(), "@SQ\tSN:ref\tLN:30\n"
                                    "ok\t0\tref\t1\t30\t10M\t*\t0\t0\tACGTACGTAC\tIIIIIIIIII\n"
                                    "bad\t0\tref\t1\t30\t10M\t*\t0\t0\tACGTACGTAC\tIIIIIIIIII\n");
    {
        samFile* fi = sam_open(sam.path().c_str(), "r");
        REQUIRE(fi != nullptr);
        sam_hdr_t* h = sam_hdr_read(fi);
        samFile* fo = sam_open(bam.path().c_str(), "wb");
        REQUIRE((h != nullptr && fo != nullptr));
        REQUIRE(sam_hdr_write(fo, h) == 0);
        bam1_t* r = bam_init1();
        for (int k = 0; k < 2; ++k) {
            REQUIRE(sam_read1(fi, h, r) >= 0);
            if (k == 1) bam_get_cigar(r)[0] = bam_cigar_gen(12, BAM_CMATCH);
            REQUIRE(sam_write1(fo, h, r) >= 0);
        }
        bam_destroy1(r);
        REQUIRE(sam_close(fo) == 0);
        sam_hdr_destroy(h);
        sam_close(fi);
    }
    try {
        read_all(bam.path());
        FAIL("a record with a 12M CIGAR over 10 bases was accepted");
    } catch (const ParseError& e) {
        CHECK(e.file() == bam.path());
        CHECK(e.line() == 2);
    }
}
