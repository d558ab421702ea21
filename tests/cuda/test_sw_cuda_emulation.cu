// Host emulation of the CUDA Smith-Waterman's warp programs (forward_pair, backward_pair of
// <diffbio/ops/alignment/cuda/smith_waterman.cuh>): 32 cooperative contexts on one thread play the
// 32 lanes of a warp, the shuffles are exchanges at a barrier (tests/support/host_warp.hpp). It runs the device code paths of every model
// (wavefront order, strips, frontier checkpoints and segments, messages between lanes and strips,
// borders) WITHOUT a GPU and compares scores and gradients with SmithWaterman::value_and_grad
// (Cpu): double within 1e-10, float within 1e-5 (or at least as close to the CPU's double path as
// the CPU's float path is). The host runs exp2f/log2f where the device uses its ex2/lg2 units, so
// the float results differ from the device's in the last bits; the device parity test is
// test_sw_cuda.cu. Runs on any machine (never exits 77).

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <diffbio/ops/alignment/cuda/smith_waterman.cuh>

#include "host_warp.hpp"

namespace {

namespace ops = diffbio::ops;
namespace cu = diffbio::ops::cuda;
namespace d = diffbio::ops::cuda::sw_cuda_detail;
using ops::detail::SwKind;

int failures = 0;
double worst_float = 0.0; // the largest relative deviation of a float comparison (reported)

template <class T>
struct EmuResult {
    std::vector<T> score, score_only;
    std::vector<double> grads; // A² + 3: S̄, open, extend, τ
};

/// The CUDA value_and_grad and scores of a batch, each pair by an emulated warp.
template <class T, SwKind Kd, bool Local, bool Hard>
EmuResult<T> emulate(const cu::SwCudaModel<T>& md, const std::vector<ops::CodePair>& pairs, const std::vector<double>& w,
                     std::uint32_t C) {
    std::vector<T> S;
    const d::Scalars<T> p = d::scaled(md, S);
    const auto A = static_cast<std::uint32_t>(md.A);
    EmuResult<T> res;
    res.grads.assign(md.A * md.A + 3, 0.0);
    for (const ops::CodePair& pr : pairs) {
        const d::PairIn<T> in{pr.query.data(), pr.target.data(), static_cast<std::uint32_t>(pr.query.size()),
                              static_cast<std::uint32_t>(pr.target.size()), S.data(), A};
        const d::Layout lay = d::layout(Kd, in.m, in.n, C);
        std::vector<T> work(lay.total, T(-7)), two_rows(2 * (in.n + 1) * d::carried(Kd), T(-7));
        std::vector<T> buf(static_cast<std::size_t>(C) * d::stored(Kd) * 32, T(-7));
        std::vector<double> bins(md.A * 32), sbar(md.A * md.A, 0.0);
        d::PairFwd<T> fwd{};
        std::vector<T> F(32), F2(32);
        std::vector<d::LaneGrads> lg(32);
        const T fbar = static_cast<T>(w[res.score.size()]);
        host_warp::run_warp([&](const host_warp::HostWarp& hw) {
            const unsigned l = hw.lane();
            F2[l] = d::forward_pair<T, Kd, Local, Hard>(hw, in, p, nullptr, two_rows.data(), C, nullptr);
            hw.sync();
            F[l] = d::forward_pair<T, Kd, Local, Hard>(hw, in, p, work.data(), nullptr, C, &fwd);
            hw.sync();
            if (fbar != T(0)) {
                lg[l] = d::backward_pair<T, Kd, Local, Hard>(hw, in, p, work.data(), C, fwd, fbar, buf.data(),
                                                              bins.data(), sbar.data());
            }
        });
        for (unsigned l = 1; l < 32; ++l) {
            if (F[l] != F[0] || F2[l] != F[0]) {
                std::printf("FAIL lanes disagree on the score: lane %u %.9g %.9g vs %.9g\n", l, double(F[l]), double(F2[l]),
                            double(F[0]));
                ++failures;
                break;
            }
        }
        res.score.push_back(F[0]);
        res.score_only.push_back(F2[0]);
        for (std::size_t e = 0; e < sbar.size(); ++e) res.grads[e] += sbar[e];
        for (const d::LaneGrads& g : lg) {
            res.grads[md.A * md.A] += g.open;
            res.grads[md.A * md.A + 1] += g.extend;
            res.grads[md.A * md.A + 2] += g.tau;
        }
    }
    if (Kd == SwKind::Linear) res.grads[md.A * md.A] = 0.0;
    return res;
}

bool close(double got, double want, double rel) {
    return std::fabs(got - want) <= rel * std::max(1.0, std::fabs(want));
}

void expect_close(double got, double want, double rel, const std::string& what) {
    const double tol = rel * std::max(1.0, std::fabs(want));
    if (what.find(" float ") != std::string::npos) {
        worst_float = std::max(worst_float, std::fabs(got - want) / std::max(1.0, std::fabs(want)));
    }
    if (!(std::fabs(got - want) <= tol)) {
        std::printf("FAIL %s: emulated %.12g cpu %.12g (tolerance %.3g)\n", what.c_str(), got, want, tol);
        ++failures;
    }
}

std::string random_dna(std::mt19937& rng, std::size_t n) {
    std::string s(n, 'A');
    for (char& c : s) c = "ACGT"[rng() % 4];
    return s;
}

template <class T>
void check_model(const ops::SmithWatermanConfig& cfg, const std::string& name, double rel, std::uint32_t C,
                 std::mt19937& rng) {
    ops::SmithWaterman sw(cfg);
    std::vector<std::pair<std::string, std::string>> strs{{"ACGTTAG", "ACTTAGG"}, {"", "ACG"}, {"GAT", ""}, {"", ""},
                                                          {"A", "A"}};
    strs.push_back({random_dna(rng, 70), random_dna(rng, 45)}); // three strips
    strs.push_back({random_dna(rng, 33), random_dna(rng, 64)});
    strs.push_back({random_dna(rng, 31), random_dna(rng, 2)});
    std::vector<std::vector<std::uint8_t>> codes;
    for (const auto& [q, t] : strs) codes.push_back(sw.encode(q)), codes.push_back(sw.encode(t));
    std::vector<ops::CodePair> pairs;
    for (std::size_t k = 0; k < strs.size(); ++k) pairs.push_back({codes[2 * k], codes[2 * k + 1]});
    std::vector<double> w;
    for (std::size_t k = 0; k < pairs.size(); ++k) w.push_back(k == 2 ? 0.0 : 0.5 + 0.25 * static_cast<double>(k));
    const ops::SwGradOptions with_tau{.temperature_gradient = true}; // the CUDA kernels always give ∂/∂τ
    const auto cpu = sw.value_and_grad<T>(pairs, w, with_tau);
    const auto cpu_d = sw.value_and_grad<double>(pairs, w, with_tau);
    const cu::SwCudaModel<T> md = cu::sw_cuda_model<T>(sw);
    EmuResult<T> emu;
    d::with_model(md.model, [&](auto kd, auto local, auto hard) {
        emu = emulate<T, decltype(kd)::value, decltype(local)::value, decltype(hard)::value>(md, pairs, w, C);
    });
    const std::string tag = name + (sizeof(T) == 4 ? " float" : " double") + " C=" + std::to_string(C);
    // Float: within rel of the CPU's float path, or at least as close to the CPU's double path as
    // the CPU's float path is (it accumulates the scalar gradients in float lanes; see test_sw_cuda.cu).
    auto check = [&](double got, double want_t, double want_d, const std::string& what) {
        if (sizeof(T) == 8 || close(got, want_t, rel)) {
            expect_close(got, want_t, rel, what);
            return;
        }
        const double tol = std::max(rel * std::max(1.0, std::fabs(want_d)), std::fabs(want_t - want_d));
        if (!(std::fabs(got - want_d) <= tol)) {
            std::printf("FAIL %s: emulated %.12g cpu float %.12g cpu double %.12g\n", what.c_str(), got, want_t, want_d);
            ++failures;
        }
    };
    for (std::size_t k = 0; k < pairs.size(); ++k) {
        check(static_cast<double>(emu.score[k]), static_cast<double>(cpu.score[k]), cpu_d.score[k], tag + " score " + std::to_string(k));
        expect_close(static_cast<double>(emu.score_only[k]), static_cast<double>(emu.score[k]), 0.0,
                     tag + " score-only = value_and_grad's " + std::to_string(k));
    }
    const std::size_t A2 = md.A * md.A;
    for (std::size_t e = 0; e < A2; ++e) {
        check(emu.grads[e], static_cast<double>(cpu.substitution[e]), cpu_d.substitution[e], tag + " dS[" + std::to_string(e) + "]");
    }
    check(emu.grads[A2], static_cast<double>(cpu.gap_open), cpu_d.gap_open, tag + " d open");
    check(emu.grads[A2 + 1], static_cast<double>(cpu.gap_extend), cpu_d.gap_extend, tag + " d extend");
    check(emu.grads[A2 + 2], static_cast<double>(cpu.temperature), cpu_d.temperature, tag + " d tau");
}

} // namespace

int main() {
    std::mt19937 rng(7);
    struct Named {
        ops::SmithWatermanConfig cfg;
        std::string name;
    };
    std::vector<Named> models;
    for (const bool hard : {false, true}) {
        for (const auto gaps : {ops::GapModel::Affine, ops::GapModel::Linear}) {
            for (const auto mode : {ops::AlignmentMode::Local, ops::AlignmentMode::Global}) {
                ops::SmithWatermanConfig c;
                c.gaps = gaps;
                c.mode = mode;
                c.hard = hard;
                c.temperature = 0.8;
                c.gap_open = ops::GapOpen{3.0};
                c.gap_extend = ops::GapExtend{1.0};
                models.push_back({c, std::string(gaps == ops::GapModel::Affine ? "affine" : "linear") +
                                         (mode == ops::AlignmentMode::Local ? " local" : " global") +
                                         (hard ? " hard" : " soft")});
            }
        }
        ops::SmithWatermanConfig c;
        c.gaps = ops::GapModel::Linear;
        c.diffbio_compat = true;
        c.hard = hard;
        c.temperature = 1.1;
        c.gap_open = ops::GapOpen{2.0};
        c.gap_extend = ops::GapExtend{0.5};
        models.push_back({c, std::string("compat") + (hard ? " hard" : " soft")});
    }
    for (const Named& m : models) {
        check_model<double>(m.cfg, m.name, 1e-10, 5, rng);
        check_model<float>(m.cfg, m.name, 1e-5, 32, rng);
    }
    check_model<double>(models[0].cfg, models[0].name, 1e-10, 1, rng);
    // extreme temperatures stay finite
    for (const double tau : {1e-4, 1e4}) {
        ops::SmithWatermanConfig c = models[0].cfg;
        c.temperature = tau;
        check_model<double>(c, "affine local soft tau " + std::to_string(tau), 1e-9, 7, rng);
    }
    std::printf("largest relative deviation of the float comparisons: %.3g\n", worst_float);
    std::printf("%s: %d failures\n", failures == 0 ? "PASS" : "FAIL", failures);
    return failures == 0 ? 0 : 1;
}
