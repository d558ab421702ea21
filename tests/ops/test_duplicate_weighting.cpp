#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cmath>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <diffbio/ops/preprocessing/duplicate_weighting.hpp>

#include "expect_ad.hpp"
#include "read_fixtures.hpp"
#include "expect_params.hpp"

using namespace diffbio;

namespace {
using diffbio::test::batch_of;
const std::string a = "TTGCATCCGTAACTGGTCATTGCAGC";
const std::string c = "GACCTAGGATTTACGCACGTAACGTA";
} // namespace

TEST_CASE("DuplicateWeighting: a single read weighs 1, embeddings are unit vectors", "[ops][duplicates]") {
    const ReadBatch b = batch_of({a});
    ops::DuplicateWeighting dw;
    ad::Binder<double> bind;
    const auto r = dw.apply(bind, ops::view_of(b));
    CHECK(r.weights == std::vector<double>{1.0});
    double n2 = 0;
    for (double e : r.embeddings) n2 += e * e;
    CHECK(r.embeddings.size() == 32);
    CHECK(n2 == Approx(1.0).epsilon(1e-7));
}

TEST_CASE("DuplicateWeighting: DiffBio's defaults; the kernel starts as N(0, 0.1²) draws", "[ops][duplicates]") {
    const ops::DuplicateWeightingConfig c;
    CHECK(c.embedding_dim == 32);
    CHECK(c.kernel_width == 7);
    CHECK(c.similarity_threshold == 0.9);
    CHECK(c.temperature == 1.0);
    CHECK(c.learnable_temperature);
    ops::DuplicateWeighting dw;
    CHECK(dw.log_temperature().values()[0] == 0.0); // log 1
    // 7·4·32 = 896 draws: mean and standard deviation within 5 standard errors of 0 and 0.1
    const std::span<const double> k = dw.kernel().values();
    REQUIRE(k.size() == 896);
    const double n = static_cast<double>(k.size());
    const double mean = std::accumulate(k.begin(), k.end(), 0.0) / n;
    double ss = 0.0;
    for (double v : k) ss += (v - mean) * (v - mean);
    const double sd = std::sqrt(ss / (n - 1.0));
    CHECK(std::fabs(mean) < 5.0 * 0.1 / std::sqrt(n));
    CHECK(std::fabs(sd - 0.1) < 5.0 * 0.1 / std::sqrt(2.0 * n));
    CHECK(*std::max_element(k.begin(), k.end()) < 0.6); // 6 standard deviations
    CHECK(*std::min_element(k.begin(), k.end()) > -0.6);
}

TEST_CASE("DuplicateWeighting: exact copies share weight, hard limit gives 1/cluster size", "[ops][duplicates][limit]") {
    // Three copies of a, one c: sizes → 3, 3, 3, 1 at τ → 0 with a threshold between the
    // similarities; raw = 1/3, 1/3, 1/3, 1; mean 0.5 → weights 2/3, 2/3, 2/3, 2.
    const ReadBatch b = batch_of({a, a, c, a});
    ops::DuplicateWeighting dw({.similarity_threshold = 0.9999, .temperature = 1e-7, .learnable_temperature = false});
    ad::Binder<double> bind;
    const auto r = dw.apply(bind, ops::view_of(b));
    // the two embeddings differ enough for this threshold
    double s = 0;
    for (int e = 0; e < 32; ++e) s += r.embeddings[static_cast<std::size_t>(e)] * r.embeddings[static_cast<std::size_t>(64 + e)];
    REQUIRE(s < 0.9999);
    CHECK(r.weights[0] == Approx(2.0 / 3.0).epsilon(1e-12));
    CHECK(r.weights[1] == Approx(2.0 / 3.0).epsilon(1e-12));
    CHECK(r.weights[2] == Approx(2.0).epsilon(1e-12));
    CHECK(r.weights[3] == Approx(2.0 / 3.0).epsilon(1e-12));
    CHECK(std::accumulate(r.weights.begin(), r.weights.end(), 0.0) / 4.0 == Approx(1.0));
    CHECK(dw.duplicate_flags(ops::view_of(b)) == std::vector<bool>{false, true, false, true});
}

TEST_CASE("DuplicateWeighting: reads shorter than the kernel get a zero embedding, not NaN", "[ops][duplicates]") {
    const ReadBatch b = batch_of({"ACG", a});
    ops::DuplicateWeighting dw;
    ad::Binder<double> bind;
    const auto r = dw.apply(bind, ops::view_of(b));
    for (int e = 0; e < 32; ++e) CHECK(r.embeddings[static_cast<std::size_t>(e)] == 0.0);
    for (double w : r.weights) CHECK(std::isfinite(w));
}

TEST_CASE("DuplicateWeighting gradients: fused nodes = Dual = finite differences", "[ops][duplicates][ad]") {
    const ReadBatch b = batch_of({a.substr(0, 12), a.substr(0, 12), c.substr(0, 10), "ACGTAC"});
    ops::DuplicateWeighting dw({.embedding_dim = 4, .kernel_width = 3, .similarity_threshold = 0.5, .temperature = 0.3,
                                .block_size = 3});
    const std::vector<double> x(b.one_hot.begin(), b.one_hot.end());
    auto f = [&](auto v) {
        using T = std::decay_t<decltype(v[0])>;
        std::vector<T> seq(v.begin(), v.end());
        const ops::ReadsView<T, float> view{seq, b.quality, b.lengths, b.num_reads, b.length};
        auto bind = diffbio::test::make_binder<T>();
        const auto r = dw.apply(bind, view);
        std::vector<T> out = r.weights;
        out.insert(out.end(), r.embeddings.begin(), r.embeddings.begin() + 6);
        return out;
    };
    diffbio::test::expect_ad(f, x, {.check_float = false});

    // Parameters: kernel entries, threshold, log temperature.
    auto loss = [&](auto& bind) {
        const auto r = dw.apply(bind, ops::view_of(b));
        using R = std::decay_t<decltype(r.weights[0])>;
        R s = R(0.0);
        for (std::size_t i = 0; i < r.weights.size(); ++i) s = s + r.weights[i] * (1.0 + static_cast<double>(i));
        return s;
    };
    diffbio::test::expect_parameter_gradients(dw.parameters(), loss, {.samples = 6});
}

TEST_CASE("DuplicateWeighting: CpuParallel equals Cpu", "[ops][duplicates][exec]") {
    std::vector<std::string> reads;
    for (int i = 0; i < 40; ++i) reads.push_back(i % 3 == 0 ? a : (i % 3 == 1 ? c : a.substr(static_cast<std::size_t>(i % 5))));
    const ReadBatch b = batch_of(reads);
    ops::DuplicateWeighting dw({.block_size = 7});
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    ad::Binder<ad::Var> b1(tape), b2(tape);
    const auto r1 = dw.apply(b1, ops::view_of(b), exec::Cpu{});
    const auto r2 = dw.apply(b2, ops::view_of(b), exec::CpuParallel{2});
    for (std::size_t i = 0; i < r1.weights.size(); ++i) CHECK(r2.weights[i].value() == Approx(r1.weights[i].value()).epsilon(1e-12));
}

namespace {
/// 70 seeded random reads of lengths 5..150 (several chunks of the batched convolution, reads
/// shorter than the kernel, padding) with a few exact copies.
ReadBatch chunked_batch() {
    std::vector<std::string> reads;
    std::uint64_t state = 12345;
    const auto next = [&state] {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<std::size_t>(state >> 33);
    };
    for (int i = 0; i < 70; ++i) {
        if (i % 9 == 4) {
            reads.push_back(reads.back()); // an exact copy
            continue;
        }
        const std::size_t len = i == 3 ? 5 : 20 + next() % 131;
        std::string r(len, 'A');
        for (char& ch : r) ch = "ACGT"[next() % 4];
        reads.push_back(r);
    }
    return batch_of(reads);
}

struct VarRun {
    std::vector<double> weights, gseq, gparam;
};

/// L = Σ_i w_i·(1 + i/7) + Σ_k sin(k)·ê_k with Var, gradients w.r.t. the reads and parameters.
template <class P>
VarRun var_run(ops::DuplicateWeighting& dw, const ReadBatch& b, const P& policy) {
    VarRun r;
    for (ad::Parameter* p : dw.parameters()) p->zero_grad();
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const std::vector<double> x(b.one_hot.begin(), b.one_hot.end());
    const auto xs = tape.variables(x);
    const std::vector<ad::Var> seq(xs.begin(), xs.end());
    const ops::ReadsView<ad::Var, float> view{seq, b.quality, b.lengths, b.num_reads, b.length};
    ad::Binder<ad::Var> bind(tape);
    const auto out = dw.apply(bind, view, policy);
    ad::Var loss = 0.0;
    for (std::size_t i = 0; i < out.weights.size(); ++i) {
        r.weights.push_back(out.weights[i].value());
        loss += out.weights[i] * (1.0 + static_cast<double>(i) / 7.0);
    }
    for (std::size_t k = 0; k < out.embeddings.size(); ++k) loss += std::sin(static_cast<double>(k)) * out.embeddings[k];
    tape.backward(loss);
    bind.accumulate_grad();
    r.gseq.resize(x.size());
    tape.adjoints(xs, r.gseq);
    for (ad::Parameter* p : dw.parameters()) r.gparam.insert(r.gparam.end(), p->grad().begin(), p->grad().end());
    return r;
}

double max_abs(const std::vector<double>& v) {
    double m = 0.0;
    for (double x : v) m = std::max(m, std::fabs(x));
    return m;
}
double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
    double m = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
    return m;
}
} // namespace

TEST_CASE("DuplicateWeighting: the batched convolution over chunks of reads equals the direct formulas",
          "[ops][duplicates]") {
    const ReadBatch b = chunked_batch();
    REQUIRE(b.length == 150); // 27 reads per chunk: 3 chunks
    ops::DuplicateWeighting dw({.similarity_threshold = 0.6, .temperature = 0.2});
    ad::Binder<double> bd;
    const auto r = dw.apply(bd, ops::view_of(b));
    ad::Binder<ad::Dual<double>> bdual; // the generic path: per read, per window, no GEMM
    const auto g = dw.apply(bdual, ops::view_of(b));
    REQUIRE(r.embeddings.size() == g.embeddings.size());
    for (std::size_t k = 0; k < r.embeddings.size(); ++k) CHECK(r.embeddings[k] == Approx(g.embeddings[k].value).margin(1e-13));
    for (std::size_t i = 0; i < r.weights.size(); ++i) CHECK(r.weights[i] == Approx(g.weights[i].value).epsilon(1e-12));
    for (int e = 0; e < 32; ++e) CHECK(r.embeddings[static_cast<std::size_t>(3 * 32 + e)] == 0.0); // read 3: 5 bp < W
    // the copies weigh less than 1 (they cluster), and share their weight
    CHECK(r.weights[4] == Approx(r.weights[3]).epsilon(1e-12));
    CHECK(r.weights[13] == Approx(r.weights[12]).epsilon(1e-12));
    CHECK(r.weights[13] < 1.0);
    ad::Binder<float> bf;
    const auto f = dw.apply(bf, ops::view_of(b));
    for (std::size_t k = 0; k < r.embeddings.size(); ++k) CHECK(f.embeddings[k] == Approx(r.embeddings[k]).margin(1e-5));
    for (std::size_t i = 0; i < r.weights.size(); ++i) CHECK(f.weights[i] == Approx(r.weights[i]).epsilon(1e-4));
}

TEST_CASE("DuplicateWeighting: chunked reverse mode = Dual; CpuParallel and float_gradient agree", "[ops][duplicates][ad]") {
    const ReadBatch b = chunked_batch();
    ops::DuplicateWeighting dw({.similarity_threshold = 0.6, .temperature = 0.2});
    const VarRun ref = var_run(dw, b, exec::Cpu{});
    // read gradients in every chunk against forward mode
    for (const std::size_t read : {std::size_t{1}, std::size_t{30}, std::size_t{61}}) {
        for (const std::size_t pos : {std::size_t{0}, std::size_t{9}}) {
            const std::size_t j = (read * b.length + pos) * 4 + 2;
            std::vector<ad::Dual<double>> seq(b.one_hot.begin(), b.one_hot.end());
            seq[j].tangent = 1.0;
            const ops::ReadsView<ad::Dual<double>, float> view{seq, b.quality, b.lengths, b.num_reads, b.length};
            ad::Binder<ad::Dual<double>> bind;
            const auto out = dw.apply(bind, view);
            double d = 0.0;
            for (std::size_t i = 0; i < out.weights.size(); ++i) d += out.weights[i].tangent * (1.0 + static_cast<double>(i) / 7.0);
            for (std::size_t k = 0; k < out.embeddings.size(); ++k) d += std::sin(static_cast<double>(k)) * out.embeddings[k].tangent;
            INFO("read " << read << " position " << pos);
            CHECK(ref.gseq[j] == Approx(d).epsilon(1e-9).margin(1e-12));
        }
    }
    REQUIRE(max_abs(ref.gseq) > 0.0);
    REQUIRE(max_abs(ref.gparam) > 0.0);
    const VarRun par = var_run(dw, b, exec::CpuParallel{2});
    CHECK(max_abs_diff(par.weights, ref.weights) < 1e-13);
    CHECK(max_abs_diff(par.gseq, ref.gseq) < 1e-12 * max_abs(ref.gseq));
    CHECK(max_abs_diff(par.gparam, ref.gparam) < 1e-12 * max_abs(ref.gparam));
    // tiles of 16: 70 reads in 5 row tiles (the last partial), 10 off-diagonal tile pairs whose
    // backward adds H_IJ E_J and H_IJᵀ E_I, against the lone 70 × 70 tile above
    ops::DuplicateWeighting dw16({.similarity_threshold = 0.6, .temperature = 0.2, .block_size = 16});
    for (const int threads : {1, 2}) {
        const VarRun t16 = threads == 1 ? var_run(dw16, b, exec::Cpu{}) : var_run(dw16, b, exec::CpuParallel{2});
        INFO(threads << " thread(s), tiles of 16");
        CHECK(max_abs_diff(t16.weights, ref.weights) < 1e-13);
        CHECK(max_abs_diff(t16.gseq, ref.gseq) < 1e-12 * max_abs(ref.gseq));
        CHECK(max_abs_diff(t16.gparam, ref.gparam) < 1e-12 * max_abs(ref.gparam));
    }
    ops::DuplicateWeighting dwf({.similarity_threshold = 0.6, .temperature = 0.2, .float_gradient = true});
    for (const int threads : {1, 2}) {
        const VarRun fl = threads == 1 ? var_run(dwf, b, exec::Cpu{}) : var_run(dwf, b, exec::CpuParallel{2});
        INFO(threads << " thread(s): max |Δw| " << max_abs_diff(fl.weights, ref.weights) << ", max |Δ read grad| "
                     << max_abs_diff(fl.gseq, ref.gseq) << ", max |Δ param grad| " << max_abs_diff(fl.gparam, ref.gparam));
        CHECK(max_abs_diff(fl.weights, ref.weights) < 1e-4);
        CHECK(max_abs_diff(fl.gseq, ref.gseq) < 1e-3 * max_abs(ref.gseq));
        CHECK(max_abs_diff(fl.gparam, ref.gparam) < 1e-3 * max_abs(ref.gparam));
        CHECK(max_abs_diff(fl.weights, ref.weights) > 0.0); // the float kernels ran
    }
}

TEST_CASE("DuplicateWeighting: soft and masked reads (0 to 4 nonzero bases a position) equal the direct formulas",
          "[ops][duplicates]") {
    const ReadBatch b = chunked_batch();
    // reads i ≡ 0 (mod 4): scaled one-hot (one nonzero a position, values != 1); i ≡ 1: positions
    // with 2, 0 (masked) or 1 nonzero bases; i ≡ 2: 3, 0 or 1; i ≡ 3: 4, 2, 0, 1 or 3
    std::vector<double> x(b.one_hot.begin(), b.one_hot.end());
    for (std::size_t i = 0; i < b.num_reads; ++i) {
        for (std::size_t p = 0; p < b.lengths[i]; ++p) {
            double* xp = x.data() + (i * b.length + p) * 4;
            const std::size_t hot = static_cast<std::size_t>(std::max_element(xp, xp + 4) - xp);
            const std::size_t kinds[4][5] = {{3, 3, 3, 3, 3}, {1, 2, 3, 1, 3}, {4, 2, 3, 4, 3}, {0, 1, 2, 3, 4}};
            const std::size_t kind = kinds[i % 4][(i + p) % 5];
            for (std::size_t a = 0; a < 4; ++a) {
                if (kind == 0) xp[a] = a == hot ? 0.7 : 0.1;
                else if (kind == 1) xp[a] = a == hot ? 0.6 : (a == (hot + 1) % 4 ? 0.4 : 0.0);
                else if (kind == 2) xp[a] = 0.0;
                else if (kind == 4) xp[a] = a == hot ? 0.5 : (a == (hot + 2) % 4 ? 0.0 : 0.25);
                else xp[a] = a == hot ? 0.3 + 0.01 * static_cast<double>(p % 50) : 0.0;
            }
        }
    }
    // E = 32: whole SIMD packs of features; E = 5: a partial pack (the features one by one)
    for (const std::size_t E : {std::size_t{32}, std::size_t{5}}) {
        INFO("embedding_dim " << E);
        ops::DuplicateWeighting dw({.embedding_dim = E, .kernel_width = E == 5 ? std::size_t{4} : std::size_t{7}, .similarity_threshold = 0.6,
                                    .temperature = 0.2, .block_size = 16});
        const ops::ReadsView<double, float> view{x, b.quality, b.lengths, b.num_reads, b.length};
        ad::Binder<double> bd;
        const auto r = dw.apply(bd, view);
        const auto rp = dw.apply(bd, view, exec::CpuParallel{2});
        const std::vector<ad::Dual<double>> xd(x.begin(), x.end());
        const ops::ReadsView<ad::Dual<double>, float> dview{xd, b.quality, b.lengths, b.num_reads, b.length};
        ad::Binder<ad::Dual<double>> bdual;
        const auto g = dw.apply(bdual, dview);
        REQUIRE(r.embeddings.size() == g.embeddings.size());
        for (std::size_t k = 0; k < r.embeddings.size(); ++k) CHECK(r.embeddings[k] == Approx(g.embeddings[k].value).margin(1e-13));
        for (std::size_t i = 0; i < r.weights.size(); ++i) {
            CHECK(r.weights[i] == Approx(g.weights[i].value).epsilon(1e-12));
            CHECK(rp.weights[i] == Approx(r.weights[i]).epsilon(1e-13));
        }
        const std::vector<float> xf(x.begin(), x.end());
        const ops::ReadsView<float, float> fview{xf, b.quality, b.lengths, b.num_reads, b.length};
        ad::Binder<float> bf;
        const auto f = dw.apply(bf, fview);
        for (std::size_t k = 0; k < r.embeddings.size(); ++k) CHECK(f.embeddings[k] == Approx(r.embeddings[k]).margin(1e-5));
        for (std::size_t i = 0; i < r.weights.size(); ++i) CHECK(f.weights[i] == Approx(r.weights[i]).epsilon(1e-4));

        // reverse mode on these reads (the backward's convolution with 1..4 slots a position)
        // against forward mode: kernel entries and read entries. (Finite differences are too
        // noisy here: ~7,000 windows × E ReLUs, some within any step of their kink; the first
        // test case checks them on small reads.)
        auto loss_of = [&](auto& bind, const auto& v) {
            const auto out = dw.apply(bind, v);
            using R = std::decay_t<decltype(out.weights[0])>;
            R l = R(0.0);
            for (std::size_t i = 0; i < out.weights.size(); ++i) l = l + out.weights[i] * (1.0 + static_cast<double>(i) / 7.0);
            for (std::size_t k = 0; k < out.embeddings.size(); k += 3) l = l + std::sin(static_cast<double>(k)) * out.embeddings[k];
            return l;
        };
        ad::Tape tape;
        ad::ScopedTape scope(tape);
        const auto xs = tape.variables(x);
        const std::vector<ad::Var> xv(xs.begin(), xs.end());
        ad::Binder<ad::Var> bv(tape);
        tape.backward(loss_of(bv, ops::ReadsView<ad::Var, float>{xv, b.quality, b.lengths, b.num_reads, b.length}));
        std::vector<double> gx(x.size());
        tape.adjoints(xs, gx);
        dw.kernel().zero_grad();
        bv.accumulate_grad();
        for (std::size_t k = 0; k < dw.kernel().size(); k += dw.kernel().size() / 7 + 1) {
            ad::Binder<ad::Dual<double>> bt;
            bt.seed(dw.kernel(), k);
            const double d = loss_of(bt, view).tangent;
            INFO("kernel entry " << k);
            CHECK(dw.kernel().grad()[k] == Approx(d).epsilon(1e-9).margin(1e-12));
        }
        for (const std::size_t read : {std::size_t{1}, std::size_t{34}, std::size_t{67}}) {
            for (const std::size_t j : {(read * b.length + 2) * 4 + 1, (read * b.length + 11) * 4 + 3}) {
                std::vector<ad::Dual<double>> xt(x.begin(), x.end());
                xt[j].tangent = 1.0;
                ad::Binder<ad::Dual<double>> bt;
                const double d = loss_of(bt, ops::ReadsView<ad::Dual<double>, float>{xt, b.quality, b.lengths, b.num_reads, b.length}).tangent;
                INFO("read " << read << ", entry " << j);
                CHECK(gx[j] == Approx(d).epsilon(1e-9).margin(1e-12));
            }
        }
    }
}
