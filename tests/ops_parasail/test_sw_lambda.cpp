// Parity of ops::SmithWaterman with parasail on real read-vs-reference pairs: the first 1,000 reads
// of bowtie2's lambda phage example (Debian package bowtie2-examples: reads/reads_1.fq.gz, 10k
// simulated reads of mean length ~109 with sequencing errors and N calls, and
// reference/lambda_virus.fa.gz, 48,502 bp). Each case WARNs and passes when the package is absent.
//
// Pairs. Every read is placed on the reference by exact 16-mer seeding (k-mers of the read at
// offsets 0, 8, 16, ... looked up in a hash of every reference k-mer, forward strand first, then
// the reverse complement of the read); the first k-mer that occurs exactly once in the genome gives
// the diagonal pos = ref_pos − read_offset, and the pair is (read on that strand, reference window
// [pos − 30, pos + len + 30) clipped to the genome). Reads that seed nowhere are counted and left
// out.
//
// Scoring. Alphabet "ACGTN": 2 on the diagonal, −1 elsewhere (parasail_matrix_create("ACGTN", 2,
// −1) is the same matrix; the reference has no N, so an N of a read always scores −1). Affine gaps
// in parasail's convention: a gap of length k costs open + (k − 1)·extend, GapOpen{o} and
// GapExtend{e} being parasail's `open` and `gap`; two settings, (5, 2) and (3, 1).
//
// Checks on every seeded pair: the hard local affine score (hard = true, double and float) equals
// parasail_sw, parasail_sw_striped_16 and parasail_sw_striped_32 EXACTLY; the CIGAR of our hard
// traceback, re-scored by hand over the reported ranges, gives the same score; the soft score at
// τ = 1e-3 satisfies hard ≤ soft ≤ hard + τ·log N, where N bounds the number of local alignments:
// the soft local score is the exact τ·log Σ_a e^{score(a)/τ} over every local alignment a (each
// alignment is one path of the three-state DP) plus the empty one; an alignment is a start cell
// (≤ m·n choices) and a string of at most m + n operations M/I/D (< 1.5·3^{m+n} strings), so
// N ≤ 1 + 1.5·m·n·3^{m+n} and log N ≤ log(1 + 1.5·m·n) + (m + n)·log 3.

#include <catch2/catch.hpp>

#include <parasail.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#if DIFFBIO_HAVE_ZLIB
#include <zlib.h>
#endif

#include <diffbio/ops/alignment/smith_waterman.hpp>

#ifndef DIFFBIO_BOWTIE2_EXAMPLES_DIR
#define DIFFBIO_BOWTIE2_EXAMPLES_DIR "/usr/share/doc/bowtie2/examples"
#endif

using namespace diffbio;
using ops::GapExtend;
using ops::GapOpen;
using ops::SmithWaterman;
using ops::SmithWatermanConfig;

#if DIFFBIO_HAVE_ZLIB
namespace {

namespace fs = std::filesystem;

/// All lines of a gzip (or plain) text file, without line ends.
std::vector<std::string> read_gz_lines(const std::string& path, std::size_t max_lines) {
    gzFile f = gzopen(path.c_str(), "rb");
    REQUIRE(f != nullptr);
    std::vector<std::string> lines;
    std::string cur;
    char buf[1 << 14];
    while (lines.size() < max_lines) {
        const int got = gzread(f, buf, sizeof buf);
        REQUIRE(got >= 0);
        if (got == 0) break;
        for (int k = 0; k < got && lines.size() < max_lines; ++k) {
            if (buf[k] == '\n') {
                if (!cur.empty() && cur.back() == '\r') cur.pop_back();
                lines.push_back(std::move(cur));
                cur.clear();
            } else {
                cur.push_back(buf[k]);
            }
        }
    }
    if (!cur.empty() && lines.size() < max_lines) lines.push_back(cur);
    gzclose(f);
    return lines;
}

std::string upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

std::string reverse_complement(const std::string& s) {
    std::string r(s.rbegin(), s.rend());
    for (char& c : r) {
        switch (c) {
            case 'A': c = 'T'; break;
            case 'C': c = 'G'; break;
            case 'G': c = 'C'; break;
            case 'T': c = 'A'; break;
            default: c = 'N'; break;
        }
    }
    return r;
}

constexpr std::size_t kSeed = 16;
constexpr std::size_t kSeedStep = 8;
constexpr std::size_t kFlank = 30;

/// 2-bit code of a k-mer, or false when it holds a letter other than ACGT.
bool kmer_code(const std::string& s, std::size_t at, std::uint64_t& code) {
    code = 0;
    for (std::size_t k = 0; k < kSeed; ++k) {
        std::uint64_t v = 0;
        switch (s[at + k]) {
            case 'A': v = 0; break;
            case 'C': v = 1; break;
            case 'G': v = 2; break;
            case 'T': v = 3; break;
            default: return false;
        }
        code = (code << 2) | v;
    }
    return true;
}

struct Placed {
    std::string read;   ///< on the strand that seeded
    std::string window; ///< the reference window
    bool minus = false;
};

/// Exact k-mer seeding of reads on a genome (both strands), as described at the top.
class Seeder {
public:
    explicit Seeder(const std::string& genome) : genome_(genome) {
        std::uint64_t c = 0;
        for (std::size_t p = 0; p + kSeed <= genome_.size(); ++p) {
            if (!kmer_code(genome_, p, c)) continue;
            auto [it, fresh] = where_.try_emplace(c, static_cast<std::int64_t>(p));
            if (!fresh) it->second = -1; // repeated k-mer: not a unique seed
        }
    }

    bool place(const std::string& read, Placed& out) const {
        for (const bool minus : {false, true}) {
            const std::string r = minus ? reverse_complement(read) : read;
            std::uint64_t c = 0;
            for (std::size_t off = 0; off + kSeed <= r.size(); off += kSeedStep) {
                if (!kmer_code(r, off, c)) continue;
                const auto it = where_.find(c);
                if (it == where_.end() || it->second < 0) continue;
                const auto pos = it->second - static_cast<std::int64_t>(off);
                const auto lo = std::max<std::int64_t>(0, pos - static_cast<std::int64_t>(kFlank));
                const auto hi = std::min<std::int64_t>(static_cast<std::int64_t>(genome_.size()),
                                                       pos + static_cast<std::int64_t>(r.size() + kFlank));
                out.read = r;
                out.window = genome_.substr(static_cast<std::size_t>(lo), static_cast<std::size_t>(hi - lo));
                out.minus = minus;
                return true;
            }
        }
        return false;
    }

private:
    const std::string& genome_;
    std::unordered_map<std::uint64_t, std::int64_t> where_;
};

/// Scores of a CIGAR over the aligned ranges, summed by hand (independently of the DP).
double cigar_score(const ops::Alignment& al, const std::string& q, const std::string& t, const ops::SubstitutionMatrix& S,
                   double open, double extend, bool& consistent) {
    double score = 0.0;
    std::size_t i = al.query_begin, j = al.target_begin, num = 0;
    consistent = true;
    for (const char c : al.cigar) {
        if (c >= '0' && c <= '9') {
            num = num * 10 + static_cast<std::size_t>(c - '0');
            continue;
        }
        if (num == 0) consistent = false;
        if (c == 'M') {
            for (std::size_t k = 0; k < num; ++k, ++i, ++j) {
                if (i >= q.size() || j >= t.size()) {
                    consistent = false;
                    return score;
                }
                score += S(static_cast<std::size_t>(S.code(q[i])), static_cast<std::size_t>(S.code(t[j])));
            }
        } else if (c == 'I' || c == 'D') {
            score -= open + static_cast<double>(num - 1) * extend;
            (c == 'I' ? i : j) += num;
        } else {
            consistent = false;
        }
        num = 0;
    }
    if (num != 0 || i != al.query_end || j != al.target_end) consistent = false;
    return score;
}

ops::SubstitutionMatrix acgtn(double match, double mismatch) {
    std::vector<double> v(25);
    for (std::size_t a = 0; a < 5; ++a) {
        for (std::size_t b = 0; b < 5; ++b) v[a * 5 + b] = a == b ? match : mismatch;
    }
    return ops::SubstitutionMatrix("ACGTN", std::move(v));
}

} // namespace
#endif

TEST_CASE("parasail: 1,000 lambda reads vs their reference windows (bowtie2-examples)", "[parasail][sw][lambda]") {
#if !DIFFBIO_HAVE_ZLIB
    WARN("built without zlib (DIFFBIO_HAVE_ZLIB): skipping the bowtie2-examples lambda parity test");
#else
    const fs::path dir = DIFFBIO_BOWTIE2_EXAMPLES_DIR;
    const fs::path ref_path = dir / "reference" / "lambda_virus.fa.gz", reads_path = dir / "reads" / "reads_1.fq.gz";
    if (!fs::exists(ref_path) || !fs::exists(reads_path)) {
        WARN("bowtie2-examples not installed: skipping the lambda read parity test (" << ref_path.string() << ", "
                                                                                    << reads_path.string() << ")");
        return;
    }
    std::string genome;
    for (const std::string& line : read_gz_lines(ref_path.string(), static_cast<std::size_t>(-1))) {
        if (!line.empty() && line[0] != '>') genome += upper(line);
    }
    REQUIRE(genome.size() == 48502); // lambda phage, NC_001416.1
    REQUIRE(genome.find_first_not_of("ACGT") == std::string::npos);

    constexpr std::size_t kReads = 1000;
    const std::vector<std::string> lines = read_gz_lines(reads_path.string(), 4 * kReads);
    REQUIRE(lines.size() == 4 * kReads);
    const Seeder seeder(genome);
    std::vector<Placed> placed;
    std::size_t minus = 0, with_n = 0;
    for (std::size_t r = 0; r < kReads; ++r) {
        REQUIRE(lines[4 * r].rfind('@', 0) == 0);
        const std::string read = upper(lines[4 * r + 1]);
        REQUIRE(read.find_first_not_of("ACGTN") == std::string::npos);
        Placed p;
        if (!seeder.place(read, p)) continue;
        minus += p.minus;
        with_n += read.find('N') != std::string::npos;
        placed.push_back(std::move(p));
    }
    const std::size_t seeded = placed.size();
    // The reads are simulated from this genome: nearly all must seed (a read with an error every
    // 8 bp or fewer would not); both strands occur.
    CHECK(seeded >= 950);
    CHECK(minus > 0);
    CHECK(minus < seeded);

    const ops::SubstitutionMatrix S = acgtn(2.0, -1.0);
    parasail_matrix_t* pm = parasail_matrix_create("ACGTN", 2, -1);
    REQUIRE(pm != nullptr);
    std::vector<std::vector<std::uint8_t>> codes;
    codes.reserve(2 * seeded);
    for (const Placed& p : placed) {
        codes.push_back(S.encode(p.read));
        codes.push_back(S.encode(p.window));
    }
    std::vector<ops::CodePair> pairs;
    for (std::size_t k = 0; k < seeded; ++k) pairs.push_back({codes[2 * k], codes[2 * k + 1]});

    struct Gaps {
        int open, extend;
    };
    std::size_t hard_equal = 0, float_equal = 0, cigar_ok = 0, soft_ok = 0, total = 0, gapped = 0;
    double max_excess = 0.0, max_score = 0.0;
    for (const Gaps g : {Gaps{5, 2}, Gaps{3, 1}}) {
        const double o = g.open, e = g.extend;
        const SmithWaterman hard({.gap_open = GapOpen{o}, .gap_extend = GapExtend{e}, .hard = true}, S);
        ad::Binder<double> bd;
        ad::Binder<float> bf;
        const std::vector<double> ours = hard.apply(bd, pairs).score;
        const std::vector<float> ours_f = hard.apply(bf, pairs).score;
        const double tau = 1e-3;
        const SmithWaterman soft({.gap_open = GapOpen{o}, .gap_extend = GapExtend{e}, .temperature = tau}, S);
        const std::vector<double> soft_scores = soft.apply(bd, pairs).score;
        REQUIRE(ours.size() == seeded);
        REQUIRE(soft_scores.size() == seeded);
        for (std::size_t k = 0; k < seeded; ++k) {
            const std::string& q = placed[k].read;
            const std::string& t = placed[k].window;
            const int lq = static_cast<int>(q.size()), lt = static_cast<int>(t.size());
            parasail_result_t* r0 = parasail_sw(q.data(), lq, t.data(), lt, g.open, g.extend, pm);
            parasail_result_t* r16 = parasail_sw_striped_16(q.data(), lq, t.data(), lt, g.open, g.extend, pm);
            parasail_result_t* r32 = parasail_sw_striped_32(q.data(), lq, t.data(), lt, g.open, g.extend, pm);
            REQUIRE(r0 != nullptr);
            REQUIRE(r16 != nullptr);
            REQUIRE(r32 != nullptr);
            const int p0 = parasail_result_get_score(r0), p16 = parasail_result_get_score(r16),
                      p32 = parasail_result_get_score(r32);
            const bool saturated = parasail_result_is_saturated(r16) != 0;
            parasail_result_free(r0);
            parasail_result_free(r16);
            parasail_result_free(r32);
            INFO("read " << k << " (" << (placed[k].minus ? "minus" : "plus") << " strand, " << q.size()
                         << " bp, window " << t.size() << " bp), open " << g.open << ", extend " << g.extend);
            REQUIRE_FALSE(saturated);
            CHECK(p16 == p0);
            CHECK(p32 == p0);
            CHECK(ours[k] == double(p0));
            CHECK(double(ours_f[k]) == double(p0));
            hard_equal += ours[k] == double(p0) && p16 == p0 && p32 == p0;
            float_equal += double(ours_f[k]) == double(p0);
            max_score = std::max(max_score, ours[k]);

            // The hard traceback: its score and its CIGAR re-scored by hand.
            const ops::Alignment al = hard.traceback(pairs[k]);
            bool consistent = false;
            const double by_hand = cigar_score(al, q, t, S, o, e, consistent);
            CHECK(consistent);
            CHECK(al.score == ours[k]);
            CHECK(by_hand == ours[k]);
            cigar_ok += consistent && al.score == ours[k] && by_hand == ours[k];
            gapped += al.cigar.find_first_of("ID") != std::string::npos;

            // Soft at τ = 1e-3: hard ≤ soft ≤ hard + τ·log N (see the top of the file).
            const double m = static_cast<double>(q.size()), n = static_cast<double>(t.size());
            const double bound = tau * (std::log(1.0 + 1.5 * m * n) + (m + n) * std::log(3.0));
            const double excess = soft_scores[k] - ours[k];
            CHECK(excess >= -1e-9);
            CHECK(excess <= bound);
            soft_ok += excess >= -1e-9 && excess <= bound;
            max_excess = std::max(max_excess, excess);
            ++total;
        }
    }
    parasail_matrix_free(pm);
    CHECK(total == 2 * seeded);
    CHECK(hard_equal == total);
    CHECK(float_equal == total);
    CHECK(cigar_ok == total);
    CHECK(soft_ok == total);
    // Real reads against their own windows align well (not a random-pair regime), and some
    // optimal alignments use gaps, so the affine gap terms are exercised.
    CHECK(max_score > 100.0);
    CHECK(gapped > 0);
    WARN("lambda parity: " << seeded << " / " << kReads << " reads seeded (" << minus << " on the minus strand, "
                           << with_n << " with N); " << hard_equal << " / " << total
                           << " hard local affine scores equal parasail_sw, sw_striped_16 and sw_striped_32 "
                              "(open/extend 5/2 and 3/1); "
                           << float_equal << " float scores equal; " << cigar_ok << " CIGARs re-score to the score ("
                           << gapped << " with gaps); " << soft_ok << " soft scores (tau = 1e-3) within [hard, hard + "
                           << "tau log N], largest soft - hard = " << max_excess);
#endif
}
