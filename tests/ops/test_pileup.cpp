// DifferentiablePileup: hand-computed pileups (insertions, deletions, soft clips, reverse strand,
// N bases, reads over the region's ends, other contigs, unmapped reads), quality weights, read
// weights, gates and soft bases, the softmax option, Cpu vs CpuParallel, and gradients (Dual vs
// Var vs finite differences) with respect to every input and both quality parameters.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/ops/variant/pileup.hpp>

#include "expect_ad.hpp"

using namespace diffbio;
using Catch::Matchers::Contains;

namespace {

std::vector<std::uint32_t> cig(std::initializer_list<std::pair<char, std::uint32_t>> ops) {
    std::vector<std::uint32_t> out;
    for (const auto& [c, n] : ops) {
        CigarOp op = CigarOp::Match;
        switch (c) {
        case 'M': op = CigarOp::Match; break;
        case 'I': op = CigarOp::Insertion; break;
        case 'D': op = CigarOp::Deletion; break;
        case 'N': op = CigarOp::RefSkip; break;
        case 'S': op = CigarOp::SoftClip; break;
        case 'H': op = CigarOp::HardClip; break;
        case '=': op = CigarOp::SeqMatch; break;
        case 'X': op = CigarOp::SeqMismatch; break;
        default: FAIL("bad op");
        }
        out.push_back(cigar_pack(op, n));
    }
    return out;
}

std::vector<std::uint8_t> quals(std::initializer_list<int> q) {
    std::vector<std::uint8_t> out;
    for (int x : q) out.push_back(static_cast<std::uint8_t>(x));
    return out;
}

// chr1 (100 bp), chr2 (50 bp). Region [3, 12) of chr1 in most tests.
//  r0  chr1:2  2S3M1I2M2D3M  TT ACG T CA GGA  forward   A@2 C@3 G@4(Q40) +T(after 4) C@5 A@6 del 7,8 G@9 G@10 A@11
//  r1  chr1:4  1H4M          GNCA             reverse   G@4 N@5 C@6 A@7
//  r2  chr2:0  3M            AAA                        other contig
//  r3  chr1:3  3M            CCC              unmapped  (flag 4)
//  r4  chr1:9  5M            TTTTT                      T@9..13 (12, 13 outside the region)
//  r5  chr1:5  2M3N2=1X      ACGTA                      A@5 C@6, skip 7-9, G@10 T@11 A@12
AlignedBatch small_batch() {
    AlignedBatch b;
    b.contigs = {{"chr1", 100}, {"chr2", 50}};
    b.add("r0", 0, 2, 60, 0, cig({{'S', 2}, {'M', 3}, {'I', 1}, {'M', 2}, {'D', 2}, {'M', 3}}), "TTACGTCAGGA",
          quals({10, 10, 20, 30, 40, 5, 20, 30, 0, 10, 20}));
    b.add("r1", 0, 4, 30, sam_flag::reverse, cig({{'H', 3}, {'M', 4}}), "GNCA", quals({20, 20, 20, 20}));
    b.add("r2", 1, 0, 60, 0, cig({{'M', 3}}), "AAA", quals({30, 30, 30}));
    b.add("r3", 0, 3, 0, sam_flag::unmapped, cig({{'M', 3}}), "CCC", quals({30, 30, 30}));
    b.add("r4", 0, 9, 60, 0, cig({{'M', 5}}), "TTTTT", quals({30, 30, 30, 30, 30}));
    b.add("r5", 0, 5, 60, 0, cig({{'M', 2}, {'N', 3}, {'=', 2}, {'X', 1}}), "ACGTA", quals({25, 25, 25, 25, 25}));
    return b;
}

const ops::PileupRegion region{0, 3, 12};

ops::PileupConfig hard() {
    ops::PileupConfig c;
    c.use_quality_weights = false;
    return c;
}

template <class T>
auto make_binder() {
    if constexpr (std::is_same_v<T, ad::Var>) {
        return ad::Binder<ad::Var>(ad::Tape::active());
    } else {
        return ad::Binder<T>{};
    }
}

} // namespace

TEST_CASE("AlignedBatch: CIGAR walk, reference positions, validation", "[ops][pileup][aligned-batch]") {
    const AlignedBatch b = small_batch();
    REQUIRE(b.num_reads() == 6);
    CHECK(b.num_bases() == 11 + 4 + 3 + 3 + 5 + 5);
    CHECK(b.ref_end[0] == 12);
    CHECK(b.ref_end[5] == 13);
    CHECK(b.cigar_string(0) == "2S3M1I2M2D3M");
    CHECK(b.name(4) == "r4");
    CHECK(b.reverse(1));
    CHECK_FALSE(b.reverse(0));
    CHECK(b.unmapped(3));
    const std::vector<std::int64_t> pos0{-1, -1, 2, 3, 4, -1, 5, 6, 9, 10, 11};
    CHECK(b.reference_positions(0) == pos0);
    CHECK(b.read_bases(1)[1] == 4); // N
    const AlignedBatch c = small_batch();
    AlignedBatch bad;
    bad.contigs = {{"chr1", 100}};
    CHECK_THROWS_AS(bad.add("x", 0, 0, 0, 0, cig({{'M', 4}}), "ACG", {}), ShapeError);
    CHECK_THROWS_AS(bad.add("x", 0, 0, 0, 0, cig({{'M', 3}}), "ACG", quals({1, 2})), ShapeError);
    CHECK_THROWS_WITH(bad.add("x", 3, 0, 0, 0, cig({{'M', 3}}), "ACG", {}), Contains("contig id 3"));
    CHECK(c.num_reads() == 6);
}

TEST_CASE("Pileup: hand-computed hard counts with indels, clips, N, region ends", "[ops][pileup]") {
    const AlignedBatch b = small_batch();
    ops::DifferentiablePileup pile(hard());
    ad::Binder<double> bind;
    const auto r = pile.apply(bind, b, region);
    REQUIRE(r.length() == 9);
    // positions 3..11; columns A C G T
    const std::vector<double> counts{
        0, 1, 0, 0, // 3: C (r0)                   [r3 unmapped]
        0, 0, 2, 0, // 4: G (r0), G (r1)
        1, 1, 0, 0, // 5: C (r0), N (r1), A (r5)
        1, 2, 0, 0, // 6: A (r0), C (r1), C (r5)
        1, 0, 0, 0, // 7: deleted in r0, A (r1), skipped in r5
        0, 0, 0, 0, // 8: deleted in r0, skipped in r5
        0, 0, 1, 1, // 9: G (r0), T (r4), skipped in r5
        0, 0, 2, 1, // 10: G (r0), T (r4), G (r5)
        1, 0, 0, 2, // 11: A (r0), T (r4), T (r5)
    };
    CHECK(r.counts == counts);
    CHECK(r.deletions == std::vector<double>{0, 0, 0, 0, 1, 1, 0, 0, 0});
    CHECK(r.insertions == std::vector<double>{0, 1, 0, 0, 0, 0, 0, 0, 0});
    CHECK(r.coverage == std::vector<double>{1, 2, 3, 3, 1, 0, 2, 3, 3});
    // frequencies: counts / Σ_c counts; the N at 5 is in coverage, not in the base total
    CHECK(r.frequencies[4 * 2 + 0] == Approx(0.5));
    CHECK(r.frequencies[4 * 2 + 1] == Approx(0.5));
    CHECK(r.frequencies[4 * 3 + 1] == Approx(2.0 / 3.0));
    for (std::size_t k = 0; k < 4; ++k) CHECK(r.frequencies[4 * 5 + k] == 0.0); // uncovered
    CHECK(r.frequencies[4 * 0 + 1] == 1.0); // a pure column stays pure (no softmax flattening)

    SECTION("N as uniform") {
        auto cfg = hard();
        cfg.n_as_uniform = true;
        const auto u = ops::DifferentiablePileup(cfg).apply(bind, b, region);
        CHECK(u.counts[4 * 2 + 0] == 1.25);
        CHECK(u.counts[4 * 2 + 1] == 1.25);
        CHECK(u.counts[4 * 2 + 2] == 0.25);
        CHECK(u.counts[4 * 2 + 3] == 0.25);
    }
    SECTION("a region at the contig start and a region on another contig") {
        const auto s = pile.apply(bind, b, {0, 0, 4});
        CHECK(s.counts == std::vector<double>{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0});
        const auto c2 = pile.apply(bind, b, {1, 0, 50});
        CHECK(c2.counts[0] == 1.0);
        CHECK(c2.counts[4 * 2] == 1.0);
        CHECK(c2.coverage[3] == 0.0);
    }
    SECTION("mean quality") {
        // pos 4: r0's G (Q 40) and r1's G (Q 20), hard weights → (40 + 20) / 2
        CHECK(r.mean_quality[1] == Approx(30.0));
        CHECK(r.quality_sum[1] == 60.0);
        CHECK(r.mean_quality[5] == 0.0);
    }
}

TEST_CASE("Pileup: quality weights 1 - 10^(-Q/10), read weights, gates, soft bases", "[ops][pileup]") {
    const AlignedBatch b = small_batch();
    auto qw = [](double q) { return 1.0 - std::pow(10.0, -q / 10.0); };
    ad::Binder<double> bind;
    SECTION("quality weights") {
        ops::DifferentiablePileup pile;
        const auto r = pile.apply(bind, b, region);
        // pos 4: G from r0 (Q 40) and r1 (Q 20)
        CHECK(r.counts[4 * 1 + 2] == Approx(qw(40) + qw(20)).epsilon(1e-14));
        // pos 9: G from r0 (Q 0 → weight 0), T from r4 (Q 30)
        CHECK(r.counts[4 * 6 + 2] == 0.0);
        CHECK(r.counts[4 * 6 + 3] == Approx(qw(30)));
        CHECK(r.frequencies[4 * 6 + 3] == Approx(1.0));
        CHECK(r.mean_quality[1] == Approx((40 * qw(40) + 20 * qw(20)) / (qw(40) + qw(20))));
        // deletions and insertions do not carry base qualities
        CHECK(r.deletions[4] == 1.0);
        CHECK(r.insertions[1] == 1.0);
    }
    SECTION("learnable transform a, b") {
        ops::PileupConfig cfg;
        cfg.quality_scale = 0.5;
        cfg.quality_offset = 3.0;
        const auto r = ops::DifferentiablePileup(cfg).apply(bind, b, region);
        CHECK(r.counts[4 * 1 + 2] == Approx(qw(0.5 * 40 + 3) + qw(0.5 * 20 + 3)).epsilon(1e-14));
        cfg.quality_offset = -40.0; // every weight clamps to 0
        const auto z = ops::DifferentiablePileup(cfg).apply(bind, b, region);
        for (double c : z.counts) CHECK(c == 0.0);
    }
    SECTION("read weights, gates and soft bases") {
        ops::DifferentiablePileup pile(hard());
        const std::vector<double> rho{0.5, 2.0, 7.0, 9.0, 0.25, 1.5};
        std::vector<double> gates(b.num_bases(), 1.0);
        gates[4] = 0.1; // r0's G at position 4
        std::vector<double> soft(b.num_bases() * 4, 0.0);
        for (std::size_t m = 0; m < b.num_bases(); ++m) soft[4 * m + (b.bases[m] < 4 ? b.bases[m] : 0)] = 1.0;
        soft[4 * 12 + 0] = 0.1; // r1's N at position 5 as a soft row
        soft[4 * 12 + 1] = 0.2;
        soft[4 * 12 + 2] = 0.3;
        soft[4 * 12 + 3] = 0.4;
        ops::PileupInputs<double, double, double> in{rho, gates, soft};
        const auto r = pile.apply(bind, b, region, in);
        CHECK(r.counts[4 * 1 + 2] == Approx(0.5 * 0.1 + 2.0));
        CHECK(r.counts[4 * 2 + 0] == Approx(2.0 * 0.1 + 1.5));
        CHECK(r.counts[4 * 2 + 1] == Approx(2.0 * 0.2 + 0.5));
        CHECK(r.counts[4 * 2 + 3] == Approx(2.0 * 0.4));
        CHECK(r.deletions[4] == 0.5);
        CHECK(r.insertions[1] == 0.5);
        CHECK(r.counts[4 * 8 + 3] == Approx(0.25 + 1.5));
        CHECK_THROWS_AS(pile.apply(bind, b, region, ops::PileupInputs<double, double, double>{std::span(rho).first(3), {}, {}}),
                        ShapeError);
        CHECK_THROWS_AS(pile.apply(bind, b, region, ops::PileupInputs<double, double, double>{{}, std::span(gates).first(3), {}}),
                        ShapeError);
        gates[7] = std::nan("");
        CHECK_THROWS_WITH(pile.apply(bind, b, region, ops::PileupInputs<double, double, double>{rho, gates, soft}),
                          Contains("DifferentiablePileup: gates entry 7 is not finite (nan)"));
        gates[7] = 1.0;
        soft[4 * 2 + 1] = -std::numeric_limits<double>::infinity();
        CHECK_THROWS_WITH(pile.apply(bind, b, region, ops::PileupInputs<double, double, double>{rho, gates, soft}),
                          Contains("soft_bases entry 9 is not finite (-inf)"));
    }
}

TEST_CASE("Pileup: softmax option and region validation", "[ops][pileup]") {
    const AlignedBatch b = small_batch();
    ad::Binder<double> bind;
    auto cfg = hard();
    cfg.apply_softmax = true;
    const auto r = ops::DifferentiablePileup(cfg).apply(bind, b, region);
    // DiffBio's quirk, now an option: a pure column [0,1,0,0] at T = 1
    const double e = std::exp(1.0);
    CHECK(r.frequencies[1] == Approx(e / (e + 3.0)));
    CHECK(r.frequencies[0] == Approx(1.0 / (e + 3.0)));
    for (std::size_t k = 0; k < 4; ++k) CHECK(r.frequencies[4 * 5 + k] == Approx(0.25));
    // T → 0, even where 1/T overflows in float (below 2.9e-39): the hard argmax, a tie shared,
    // never 0·∞ = NaN
    for (const double t : {1e-300, 1e-50, 1e-6}) {
        cfg.temperature = t;
        const auto hd = ops::DifferentiablePileup(cfg).apply(bind, b, region);
        ad::Binder<float> fbind;
        const auto hf = ops::DifferentiablePileup(cfg).apply(fbind, b, region);
        for (const std::size_t k : {0, 2, 3}) CHECK(hd.frequencies[k] == 0.0);
        CHECK(hd.frequencies[1] == 1.0);
        CHECK(hf.frequencies[1] == 1.0f);
        for (std::size_t k = 0; k < 4; ++k) CHECK(hd.frequencies[4 * 5 + k] == 0.25);
        for (std::size_t k = 0; k < 4; ++k) CHECK(hf.frequencies[4 * 5 + k] == 0.25f);
    }

    ops::DifferentiablePileup pile;
    CHECK_THROWS_WITH(pile.apply(bind, b, {2, 0, 10}), Contains("contig 2"));
    CHECK_THROWS_WITH(pile.apply(bind, b, {0, 5, 5}), Contains("chr1"));
    CHECK_THROWS_AS(pile.apply(bind, b, {0, 90, 101}), InvalidArgument);
    CHECK_THROWS_AS(ops::DifferentiablePileup({.temperature = 0.0}), InvalidArgument);
    CHECK_THROWS_AS(ops::DifferentiablePileup({.quality_scale = std::nan("")}), InvalidArgument);
}

TEST_CASE("Pileup: CpuParallel equals Cpu bit for bit; float close to double", "[ops][pileup][parallel]") {
    // A larger random batch: 400 reads of 30..80 bases with random CIGARs on a 600 bp contig.
    AlignedBatch b;
    b.contigs = {{"c", 600}};
    std::uint64_t s = 12345;
    auto rnd = [&](std::uint64_t n) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return (s >> 33) % n;
    };
    for (int i = 0; i < 400; ++i) {
        std::vector<std::uint32_t> ops;
        std::string seq;
        std::vector<std::uint8_t> q;
        auto add_bases = [&](std::size_t n) {
            for (std::size_t k = 0; k < n; ++k) {
                seq.push_back("ACGTN"[rnd(5)]);
                q.push_back(static_cast<std::uint8_t>(rnd(42)));
            }
        };
        if (rnd(3) == 0) {
            ops.push_back(cigar_pack(CigarOp::SoftClip, 3));
            add_bases(3);
        }
        const int blocks = 1 + static_cast<int>(rnd(3));
        std::int64_t rlen = 0;
        for (int k = 0; k < blocks; ++k) {
            const auto m = static_cast<std::uint32_t>(10 + rnd(20));
            ops.push_back(cigar_pack(CigarOp::Match, m));
            add_bases(m);
            rlen += m;
            if (k + 1 < blocks) {
                const auto kind = rnd(2);
                const auto len = static_cast<std::uint32_t>(1 + rnd(3));
                ops.push_back(cigar_pack(kind == 0 ? CigarOp::Insertion : CigarOp::Deletion, len));
                if (kind == 0) {
                    add_bases(len);
                } else {
                    rlen += len;
                }
            }
        }
        const auto start = static_cast<std::int64_t>(rnd(static_cast<std::uint64_t>(600 - rlen)));
        b.add(std::string("r").append(std::to_string(i)), 0, start, 60, static_cast<std::uint16_t>(rnd(2) ? sam_flag::reverse : 0), ops, seq, q);
    }
    std::vector<double> rho(b.num_reads());
    for (std::size_t i = 0; i < rho.size(); ++i) rho[i] = 0.5 + 0.001 * static_cast<double>(i);
    ops::DifferentiablePileup pile;
    ad::Binder<double> bind;
    const ops::PileupRegion reg{0, 17, 583};
    ops::PileupInputs<double, double, double> in{rho, {}, {}};
    const auto serial = pile.apply(bind, b, reg, in);
    for (int threads : {2, 3, 7}) {
        const auto par = pile.apply(bind, b, reg, in, exec::CpuParallel{threads});
        CHECK(par.counts == serial.counts);
        CHECK(par.deletions == serial.deletions);
        CHECK(par.insertions == serial.insertions);
        CHECK(par.coverage == serial.coverage);
        CHECK(par.mean_quality == serial.mean_quality);
    }
    ad::Binder<float> fb;
    std::vector<float> rhof(rho.begin(), rho.end());
    const auto f = pile.apply(fb, b, reg, ops::PileupInputs<float, float, float>{rhof, {}, {}});
    for (std::size_t k = 0; k < serial.counts.size(); ++k) CHECK(f.counts[k] == Approx(serial.counts[k]).epsilon(1e-5).margin(1e-5));

    // Var forward + backward is the same on both policies (up to summation order of a, b).
    auto grads = [&](auto policy) {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bv(tape);
        const auto rv = tape.variables(rho);
        const auto r = pile.apply(bv, b, reg, ops::PileupInputs<ad::Var, double, double>{rv, {}, {}}, policy);
        ad::Var loss = 0.0;
        for (std::size_t k = 0; k < r.counts.size(); ++k) loss += r.counts[k] * (1.0 + 0.01 * static_cast<double>(k % 13));
        for (std::size_t p = 0; p < r.length(); ++p) loss += r.deletions[p] * 0.3 + r.insertions[p] * 0.7 + r.mean_quality[p] * 0.01;
        tape.backward(loss);
        std::vector<double> g(rho.size());
        tape.adjoints(rv, g);
        pile.quality_scale().zero_grad();
        pile.quality_offset().zero_grad();
        bv.accumulate_grad();
        g.push_back(pile.quality_scale().grad()[0]);
        g.push_back(pile.quality_offset().grad()[0]);
        return g;
    };
    const auto gs = grads(exec::Cpu{});
    const auto gp = grads(exec::CpuParallel{3});
    REQUIRE(gs.size() == gp.size());
    for (std::size_t k = 0; k < gs.size(); ++k) CHECK(gp[k] == Approx(gs[k]).epsilon(1e-12));
}

TEST_CASE("Pileup gradients: read weights, gates, soft bases (Dual, Var, finite differences)", "[ops][pileup][grad]") {
    // With soft bases, and without: then the kernel takes each base's code (r1 holds an N, counted
    // as 1/4 of each base with n_as_uniform, else only in the coverage).
    const AlignedBatch b = small_batch();
    const std::size_t N = b.num_reads(), M = b.num_bases();
    for (bool soft : {true, false}) {
        std::vector<double> x;
        for (std::size_t i = 0; i < N; ++i) x.push_back(0.6 + 0.1 * static_cast<double>(i));
        for (std::size_t m = 0; m < M; ++m) x.push_back(0.3 + 0.02 * static_cast<double>(m));
        for (std::size_t m = 0; soft && m < M; ++m) {
            for (std::size_t c = 0; c < 4; ++c) x.push_back(0.1 + 0.05 * static_cast<double>((m + 3 * c) % 7));
        }
        for (bool n_uniform : {false, true}) {
            for (bool softmax : {false, true}) {
                INFO("soft bases " << soft << ", n_as_uniform " << n_uniform << ", softmax " << softmax);
                ops::PileupConfig cfg;
                cfg.n_as_uniform = n_uniform;
                cfg.apply_softmax = softmax;
                cfg.temperature = 0.7;
                ops::DifferentiablePileup pile(cfg);
                auto f = [&](auto xs) {
                    using T = std::remove_cv_t<typename decltype(xs)::element_type>;
                    auto bind = make_binder<T>();
                    const std::span<const T> sb = soft ? std::span<const T>(xs.subspan(N + M, 4 * M)) : std::span<const T>();
                    ops::PileupInputs<T, T, T> in{xs.first(N), xs.subspan(N, M), sb};
                    const auto r = pile.apply(bind, b, region, in);
                    std::vector<T> out;
                    for (const auto* v : {&r.counts, &r.coverage, &r.quality_sum, &r.deletions, &r.insertions,
                                          &r.frequencies, &r.mean_quality}) {
                        out.insert(out.end(), v->begin(), v->end());
                    }
                    return out;
                };
                diffbio::test::AdTolerance tol;
                tol.float_rel = 1e-4;
                diffbio::test::expect_ad(f, x, tol);
            }
        }
    }
}

TEST_CASE("Pileup gradients: quality transform parameters a, b", "[ops][pileup][grad]") {
    const AlignedBatch b = small_batch();
    auto loss_of = [&](auto& bind, const ops::DifferentiablePileup& pile) {
        const auto r = pile.apply(bind, b, region);
        using R = std::decay_t<decltype(r.counts[0])>;
        R s = R(0.0);
        for (std::size_t k = 0; k < r.counts.size(); ++k) s = s + r.counts[k] * (1.0 + 0.1 * static_cast<double>(k));
        for (std::size_t p = 0; p < r.length(); ++p) s = s + r.mean_quality[p] * 0.05 + r.frequencies[4 * p + 2] * 0.5;
        return s;
    };
    ops::PileupConfig cfg;
    cfg.quality_scale = 0.8;
    cfg.quality_offset = 1.5;
    ops::DifferentiablePileup pile(cfg);
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    ad::Binder<ad::Var> bv(tape);
    tape.backward(loss_of(bv, pile));
    bv.accumulate_grad();
    const double ga = pile.quality_scale().grad()[0], gb = pile.quality_offset().grad()[0];
    ad::Binder<ad::Dual<double>> bd;
    bd.seed(pile.quality_scale(), 0);
    const double fa = loss_of(bd, pile).tangent;
    ad::Binder<ad::Dual<double>> bd2;
    bd2.seed(pile.quality_offset(), 0);
    const double fb = loss_of(bd2, pile).tangent;
    auto at = [&](double a, double o) {
        ops::PileupConfig c2 = cfg;
        c2.quality_scale = a;
        c2.quality_offset = o;
        ad::Binder<double> b0;
        return loss_of(b0, ops::DifferentiablePileup(c2));
    };
    const double h = 1e-6;
    const double da = (at(0.8 + h, 1.5) - at(0.8 - h, 1.5)) / (2 * h);
    const double db = (at(0.8, 1.5 + h) - at(0.8, 1.5 - h)) / (2 * h);
    CHECK(ga != 0.0);
    CHECK(gb != 0.0);
    CHECK(ga == Approx(fa).epsilon(1e-10));
    CHECK(gb == Approx(fb).epsilon(1e-10));
    CHECK(ga == Approx(da).epsilon(1e-6));
    CHECK(gb == Approx(db).epsilon(1e-6));
    CHECK(pile.parameters().size() == 2);
    CHECK(ops::DifferentiablePileup(hard()).parameters().empty());
}

TEST_CASE("Pileup: indels at region boundaries, unanchored insertions", "[ops][pileup]") {
    AlignedBatch b;
    b.contigs = {{"chr1", 100}};
    const std::vector<std::uint8_t> q9(9, 30);
    //  rb1 chr1:1 3M2D4M   A@1..3, deleted 4 5, C@6..9
    //  rb2 chr1:3 4M1I3M   G@3..6, +T after 6, A@7..9
    //  rb3 chr1:10 2S2I5M  an insertion before any aligned base: anchored nowhere; C@10..14
    //  rb4 chr1:4 3M1I2M   A@4..6, +T after 6, G@7 8
    b.add("rb1", 0, 1, 60, 0, cig({{'M', 3}, {'D', 2}, {'M', 4}}), "AAACCCC", std::span(q9).first(7));
    b.add("rb2", 0, 3, 60, 0, cig({{'M', 4}, {'I', 1}, {'M', 3}}), "GGGGTAAA", std::span(q9).first(8));
    b.add("rb3", 0, 10, 60, 0, cig({{'S', 2}, {'I', 2}, {'M', 5}}), "TTGGCCCCC", std::span(q9).first(9));
    b.add("rb4", 0, 4, 60, 0, cig({{'M', 3}, {'I', 1}, {'M', 2}}), "AAATGG", std::span(q9).first(6));
    ops::DifferentiablePileup pile(hard());
    ad::Binder<double> bind;
    const auto r = pile.apply(bind, b, {0, 5, 8});
    CHECK(r.counts == std::vector<double>{1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0});
    CHECK(r.deletions == std::vector<double>{1, 0, 0});
    CHECK(r.insertions == std::vector<double>{0, 2, 0});
    CHECK(r.coverage == std::vector<double>{2, 3, 3});
    // The insertions' anchor (6) is outside [7, 9): nothing, though the reads continue inside.
    const auto s = pile.apply(bind, b, {0, 7, 9});
    CHECK(s.insertions == std::vector<double>{0, 0});
    CHECK(s.counts == std::vector<double>{1, 1, 1, 0, 1, 1, 1, 0});
    // rb3's leading insertion is counted nowhere; its bases are.
    const auto t = pile.apply(bind, b, {0, 0, 20});
    double ins = 0.0;
    for (double v : t.insertions) ins += v;
    CHECK(ins == 2.0);
    CHECK(t.insertions[6] == 2.0);
    CHECK(t.counts[4 * 10 + 1] == 1.0);
    CHECK(t.counts[4 * 14 + 1] == 1.0);
    CHECK(t.coverage[15] == 0.0);
    // The same on CpuParallel with more threads than positions.
    const auto u = pile.apply(bind, b, {0, 5, 8}, exec::CpuParallel{8});
    CHECK(u.counts == r.counts);
    CHECK(u.insertions == r.insertions);
    CHECK(u.deletions == r.deletions);
}

TEST_CASE("Pileup on DiffBio-style gapless reads equals the direct segment sum", "[ops][pileup][gapless]") {
    // reads R [N × Lr × 4] at positions p (some hanging over either end), gates w [N × Lr]:
    // pile[r] = Σ_{p_n + l = r, 0 <= r < L} w_nl · R_nl, as DiffBio's segment sum.
    const std::size_t N = 7, Lr = 10;
    const std::int64_t L = 20;
    const std::vector<std::int64_t> pos{-3, 0, 4, 9, 12, 15, -12};
    const std::vector<std::uint32_t> len(N, Lr);
    const AlignedBatch b = ops::gapless_batch(L, pos, len);
    REQUIRE(b.num_bases() == N * Lr);
    std::vector<double> soft(N * Lr * 4), gates(N * Lr);
    for (std::size_t m = 0; m < N * Lr; ++m) {
        gates[m] = 0.2 + 0.01 * static_cast<double>(m);
        for (std::size_t c = 0; c < 4; ++c) soft[4 * m + c] = 0.05 + 0.1 * static_cast<double>((m * 3 + c) % 9);
    }
    std::vector<double> want(static_cast<std::size_t>(L) * 4, 0.0), cov(static_cast<std::size_t>(L), 0.0);
    for (std::size_t n = 0; n < N; ++n) {
        for (std::size_t l = 0; l < Lr; ++l) {
            const std::int64_t r = pos[n] + static_cast<std::int64_t>(l);
            if (r < 0 || r >= L) continue;
            const std::size_t m = n * Lr + l;
            for (std::size_t c = 0; c < 4; ++c) want[static_cast<std::size_t>(r) * 4 + c] += gates[m] * soft[4 * m + c];
            cov[static_cast<std::size_t>(r)] += gates[m];
        }
    }
    ad::Binder<double> bind;
    const auto got = ops::DifferentiablePileup(hard()).apply(bind, b, {0, 0, L},
                                                             ops::PileupInputs<double, double, double>{{}, gates, soft});
    REQUIRE(got.counts.size() == want.size());
    for (std::size_t k = 0; k < want.size(); ++k) CHECK(got.counts[k] == Approx(want[k]).epsilon(1e-14));
    for (std::size_t r = 0; r < cov.size(); ++r) CHECK(got.coverage[r] == Approx(cov[r]).epsilon(1e-14));
    CHECK_THROWS_AS(ops::gapless_batch(0, pos, len), InvalidArgument);
    CHECK_THROWS_AS(ops::gapless_batch(L, pos, std::span(len).first(3)), ShapeError);
}
