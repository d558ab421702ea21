#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/alignment/msa.hpp>
#include <diffbio/ops/alignment/profile_hmm.hpp>

#include "expect_ad.hpp"
#include "expect_params.hpp"

using namespace diffbio;
using Catch::Matchers::Contains;
using ops::HmmState;
using ops::ProfileHmm;
using ops::SequenceAlphabet;

namespace {

constexpr auto dna = SequenceAlphabet::dna;

/// Random logits everywhere (match, insert, transitions, entry) so that no two paths tie.
void randomise(ProfileHmm& hmm, unsigned seed, double scale = 1.0) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(-scale, scale);
    for (ad::Parameter* p :
         {&hmm.match_logits(), &hmm.insert_logits(), &hmm.transition_logits(), &hmm.entry_logits()}) {
        for (double& v : p->values()) v = u(rng);
    }
}

ops::SequenceBatch batch(const std::vector<std::string>& seqs, SequenceAlphabet a = dna) {
    return ops::SequenceBatch(a, seqs);
}

std::vector<double> softmax(const double* x, std::size_t n) {
    double m = x[0];
    for (std::size_t j = 1; j < n; ++j) m = std::max(m, x[j]);
    std::vector<double> p(n);
    double s = 0.0;
    for (std::size_t j = 0; j < n; ++j) s += p[j] = std::exp(x[j] - m);
    for (double& v : p) v /= s;
    return p;
}

/// The model's probabilities, computed here from the logits (independently of the operator).
struct Probabilities {
    std::size_t M, K;
    std::vector<std::vector<double>> match, insert, trans; // trans[k] = MM MI MD IM II DM DD
    std::vector<double> entry, bg;

    explicit Probabilities(const ProfileHmm& h) : M(h.length()), K(h.alphabet_size()) {
        for (std::size_t k = 0; k < M; ++k) match.push_back(softmax(h.match_logits().values().data() + k * K, K));
        for (std::size_t k = 0; k + 1 < M; ++k) {
            insert.push_back(h.config().tie_insert_emissions
                                 ? std::vector<double>(h.background().begin(), h.background().end())
                                 : softmax(h.insert_logits().values().data() + k * K, K));
            const double* t = h.transition_logits().values().data() + k * 7;
            std::vector<double> row = softmax(t, 3), ri = softmax(t + 3, 2), rd = softmax(t + 5, 2);
            row.insert(row.end(), ri.begin(), ri.end());
            row.insert(row.end(), rd.begin(), rd.end());
            trans.push_back(row);
        }
        entry = softmax(h.entry_logits().values().data(), M);
        bg.assign(h.background().begin(), h.background().end());
    }
    double emit(const std::vector<double>& p, std::uint8_t c) const { return c < K ? p[c] : 1.0; }
    double null_emit(std::uint8_t c) const { return c < K ? bg[c] : 1.0; }
};

struct Step {
    HmmState s;
    std::size_t k, i;
};
struct Path {
    double score; // log P(x, π) − log P(x | null)
    std::vector<Step> steps;
};

/// Every path of the model through x, scored from the definition in probability space:
/// S → N (loops L/(L+2), background letters) → B → M_k (entry) → core → E → C (loops, background) → T.
std::vector<Path> enumerate_paths(const Probabilities& m, const std::vector<std::uint8_t>& x) {
    const std::size_t L = x.size(), M = m.M;
    const double Ld = static_cast<double>(L);
    const double loop = std::log(Ld / (Ld + 2.0)), move = std::log(2.0 / (Ld + 2.0));
    double null = Ld * std::log(Ld / (Ld + 1.0)) + std::log(1.0 / (Ld + 1.0));
    for (std::uint8_t c : x) null += std::log(m.null_emit(c));
    std::vector<Path> out;
    std::vector<Step> steps;
    std::function<void(HmmState, std::size_t, std::size_t, double)> go = [&](HmmState s, std::size_t k, std::size_t i,
                                                                             double lp) {
        steps.push_back({s, k, i});
        const double* t = k + 1 < M ? m.trans[std::min(k, M - 2)].data() : nullptr;
        if (s == HmmState::match) {
            double tail = lp + move;
            for (std::size_t j = i + 1; j < L; ++j) tail += loop + std::log(m.null_emit(x[j]));
            out.push_back({tail - null, steps});
            if (t != nullptr) {
                if (i + 1 < L)
                    go(HmmState::match, k + 1, i + 1, lp + std::log(t[0] * m.emit(m.match[k + 1], x[i + 1])));
                if (i + 1 < L) go(HmmState::insert, k, i + 1, lp + std::log(t[1] * m.emit(m.insert[k], x[i + 1])));
                if (k + 1 <= M - 2) go(HmmState::del, k + 1, i, lp + std::log(t[2]));
            }
        } else if (s == HmmState::insert) {
            if (i + 1 < L) {
                go(HmmState::insert, k, i + 1, lp + std::log(t[4] * m.emit(m.insert[k], x[i + 1])));
                go(HmmState::match, k + 1, i + 1, lp + std::log(t[3] * m.emit(m.match[k + 1], x[i + 1])));
            }
        } else {
            if (i + 1 < L) go(HmmState::match, k + 1, i + 1, lp + std::log(t[5] * m.emit(m.match[k + 1], x[i + 1])));
            if (k + 1 <= M - 2) go(HmmState::del, k + 1, i, lp + std::log(t[6]));
        }
        steps.pop_back();
    };
    for (std::size_t s0 = 0; s0 < L; ++s0) {
        double head = move;
        for (std::size_t j = 0; j < s0; ++j) head += loop + std::log(m.null_emit(x[j]));
        for (std::size_t k = 0; k < M; ++k) {
            go(HmmState::match, k, s0, head + std::log(m.entry[k] * m.emit(m.match[k], x[s0])));
        }
    }
    return out;
}

double tempered(const std::vector<Path>& paths, double tau) {
    double mx = -std::numeric_limits<double>::infinity();
    for (const Path& p : paths) mx = std::max(mx, p.score);
    double s = 0.0;
    for (const Path& p : paths) s += std::exp((p.score - mx) / tau);
    return mx + tau * std::log(s);
}

/// The score of an operator's Viterbi path, summed here from the probabilities.
double path_score(const Probabilities& m, const std::vector<std::uint8_t>& x, const ops::HmmViterbi& v) {
    const std::vector<Path> all = enumerate_paths(m, x);
    for (const Path& p : all) {
        if (p.steps.size() != v.steps.size()) continue;
        bool same = true;
        for (std::size_t j = 0; j < p.steps.size() && same; ++j) {
            same = p.steps[j].s == v.steps[j].state && p.steps[j].k == v.steps[j].node &&
                   p.steps[j].i == v.steps[j].residue;
        }
        if (same) return p.score;
    }
    FAIL("the Viterbi path is not a path of the model");
    return 0.0;
}

/// A weighted sum of every output, generic in the Binder.
auto batch_loss(const ProfileHmm& hmm, const ops::SequenceBatch& b) {
    return [&hmm, &b](auto& bind) {
        const auto r = hmm.apply(bind, b);
        using R = std::decay_t<decltype(r.score[0])>;
        R s = R(0.0);
        for (std::size_t n = 0; n < r.score.size(); ++n) {
            s = s + r.score[n] * (1.0 + 0.3 * static_cast<double>(n)) + 0.1 * r.log_likelihood[n] + 0.05 * r.bits[n];
        }
        return s;
    };
}

std::string random_dna(std::mt19937& rng, std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += "ACGT"[rng() % 4];
    return s;
}

/// The double and float scores of a batch: every double score finite, each float one within
/// `rel` of it. Returns the double result.
ops::ProfileHmmScores<double> check_double_and_float(const ProfileHmm& hmm, const ops::SequenceBatch& b, double rel) {
    ad::Binder<double> bd;
    ad::Binder<float> bf;
    auto d = hmm.apply(bd, b);
    const auto f = hmm.apply(bf, b);
    for (std::size_t n = 0; n < b.size(); ++n) {
        CHECK(std::isfinite(d.score[n]));
        CHECK(f.score[n] == Approx(d.score[n]).epsilon(rel));
    }
    return d;
}

/// The tape gradient of the sum of the scores into the (zeroed) parameters: every entry finite.
/// Returns the tape's score of sequence 0.
double check_finite_gradients(ProfileHmm& hmm, const ops::SequenceBatch& b) {
    for (auto* p : hmm.parameters()) p->zero_grad();
    double score0 = 0.0;
    {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        const auto r = hmm.apply(bind, b);
        score0 = tape.value(r.score[0]);
        ad::Var sum = r.score[0];
        for (std::size_t n = 1; n < r.score.size(); ++n) sum = sum + r.score[n];
        tape.backward(sum);
        bind.accumulate_grad();
    }
    for (auto* p : hmm.parameters()) {
        for (const double g : p->grad()) CHECK(std::isfinite(g));
    }
    return score0;
}

} // namespace

TEST_CASE("ProfileHmm: forward score = log-sum over every path, enumerated explicitly", "[ops][hmm]") {
    for (std::size_t M : {1, 2, 4}) {
        ProfileHmm hmm({.alphabet = dna, .length = M});
        randomise(hmm, 7 + static_cast<unsigned>(M));
        const Probabilities m(hmm);
        const auto b = batch({"A", "GATN", "CCAGT"});
        for (double tau : {1.0, 0.5, 3.0}) {
            hmm.set_temperature(tau);
            ad::Binder<double> bind;
            const auto r = hmm.apply(bind, b);
            for (std::size_t n = 0; n < b.size(); ++n) {
                const auto seq = b.sequence(n);
                const std::vector<std::uint8_t> x(seq.begin(), seq.end());
                const std::vector<Path> paths = enumerate_paths(m, x);
                INFO("M = " << M << ", tau = " << tau << ", sequence " << n << ", " << paths.size() << " paths");
                CHECK(r.score[n] == Approx(tempered(paths, tau)).epsilon(1e-12).margin(1e-12));
                CHECK(r.bits[n] == Approx(r.score[n] / std::log(2.0)).epsilon(1e-14));
                double null = 0.0;
                for (std::uint8_t c : x) null += std::log(m.null_emit(c));
                const double L = static_cast<double>(x.size());
                null += L * std::log(L / (L + 1.0)) - std::log(L + 1.0);
                CHECK(r.null_log_likelihood[n] == Approx(null).epsilon(1e-13));
                CHECK(r.log_likelihood[n] == Approx(r.score[n] + null).epsilon(1e-13));
            }
        }
    }
}

TEST_CASE("ProfileHmm: posteriors match the enumeration, and every residue is emitted once", "[ops][hmm]") {
    ProfileHmm hmm({.alphabet = dna, .length = 4, .temperature = 0.8});
    randomise(hmm, 3);
    const Probabilities m(hmm);
    const auto b = batch({"GATNC", "TTGCA"});
    const auto post = hmm.posteriors(b);
    const auto par = hmm.posteriors(b, exec::CpuParallel{2});
    for (std::size_t n = 0; n < b.size(); ++n) {
        const auto seq = b.sequence(n);
        const std::vector<std::uint8_t> x(seq.begin(), seq.end());
        const std::size_t L = x.size(), M = 4;
        const std::vector<Path> paths = enumerate_paths(m, x);
        const double F = tempered(paths, 0.8);
        std::vector<double> pm(L * M, 0.0), pi(L * M, 0.0), pd(L * M, 0.0), pn(L, 0.0), pc(L, 0.0), ent(M, 0.0);
        std::vector<double> tc(3 * 7, 0.0);
        double es = 0.0;
        for (const Path& p : paths) {
            const double q = std::exp((p.score - F) / 0.8);
            es += q * p.score;
            ent[p.steps.front().k] += q;
            for (std::size_t i = 0; i < p.steps.front().i; ++i) pn[i] += q;
            for (std::size_t i = p.steps.back().i + 1; i < L; ++i) pc[i] += q;
            for (std::size_t j = 0; j < p.steps.size(); ++j) {
                const Step& s = p.steps[j];
                (s.s == HmmState::match ? pm : s.s == HmmState::insert ? pi : pd)[s.i * M + s.k] += q;
                if (j + 1 == p.steps.size()) continue;
                const HmmState t = p.steps[j + 1].s;
                const std::size_t base = s.s == HmmState::match ? 0 : s.s == HmmState::insert ? 3 : 5;
                const std::size_t off = t == HmmState::match    ? 0
                                        : t == HmmState::insert ? 1
                                                                : (s.s == HmmState::del ? 1 : 2);
                tc[s.k * 7 + base + off] += q;
            }
        }
        const ops::ProfileHmmPosterior& p = post[n];
        CHECK(p.score == Approx(F).epsilon(1e-12));
        CHECK(p.expected_score == Approx(es).epsilon(1e-10).margin(1e-12));
        for (std::size_t j = 0; j < L * M; ++j) {
            CHECK(p.match[j] == Approx(pm[j]).margin(1e-12));
            CHECK(p.insert[j] == Approx(pi[j]).margin(1e-12));
            CHECK(p.del[j] == Approx(pd[j]).margin(1e-12));
        }
        for (std::size_t i = 0; i < L; ++i) {
            CHECK(p.n_flank[i] == Approx(pn[i]).margin(1e-12));
            CHECK(p.c_flank[i] == Approx(pc[i]).margin(1e-12));
            double total = p.n_flank[i] + p.c_flank[i];
            for (std::size_t k = 0; k < M; ++k) total += p.match[i * M + k] + p.insert[i * M + k];
            CHECK(total == Approx(1.0).epsilon(1e-12));
        }
        for (std::size_t j = 0; j < tc.size(); ++j) CHECK(p.transition_counts[j] == Approx(tc[j]).margin(1e-12));
        double entries = 0.0;
        for (std::size_t k = 0; k < M; ++k) {
            CHECK(p.entry_counts[k] == Approx(ent[k]).margin(1e-12));
            entries += p.entry_counts[k];
            double col = 0.0, counts = 0.0;
            for (std::size_t i = 0; i < L; ++i) col += p.match[i * M + k];
            for (std::size_t a = 0; a < 4; ++a) counts += p.match_counts[k * 4 + a];
            CHECK(counts == Approx(col).epsilon(1e-12)); // 'N' spreads its count over the letters
        }
        CHECK(entries == Approx(1.0).epsilon(1e-12));
        CHECK(par[n].match == p.match);
        CHECK(par[n].transition_counts == p.transition_counts);
    }
}

TEST_CASE("ProfileHmm: tau -> 0 gives the Viterbi score", "[ops][hmm][limit]") {
    SECTION("tiny model: brute-force maximum, operator Viterbi and its path") {
        ProfileHmm hmm({.alphabet = dna, .length = 4});
        randomise(hmm, 11, 2.0);
        const Probabilities m(hmm);
        const auto b = batch({"ACGTA", "GGTN", "T"});
        const auto vit = hmm.viterbi(b);
        for (std::size_t n = 0; n < b.size(); ++n) {
            const auto seq = b.sequence(n);
            const std::vector<std::uint8_t> x(seq.begin(), seq.end());
            const std::vector<Path> paths = enumerate_paths(m, x);
            double best = -std::numeric_limits<double>::infinity();
            for (const Path& p : paths) best = std::max(best, p.score);
            CHECK(vit[n].score == Approx(best).epsilon(1e-12));
            CHECK(path_score(m, x, vit[n]) == Approx(vit[n].score).epsilon(1e-12));
            CHECK(vit[n].begin == vit[n].steps.front().residue);
            CHECK(vit[n].end == vit[n].steps.back().residue);
            for (double tau : {1e-2, 1e-3, 1e-4}) {
                hmm.set_temperature(tau);
                ad::Binder<double> bind;
                const double F = hmm.apply(bind, b).score[n];
                CHECK(F >= best - 1e-12);
                CHECK(F <= best + tau * std::log(static_cast<double>(paths.size())) + 1e-12);
            }
            hmm.set_temperature(1.0);
        }
    }
    SECTION("protein model of 30 positions: forward at small tau vs the operator's Viterbi") {
        ProfileHmm hmm({.length = 30, .seed = 5});
        randomise(hmm, 5, 1.5);
        std::mt19937 rng(17);
        std::vector<std::string> seqs;
        for (std::size_t len : {12, 30, 45, 60}) {
            std::string s;
            for (std::size_t i = 0; i < len; ++i) s += "ACDEFGHIKLMNPQRSTVWY"[rng() % 20];
            seqs.push_back(s);
        }
        const auto b = batch(seqs, SequenceAlphabet::protein);
        const auto vit = hmm.viterbi(b);
        std::vector<double> last(b.size(), std::numeric_limits<double>::infinity());
        for (double tau : {1.0, 1e-1, 1e-2, 1e-3, 1e-4}) {
            hmm.set_temperature(tau);
            ad::Binder<double> bind;
            const auto r = hmm.apply(bind, b);
            for (std::size_t n = 0; n < b.size(); ++n) {
                const double L = static_cast<double>(b.length(n));
                // log #paths ≤ log(L·M) + (L + M)·log 3 (start, entry, then ≤ 3 choices per step)
                const double bound = tau * (std::log(L * 30.0) + (L + 30.0) * std::log(3.0));
                INFO("tau = " << tau << ", sequence " << n);
                CHECK(r.score[n] >= vit[n].score - 1e-9);
                CHECK(r.score[n] <= vit[n].score + bound);
                CHECK(r.score[n] <= last[n] + 1e-12); // F_τ is non-decreasing in τ
                last[n] = r.score[n];
            }
        }
    }
}

TEST_CASE("ProfileHmm parameter gradients: fused Var node = Dual = finite differences", "[ops][hmm][ad]") {
    SECTION("every parameter, learnable temperature and entry") {
        ProfileHmm hmm({.alphabet = dna, .length = 5, .temperature = 0.7, .learnable_temperature = true});
        randomise(hmm, 21);
        const auto b = batch({"ACGTTGCA", "GNAT", "TTTACGGA", "C"});
        diffbio::test::expect_parameter_gradients(
            hmm.parameters(), batch_loss(hmm, b),
            {.mode_rel = 1e-9, .mode_abs = 1e-11, .fd_rel = 1e-6, .fd_abs = 1e-8, .samples = 40});
    }
    SECTION("inserts tied to the background, low temperature") {
        ProfileHmm hmm({.alphabet = dna,
                        .length = 4,
                        .temperature = 0.05,
                        .learnable_temperature = true,
                        .tie_insert_emissions = true});
        randomise(hmm, 22);
        CHECK(hmm.parameters().size() == 4);
        const auto b = batch({"ACGTTG", "GAT"});
        diffbio::test::expect_parameter_gradients(hmm.parameters(), batch_loss(hmm, b),
                                                  {.fd_rel = 1e-5, .fd_abs = 1e-7, .fd_step = 1e-7, .samples = 28});
    }
}

TEST_CASE("ProfileHmm: gradients with respect to soft sequence rows in every mode", "[ops][hmm][ad]") {
    ProfileHmm hmm({.alphabet = dna, .length = 3, .temperature = 1.3});
    randomise(hmm, 31);
    const std::vector<std::size_t> lengths{3, 2};
    std::vector<double> x{0.7, 0.1, 0.1, 0.1, 0.02, 0.9,  0.05, 0.03, 0.25, 0.25, 0.25, 0.25, // sequence 0
                          0.2, 0.3, 0.4, 0.1, 0.05, 0.05, 0.8,  0.1};                         // sequence 1
    diffbio::test::expect_ad(
        [&](auto v) {
            using T = std::decay_t<decltype(v[0])>;
            auto bind = diffbio::test::make_binder<T>();
            const auto r = hmm.apply(bind, ops::SoftSequences<T>{v, lengths});
            std::vector<T> out = r.score;
            out.insert(out.end(), r.log_likelihood.begin(), r.log_likelihood.end());
            return out;
        },
        x);
}

TEST_CASE("ProfileHmm: soft one-hot rows equal integer codes, uniform rows equal 'N'", "[ops][hmm]") {
    ProfileHmm hmm({.alphabet = dna, .length = 6});
    randomise(hmm, 41);
    const auto b = batch({"ACGTNNAC", "GGN"});
    std::vector<double> rows;
    std::vector<std::size_t> lengths;
    for (std::size_t n = 0; n < b.size(); ++n) {
        lengths.push_back(b.length(n));
        for (std::uint8_t c : b.sequence(n)) {
            for (std::size_t a = 0; a < 4; ++a) rows.push_back(c == 4 ? 3.0 : (a == c ? 1.0 : 0.0)); // 'N': any scale
        }
    }
    ad::Binder<double> bind;
    const auto r = hmm.apply(bind, b);
    const auto s = hmm.apply(bind, ops::SoftSequences<double>{rows, lengths});
    for (std::size_t n = 0; n < b.size(); ++n) {
        CHECK(s.score[n] == Approx(r.score[n]).epsilon(1e-12));
    }
    ad::Binder<float> fb;
    const auto f = hmm.apply(fb, b);
    for (std::size_t n = 0; n < b.size(); ++n) CHECK(f.score[n] == Approx(r.score[n]).epsilon(1e-5));
}

TEST_CASE("ProfileHmm: delete transitions get gradients, equal to posterior counts", "[ops][hmm][ad]") {
    // DiffBio's profile HMM never updates its delete states; here every delete transition of a
    // node with a delete state receives gradient, and ∂Σ score/∂logits = counts − p·Σ counts.
    ProfileHmm hmm({.alphabet = dna, .length = 6});
    randomise(hmm, 51);
    const auto b = batch({"ACGTTGCAAC", "AAGTGCCA", "TTGACA"});
    for (auto* p : hmm.parameters()) p->zero_grad();
    {
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        const auto r = hmm.apply(bind, b);
        CHECK(tape.num_nodes() == 1); // one fused node for the whole batch
        ad::Var total = r.score[0] + r.score[1] + r.score[2];
        tape.backward(total);
        bind.accumulate_grad();
    }
    const auto post = hmm.posteriors(b);
    const auto g = hmm.transition_logits().grad();
    const auto logits = hmm.transition_logits().values();
    for (std::size_t k = 0; k + 1 < 6; ++k) {
        std::vector<double> counts(7, 0.0);
        for (const auto& p : post) {
            for (std::size_t j = 0; j < 7; ++j) counts[j] += p.transition_counts[k * 7 + j];
        }
        for (std::size_t lo : {0, 3, 5}) {
            const std::size_t n = lo == 0 ? 3 : 2;
            const std::vector<double> p = softmax(logits.data() + k * 7 + lo, n);
            double sum = 0.0;
            for (std::size_t j = 0; j < n; ++j) sum += counts[lo + j];
            for (std::size_t j = 0; j < n; ++j) {
                CHECK(g[k * 7 + lo + j] == Approx(counts[lo + j] - p[j] * sum).margin(1e-12));
            }
        }
        if (k >= 1 && k + 2 < 6) { // node k has a delete state D_k reached from node k − 1
            INFO("node " << k);
            CHECK(counts[5] + counts[6] > 1e-4); // leaves D_k
            CHECK(std::fabs(g[k * 7 + 5]) > 1e-6);
            CHECK(std::fabs(g[k * 7 + 6]) > 1e-6);
        }
        CHECK(std::fabs(g[k * 7 + 2]) > 1e-6); // M → D
    }
}

TEST_CASE("ProfileHmm: finite values and gradients at extreme temperatures and 10,000 residues",
          "[ops][hmm][numerics]") {
    std::mt19937 rng(61);
    const auto b = batch({random_dna(rng, 10000), random_dna(rng, 3), random_dna(rng, 500)});
    for (double tau : {1e-4, 1e4}) {
        ProfileHmm hmm({.alphabet = dna, .length = 8, .temperature = tau, .learnable_temperature = true});
        randomise(hmm, 62, 3.0);
        INFO("tau = " << tau);
        const auto d = check_double_and_float(hmm, b, 1e-3);
        for (std::size_t n = 0; n < b.size(); ++n) CHECK(std::isfinite(d.log_likelihood[n]));
        CHECK(check_finite_gradients(hmm, b) == Approx(d.score[0]).epsilon(1e-12));
        const auto post = hmm.posteriors(b);
        const ops::ProfileHmmPosterior& p = post[0];
        for (std::size_t i = 0; i < p.length; i += 997) {
            double total = p.n_flank[i] + p.c_flank[i];
            for (std::size_t k = 0; k < 8; ++k) total += p.match[i * 8 + k] + p.insert[i * 8 + k];
            CHECK(total == Approx(1.0).epsilon(1e-9));
        }
    }
}

TEST_CASE("ProfileHmm: tau far below 1e-4, ties included: finite, posteriors that sum to 1, float as double",
          "[ops][hmm][numerics]") {
    // A run of G against a noisy default profile has many paths of exactly equal score: once τ·log 2
    // is below the rounding of the cell values each tied edge had weight 1 and the adjoints doubled
    // per tie (NaN from τ = 1e-18); float rounded τ = 1e-50 to 0.
    const auto b = batch({"ACGTACGTTTGACA", "AC", "GGGGGGGGGGGGGGGGGGGGGG"});
    for (const double tau : {1e-12, 1e-20, 1e-50, 1e-300}) {
        INFO("tau = " << tau);
        ProfileHmm hmm({.alphabet = dna, .length = 6, .temperature = tau, .learnable_temperature = true});
        const auto d = check_double_and_float(hmm, b, 1e-5);
        CHECK(check_finite_gradients(hmm, b) == Approx(d.score[0]).epsilon(1e-12));
        for (const ops::ProfileHmmPosterior& p : hmm.posteriors(b)) {
            double entry = 0.0;
            for (const double v : p.entry_counts) entry += v;
            CHECK(entry == Approx(1.0).epsilon(1e-12));
            for (std::size_t i = 0; i < p.length; ++i) {
                double total = p.n_flank[i] + p.c_flank[i];
                for (std::size_t k = 0; k < p.nodes; ++k) total += p.match[i * p.nodes + k] + p.insert[i * p.nodes + k];
                CHECK(total == Approx(1.0).epsilon(1e-12));
            }
        }
    }
}

TEST_CASE("ProfileHmm: a score past float's range at a huge tau is refused, not NaN; double computes it",
          "[ops][hmm][numerics][errors]") {
    // F_τ ≈ τ·log(number of paths) ≈ 1e38 · 10: beyond float's 3.4e38 (it was NaN), not double's.
    const auto b = batch({"ACGTACGTTTGACA", "AC", "GGGGGGGGGGGGGGGGGGGGGG"});
    ProfileHmm hmm({.alphabet = dna, .length = 6, .temperature = 1e38});
    ad::Binder<double> dbind;
    const auto d = hmm.apply(dbind, b);
    for (std::size_t n = 0; n < b.size(); ++n) CHECK(std::isfinite(d.score[n]));
    CHECK(d.score[0] > 3.4e38);
    ad::Binder<float> fbind;
    CHECK_THROWS_WITH(hmm.apply(fbind, b), Contains("ProfileHmm::apply: score of sequence 0 is not finite") &&
                                               Contains("range of float") && Contains("compute in double"));
}

TEST_CASE("ProfileHmm: DiffBio's defaults (P = 100, A = 20) give finite scores for any length", "[ops][hmm]") {
    ProfileHmm hmm;
    CHECK(hmm.match_logits().size() == 100 * 20);
    CHECK(hmm.insert_logits().size() == 99 * 20);
    CHECK(hmm.transition_logits().size() == 99 * 7);
    std::mt19937 rng(71);
    std::vector<std::string> seqs;
    for (std::size_t len : {5, 100, 1000}) {
        std::string s;
        for (std::size_t i = 0; i < len; ++i) s += "ACDEFGHIKLMNPQRSTVWY"[rng() % 20];
        seqs.push_back(s);
    }
    const auto b = batch(seqs, SequenceAlphabet::protein);
    for (double tau : {0.1, 1.0, 10.0}) {
        hmm.set_temperature(tau);
        ad::Binder<double> bind;
        for (double s : hmm.apply(bind, b).score) CHECK(std::isfinite(s));
    }
}

TEST_CASE("ProfileHmm: CpuParallel gives the same values and gradients as Cpu", "[ops][hmm][exec]") {
    std::mt19937 rng(81);
    std::vector<std::string> seqs;
    for (int n = 0; n < 24; ++n) seqs.push_back(random_dna(rng, 5 + rng() % 40));
    const auto b = batch(seqs);
    ProfileHmm hmm({.alphabet = dna, .length = 7, .temperature = 0.9, .learnable_temperature = true});
    randomise(hmm, 82);
    auto run = [&](const auto& policy) {
        for (auto* p : hmm.parameters()) p->zero_grad();
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        const auto r = hmm.apply(bind, b, policy);
        ad::Var s = ad::Var(0.0);
        for (std::size_t n = 0; n < r.score.size(); ++n) s = s + r.score[n] * static_cast<double>(n % 3 + 1);
        tape.backward(s);
        bind.accumulate_grad();
        std::vector<double> out{s.value()};
        for (auto* p : hmm.parameters()) out.insert(out.end(), p->grad().begin(), p->grad().end());
        return out;
    };
    const auto a = run(exec::Cpu{}), c = run(exec::CpuParallel{2});
    REQUIRE(a.size() == c.size());
    for (std::size_t k = 0; k < a.size(); ++k) CHECK(a[k] == Approx(c[k]).epsilon(1e-12).margin(1e-14));
    ad::Binder<ad::Dual<double>> dual;
    const auto d1 = hmm.apply(dual, b), d2 = hmm.apply(dual, b, exec::CpuParallel{2});
    for (std::size_t n = 0; n < b.size(); ++n) CHECK(d1.score[n].value == d2.score[n].value);
}

TEST_CASE("ProfileHmm::from_msa: match columns, weighted counts and pseudocounts", "[ops][hmm][msa]") {
    // Columns 0 1 2 3 4: column 2 is 3/4 gaps (insert), the others are match columns.
    std::istringstream sto("# STOCKHOLM 1.0\n"
                           "#=GF ID toy\n"
                           "s1 AC-GT\n"
                           "s2 AC-GA\n"
                           "\n"
                           "s3 A--GT\n"
                           "s4 ACTGT\n"
                           "#=GC SS_cons .....\n"
                           "//\n");
    const ops::Msa msa = ops::parse_stockholm(sto, dna, "toy.sto");
    REQUIRE(msa.size() == 4);
    REQUIRE(msa.columns() == 5);
    const ProfileHmm hmm =
        ProfileHmm::from_msa(msa, {.alphabet = dna}, {.position_weights = false, .emission_pseudocount = 2.0});
    REQUIRE(hmm.length() == 4);
    CHECK(std::vector<std::size_t>(hmm.match_columns().begin(), hmm.match_columns().end()) ==
          std::vector<std::size_t>{0, 1, 3, 4});
    const Probabilities p(hmm);
    // Match state 0: four A's + 2·0.25 pseudocounts of each letter over 4 + 2.
    CHECK(p.match[0][0] == Approx(4.5 / 6.0).epsilon(1e-12));
    CHECK(p.match[0][1] == Approx(0.5 / 6.0).epsilon(1e-12));
    // Match state 3: three T's and one A.
    CHECK(p.match[3][3] == Approx(3.5 / 6.0).epsilon(1e-12));
    CHECK(p.match[3][0] == Approx(1.5 / 6.0).epsilon(1e-12));
    // Node 0: M→M ×4 (s3's C is a gap in a match column, so M0→D1 for s3: ×3 M→M, ×1 M→D).
    const double mm = 3 + 0.7, mi = 0.03, md = 1 + 0.03;
    CHECK(p.trans[0][0] == Approx(mm / (mm + mi + md)).epsilon(1e-12));
    CHECK(p.trans[0][2] == Approx(md / (mm + mi + md)).epsilon(1e-12));
    // Node 1: s4 inserts T (M1→I1, I1→M2); s3 goes D1→M2; s1, s2 M1→M2.
    CHECK(p.trans[1][1] == Approx(1.03 / (2.7 + 1.03 + 0.03)).epsilon(1e-12));
    CHECK(p.trans[1][3] == Approx(1.5 / 1.9).epsilon(1e-12));
    CHECK(p.trans[1][5] == Approx(1.6 / 1.9).epsilon(1e-12));
    // Inserts emit the background by default: their log-odds are 0.
    CHECK(p.insert[1][3] == Approx(0.25).epsilon(1e-12));
    // With position-based weights the effective number stays 4 but identical rows weigh less.
    const ProfileHmm w = ProfileHmm::from_msa(msa, {.alphabet = dna});
    const Probabilities pw(w);
    double total = 0.0;
    for (double v : pw.match[3]) total += v;
    CHECK(total == Approx(1.0).epsilon(1e-12));
    // Henikoff weights over the match columns 0, 1, 3, 4: 1/(types·count) per residue. Columns 0
    // and 3 give ¼ each, column 1 (s3 a gap) ⅓ to s1, s2, s4, column 4 (T A T T: two types) 1/6 to
    // each T and ½ to s2's A: raw (1, 4/3, 2/3, 1), summing to 4 already. Match state 3 with α = 1:
    // T (1 + 2/3 + 1 + ¼)/5 = 7/12, A (4/3 + ¼)/5 = 19/60, C and G ¼/5.
    CHECK(pw.match[3][3] == Approx(7.0 / 12.0).epsilon(1e-12));
    CHECK(pw.match[3][0] == Approx(19.0 / 60.0).epsilon(1e-12));
    CHECK(pw.match[3][1] == Approx(0.05).epsilon(1e-12));
    CHECK(pw.match[0][0] == Approx(4.25 / 5.0).epsilon(1e-12));
    // An ambiguous residue counts as the background: rows AC and NC, background (.1, .2, .3, .4), no
    // weights, α = 1: column 0 has A 1 + N's (.1, .2, .3, .4) + α·background, over 2 + 1.
    const ProfileHmm amb = ProfileHmm::from_msa(ops::Msa{{"s1", "s2"}, {"AC", "NC"}},
                                                {.alphabet = dna, .background = {0.1, 0.2, 0.3, 0.4}},
                                                {.position_weights = false});
    const Probabilities pa(amb);
    CHECK(pa.match[0][0] == Approx(1.2 / 3.0).epsilon(1e-12));
    CHECK(pa.match[0][1] == Approx(0.4 / 3.0).epsilon(1e-12));
    CHECK(pa.match[0][3] == Approx(0.8 / 3.0).epsilon(1e-12));
}

TEST_CASE("ProfileHmm::from_msa on HMMER's globins4 tutorial alignment", "[ops][hmm][msa]") {
    const std::string dir = "/usr/share/doc/hmmer/examples/tutorial/";
    if (!std::filesystem::exists(dir + "globins4.sto") || !std::filesystem::exists(dir + "globins45.fa")) {
        WARN("hmmer-examples not installed (" << dir << "): skipped");
        return;
    }
    const ops::Msa msa = ops::read_msa(dir + "globins4.sto", SequenceAlphabet::protein);
    CHECK(msa.size() == 4);
    const ProfileHmm hmm = ProfileHmm::from_msa(msa);
    CHECK(hmm.length() == 149); // hmmbuild's LENG for this alignment
    const auto recs = ops::read_fasta(dir + "globins45.fa", SequenceAlphabet::protein);
    REQUIRE(recs.size() == 45);
    ops::SequenceBatch b;
    for (const auto& r : recs) b.add(SequenceAlphabet::protein, r.sequence);
    ad::Binder<double> bind;
    const auto s = hmm.apply(bind, b, exec::CpuParallel{2});
    for (std::size_t n = 0; n < b.size(); ++n) {
        INFO(recs[n].name);
        CHECK(s.bits[n] > 20.0); // every globin is a strong hit
    }
    // Shuffled sequences (same composition) score far lower.
    std::mt19937 rng(91);
    ops::SequenceBatch shuffled;
    for (std::size_t n = 0; n < 5; ++n) {
        std::string seq = recs[n].sequence;
        std::shuffle(seq.begin(), seq.end(), rng);
        shuffled.add(SequenceAlphabet::protein, seq);
    }
    for (double v : hmm.apply(bind, shuffled).bits) CHECK(v < 10.0);
}

TEST_CASE("ProfileHmm validates its inputs with named errors", "[ops][hmm][errors]") {
    CHECK_THROWS_WITH(ops::encode_sequence(dna, "ACGZ"), Contains("'Z' at position 3"));
    CHECK_THROWS_AS(ops::encode_sequence(SequenceAlphabet::protein, "AC-D"), InvalidArgument);
    CHECK(ops::encode_sequence(dna, "acgun") == std::vector<std::uint8_t>{0, 1, 2, 3, 4});
    CHECK_THROWS_WITH(ops::SequenceBatch(dna, std::vector<std::string>{"ACG", "AXG"}), Contains("sequence 1"));

    CHECK_THROWS_WITH(ProfileHmm({.length = 0}), Contains("'length'"));
    CHECK_THROWS_WITH(ProfileHmm({.temperature = 0.0}), Contains("'temperature'"));
    CHECK_THROWS_WITH(ProfileHmm({.temperature = std::nan("")}), Contains("'temperature'"));
    CHECK_THROWS_WITH(ProfileHmm({.alphabet = dna, .background = {0.5, 0.5}}), Contains("'background'"));
    CHECK_THROWS_WITH(ProfileHmm({.alphabet = dna, .background = {0.5, 0.5, -0.1, 0.1}}), Contains("background"));
    CHECK_THROWS_WITH(ProfileHmm({.init_noise = -1.0}), Contains("'init_noise'"));

    ProfileHmm hmm({.alphabet = dna, .length = 3});
    CHECK_THROWS_WITH(hmm.set_temperature(-1.0), Contains("'tau'"));
    CHECK_THROWS_WITH(hmm.set_temperature(std::numeric_limits<double>::infinity()), Contains("'tau'"));
    ad::Binder<double> bind;
    ops::SequenceBatch b = batch({"ACG", "T"});
    b.codes[1] = 9;
    CHECK_THROWS_WITH(hmm.apply(bind, b), Contains("sequence 0, position 1: code 9"));
    b.codes[1] = 1;
    b.offsets = {0, 3, 3, 4};
    CHECK_THROWS_WITH(hmm.apply(bind, b), Contains("sequence 1 is empty"));
    b.offsets = {0, 2};
    CHECK_THROWS_AS(hmm.apply(bind, b), ShapeError);

    const ops::SequenceBatch good = batch({"ACG"});
    hmm.match_logits().values()[4] = std::nan("");
    CHECK_THROWS_WITH(hmm.apply(bind, good), Contains("'profile_hmm_match_logits'") && Contains("index 4"));
    CHECK_THROWS_AS(hmm.posteriors(good), InvalidArgument);
    hmm.match_logits().values()[4] = 0.0;
    hmm.log_temperature().values()[0] = 1e6;
    CHECK_THROWS_WITH(hmm.viterbi(good), Contains("temperature"));
    hmm.log_temperature().values()[0] = 0.0;

    const std::vector<std::size_t> lengths{2};
    const std::vector<double> short_rows(7, 0.25), negative{1, 0, 0, 0, -1, 0, 0, 0}, zero{1, 0, 0, 0, 0, 0, 0, 0};
    CHECK_THROWS_AS(hmm.apply(bind, ops::SoftSequences<double>{short_rows, lengths}), ShapeError);
    CHECK_THROWS_WITH(hmm.apply(bind, ops::SoftSequences<double>{negative, lengths}),
                      Contains("position 1") && Contains("-1"));
    CHECK_THROWS_WITH(hmm.apply(bind, ops::SoftSequences<double>{zero, lengths}), Contains("all zero"));
    const std::vector<double> nan_row{1, 0, 0, 0, 0, std::nan(""), 0, 0};
    CHECK_THROWS_WITH(hmm.apply(bind, ops::SoftSequences<double>{nan_row, lengths}), Contains("finite"));
    CHECK(hmm.apply(bind, ops::SequenceBatch{}).score.empty());
}

TEST_CASE("Alignment parsers report the file and line of malformed input", "[ops][hmm][msa][errors]") {
    auto sto = [](const std::string& text) {
        std::istringstream in(text);
        return ops::parse_stockholm(in, dna, "x.sto");
    };
    CHECK_THROWS_WITH(sto("\nAC GT\n//\n"), Contains("x.sto:2:") && Contains("STOCKHOLM"));
    CHECK_THROWS_WITH(sto("# STOCKHOLM 1.0\na ACGT\nb ACGT\n"), Contains("x.sto:3:") && Contains("'//'"));
    CHECK_THROWS_WITH(sto("# STOCKHOLM 1.0\na ACGT\nb ACG\n//\n"),
                      Contains("x.sto:3:") && Contains("'b' has 3 columns"));
    CHECK_THROWS_WITH(sto("# STOCKHOLM 1.0\na ACGT\nb ACGT\nc ACG\n//\n"), // any row, not only the second
                      Contains("x.sto:4:") && Contains("'c' has 3 columns"));
    for (const char g : {'-', '.', '_', '~'}) CHECK(ops::is_gap_character(g));
    for (const char g : {'A', '*', ' ', 'N'}) CHECK_FALSE(ops::is_gap_character(g));
    CHECK_THROWS_WITH(sto("# STOCKHOLM 1.0\na ACGT\nb AC*T\n//\n"),
                      Contains("x.sto:3:") && Contains("'*' at position 2"));
    CHECK_THROWS_WITH(sto("# STOCKHOLM 1.0\na\n//\n"), Contains("x.sto:2:") && Contains("no aligned sequence"));
    CHECK_THROWS_WITH(sto("# STOCKHOLM 1.0\n#=GF ID x\n//\n"), Contains("x.sto:3:") && Contains("no sequences"));
    CHECK_THROWS_WITH(sto("# STOCKHOLM 1.0\na AC GT\n//\n"), Contains("x.sto:2:"));
    CHECK_THROWS_AS(sto(""), ParseError);
    // interleaved blocks are appended by name
    const ops::Msa ok = sto("# STOCKHOLM 1.0\na AC\nb A-\n\na GT\nb .T\n//\n");
    CHECK(ok.rows == std::vector<std::string>{"ACGT", "A-.T"});

    std::istringstream fa(">a desc\nAC-T\n>b\nAC\n");
    CHECK_THROWS_WITH(ops::parse_aligned_fasta(fa, dna, "x.fa"), Contains("x.fa:3:") && Contains("'b' has 2 columns"));
    std::istringstream plain(">a\nAC-T\n");
    CHECK_THROWS_WITH(ops::parse_fasta(plain, dna, "y.fa"), Contains("y.fa:2:") && Contains("'-'"));
    std::istringstream orphan("ACGT\n>a\nAC\n");
    CHECK_THROWS_WITH(ops::parse_fasta(orphan, dna, "z.fa"), Contains("z.fa:1:"));
    std::istringstream what("\n\nhello\n");
    CHECK_THROWS_WITH(ops::parse_msa(what, dna, "w.aln"), Contains("w.aln:3:"));
    std::istringstream afa(">a\nAC-T\n>b\nA--T\n");
    CHECK(ops::parse_msa(afa, dna).rows == std::vector<std::string>{"AC-T", "A--T"});
    CHECK_THROWS_AS(ops::read_msa("/nonexistent/x.sto", dna), Error);

    std::istringstream gappy("# STOCKHOLM 1.0\na A--\nb -C-\nc --G\n//\n");
    CHECK_THROWS_WITH(ProfileHmm::from_msa(ops::parse_stockholm(gappy, dna), {.alphabet = dna}), Contains("no column"));
    CHECK_THROWS_AS(ProfileHmm::from_msa(ops::Msa{}), InvalidArgument);
    CHECK_THROWS_WITH(ProfileHmm::from_msa(ops::Msa{{"a"}, {"ACGT"}}, {.alphabet = dna}, {.symfrac = 0.0}),
                      Contains("'symfrac'"));
    CHECK_THROWS_WITH(ProfileHmm::from_msa(ops::Msa{{"a"}, {"ACXT"}}, {.alphabet = dna}), Contains("'X'"));
}
