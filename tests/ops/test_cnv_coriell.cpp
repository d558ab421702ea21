// CNVSegmentation on real array-CGH data: tests/data/cnv_coriell_extract.tsv holds the four
// (cell line, chromosome) series of DNAcopy's coriell data set (Debian r-bioc-dnacopy) on which
// DNAcopy's CBS finds a gain or a loss: smooth.CNA's log2 ratios, NA removed, in CNA()'s order
// (written by benchmarks/peers/cnv_coriell.sh with EXTRACT=...; no R needed here).
// The reference is CBS's segmentation of the same probes (segment() with default parameters,
// set.seed(25), DNAcopy 1.72.3), as probe runs within each chromosome:
//   c05296 chr10: [0,53) −0.017, [53,57) +0.351, [57,94) +0.516, [94,126) −0.008  → gain [53,94)
//   c05296 chr11: [0,51) +0.012, [51,66) −0.651, [66,185) +0.017                → loss [51,66)
//   c13330 chr1:  [0,31) +0.083, [31,82) −0.022, [82,129) +0.518               → gain [82,129)
//   c13330 chr4:  [0,150) −0.069, [150,167) −0.839                             → loss [150,167)
// (a CBS segment is a gain above +0.2, a loss below −0.2).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/nn/adam.hpp>
#include <diffbio/ops/variant/cnv.hpp>

using diffbio::ops::CNVSegmentation;
namespace ad = diffbio::ad;

namespace {

struct Series {
    std::string sample;
    int chrom = 0;
    std::vector<double> y;
    int call = 0;                        ///< CBS: +1 gain, −1 loss
    std::size_t cbs_start = 0, cbs_end = 0; ///< CBS's aberrant run [start, end)
};

std::filesystem::path extract_path() {
#ifdef DIFFBIO_TEST_DATA_DIR
    return std::filesystem::path(DIFFBIO_TEST_DATA_DIR) / "cnv_coriell_extract.tsv";
#else
    return std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "cnv_coriell_extract.tsv";
#endif
}

std::vector<Series> load() {
    std::vector<Series> s{{"c05296", 10, {}, +1, 53, 94},
                          {"c05296", 11, {}, -1, 51, 66},
                          {"c13330", 1, {}, +1, 82, 129},
                          {"c13330", 4, {}, -1, 150, 167}};
    std::ifstream in(extract_path());
    INFO("reading " << extract_path().string()
                    << " (located from __FILE__; define DIFFBIO_TEST_DATA_DIR when compiling from elsewhere)");
    REQUIRE(in.good());
    std::string line;
    std::getline(in, line); // header
    while (std::getline(in, line)) {
        std::stringstream ss(line);
        std::string sample;
        int chrom = 0;
        double pos = 0.0, y = 0.0;
        ss >> sample >> chrom >> pos >> y;
        REQUIRE(!ss.fail());
        bool placed = false;
        for (Series& x : s) {
            if (x.sample == sample && x.chrom == chrom) {
                x.y.push_back(y);
                placed = true;
            }
        }
        REQUIRE(placed);
    }
    const std::size_t sizes[] = {126, 185, 129, 167};
    for (std::size_t k = 0; k < s.size(); ++k) REQUIRE(s[k].y.size() == sizes[k]);
    return s;
}

/// Runs of non-neutral states of the Viterbi path: (start, end, +1 gain / −1 loss); neutral is
/// the state whose mean is closest to 0.
struct Run {
    std::size_t start, end;
    int call;
};
std::vector<Run> aberrations(const CNVSegmentation& cnv, const std::vector<double>& y) {
    const auto mu = cnv.state_means().values();
    std::size_t neutral = 0;
    for (std::size_t k = 1; k < mu.size(); ++k) {
        if (std::fabs(mu[k]) < std::fabs(mu[neutral])) neutral = k;
    }
    const auto path = cnv.viterbi(std::span<const double>(y));
    const auto segs = CNVSegmentation::segments(std::span<const std::size_t>(path), std::span<const double>(y));
    std::vector<Run> out;
    for (const auto& g : segs) {
        if (g.state != neutral) out.push_back({g.start, g.end, mu[g.state] > mu[neutral] ? 1 : -1});
    }
    return out;
}

void check_finds_cbs_aberrations(const CNVSegmentation& cnv, const std::vector<Series>& data) {
    for (const Series& s : data) {
        INFO(s.sample << " chr" << s.chrom);
        const auto runs = aberrations(cnv, s.y);
        REQUIRE(runs.size() == 1);
        CHECK(runs[0].call == s.call);
        CHECK(std::labs(static_cast<long>(runs[0].start) - static_cast<long>(s.cbs_start)) <= 2);
        CHECK(std::labs(static_cast<long>(runs[0].end) - static_cast<long>(s.cbs_end)) <= 2);
    }
}

} // namespace

TEST_CASE("CNVSegmentation on coriell: Viterbi with the default states finds CBS's gains and losses",
          "[variant][cnv][coriell]") {
    const auto data = load();
    CNVSegmentation cnv; // μ = (−1, 0, 0.585), σ = 0.2, λ = 10: nothing fitted
    check_finds_cbs_aberrations(cnv, data);
}

TEST_CASE("CNVSegmentation on coriell: fitting mu, log sigma, lambda on the HMM likelihood (fused node)",
          "[variant][cnv][coriell]") {
    const auto data = load();
    CNVSegmentation cnv;
    // ℓ = Σ_series F − n·log σ − (n/2)·log 2π − (n − 1)·log(1 + (K − 1)e^{−λ}) − log K, τ = 1
    diffbio::nn::Adam adam(cnv.parameters(), {.learning_rate = 0.02});
    const double K = 3.0, half_log_2pi = 0.5 * std::log(2.0 * std::numbers::pi);
    double first = 0.0, last = 0.0;
    for (int step = 0; step <= 200; ++step) {
        adam.zero_grad();
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        const ad::Var lsd = bind(cnv.log_noise_sd())[0], lam = bind(cnv.switch_penalty())[0];
        const ad::Var log_norm = log(1.0 + (K - 1.0) * exp(-lam));
        ad::Var ll = 0.0;
        for (const Series& s : data) {
            const auto r = cnv.apply(bind, std::span<const double>(s.y), 1.0);
            const double n = static_cast<double>(s.y.size());
            ll = ll + r.log_partition - n * lsd - n * half_log_2pi - (n - 1.0) * log_norm - std::log(K);
        }
        (step == 0 ? first : last) = tape.value(ll);
        if (step == 200) break;
        tape.backward(-ll);
        bind.accumulate_grad();
        adam.step();
    }
    CHECK(last > first);
    // The fitted levels are the data's: CBS's loss segments average −0.65 and −0.84, its gains
    // +0.50 and +0.52 (all four series here); the neutral level is near 0.
    const auto mu = cnv.state_means().values();
    CHECK(mu[0] > -0.9);
    CHECK(mu[0] < -0.6);
    CHECK(std::fabs(mu[1]) < 0.05);
    CHECK(mu[2] == Approx(0.51).margin(0.05));
    const double sd = std::exp(cnv.log_noise_sd().values()[0]);
    CHECK(sd > 0.05);
    CHECK(sd < 0.15);
    check_finds_cbs_aberrations(cnv, data);
    // The soft boundaries at τ = 1: every CBS breakpoint between different calls has boundary
    // probability mass ≥ 0.5 within ±1 probe.
    ad::Binder<double> plain;
    for (const Series& s : data) {
        const auto r = cnv.apply(plain, std::span<const double>(s.y), 1.0);
        for (std::size_t b : {s.cbs_start, s.cbs_end}) {
            if (b >= s.y.size()) continue;
            INFO(s.sample << " chr" << s.chrom << " breakpoint " << b);
            const double mass = r.boundaries[b - 1] + r.boundaries[b] + (b + 1 < s.y.size() ? r.boundaries[b + 1] : 0.0);
            CHECK(mass > 0.5);
        }
    }
}
