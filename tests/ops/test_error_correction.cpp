#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include <diffbio/ops/preprocessing/error_correction.hpp>

#include "expect_ad.hpp"
#include "expect_params.hpp"

using diffbio::ad::Binder;
using diffbio::ad::Dual;
using diffbio::ad::Parameter;
using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::ad::Var;
using diffbio::ops::ErrorCorrection;
using diffbio::ops::ErrorCorrectionConfig;
using diffbio::test::expect_ad;
namespace exec = diffbio::exec;

namespace {

using diffbio::test::make_binder;

/// A tiny padded batch: reads of the given lengths padded to L, one-hot bases (one soft-masked
/// row with mass 0.4 in read 0), Phred qualities; padding holds garbage that must be ignored.
struct Batch {
    std::size_t n = 0, length = 0;
    std::vector<std::uint32_t> lengths;
    std::vector<double> seq, qual;

    Batch(std::vector<std::uint32_t> lens, std::size_t padded) : n(lens.size()), length(padded), lengths(std::move(lens)) {
        seq.assign(n * length * 4, 0.0);
        qual.assign(n * length, 0.0);
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t l = 0; l < length; ++l) {
                const std::size_t p = i * length + l;
                if (l < lengths[i]) {
                    seq[p * 4 + (3 * i + 5 * l + l * l) % 4] = 1.0;
                    qual[p] = 12.0 + static_cast<double>((7 * p) % 29);
                } else {
                    for (std::size_t a = 0; a < 4; ++a) seq[p * 4 + a] = 0.3 + 0.1 * static_cast<double>(a); // garbage
                    qual[p] = 99.0;
                }
            }
        }
        // a soft-masked base (e.g. after a quality filter): mass 0.4
        for (std::size_t a = 0; a < 4; ++a) seq[1 * 4 + a] *= 0.4;
    }
    /// seq then quality, as one vector (the expect_ad point).
    std::vector<double> packed() const {
        std::vector<double> v(seq);
        v.insert(v.end(), qual.begin(), qual.end());
        return v;
    }
};

ErrorCorrectionConfig tiny_config() {
    ErrorCorrectionConfig c;
    c.window_size = 3;
    c.hidden_dim = 4;
    c.num_layers = 2;
    c.seed = 17;
    return c;
}

/// Give the tiny network non-trivial biases so that no ReLU sits at a kink by accident.
void perturb(ErrorCorrection& ec) {
    std::size_t k = 0;
    for (Parameter* p : ec.parameters()) {
        if (p->name().find("bias") == std::string::npos) continue;
        for (double& v : p->values()) v = 0.05 * std::sin(1.7 * static_cast<double>(++k));
    }
}

template <class T, class S>
std::vector<T> run(const ErrorCorrection& ec, Binder<T>& bind, const std::vector<S>& v, const Batch& b) {
    const std::span<const S> all(v);
    return ec.apply(bind, all.first(b.n * b.length * 4), all.subspan(b.n * b.length * 4), std::span<const std::uint32_t>(b.lengths),
                    b.n, b.length);
}

} // namespace

TEST_CASE("ErrorCorrectionConfig: bad values throw InvalidArgument naming the field", "[ops][error_correction]") {
    const auto throws_naming = [](ErrorCorrectionConfig c, const char* field) {
        INFO(field);
        CHECK_THROWS_AS(ErrorCorrection(c), diffbio::InvalidArgument);
        CHECK_THROWS_WITH(c.validate(), Catch::Contains(field));
    };
    ErrorCorrectionConfig c;
    c.window_size = 4;
    throws_naming(c, "window_size");
    c.window_size = 0;
    throws_naming(c, "window_size");
    c = {};
    c.hidden_dim = 0;
    throws_naming(c, "hidden_dim");
    for (const double t : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
        c = {};
        c.temperature = t;
        throws_naming(c, "temperature");
    }
    c = {};
    c.blend_init = std::numeric_limits<double>::infinity();
    throws_naming(c, "blend_init");
    CHECK_NOTHROW(ErrorCorrectionConfig{}.validate());
}

TEST_CASE("ErrorCorrection: defaults, parameters, confidence", "[ops][error_correction]") {
    ErrorCorrection ec;
    CHECK(ec.input_dim() == 55);
    CHECK(ec.confidence() == Approx(1.0 / (1.0 + std::exp(-0.5))).epsilon(1e-15)); // σ(0.5) ≈ 0.6225
    CHECK(ec.temperature() == Approx(1.0).epsilon(1e-15));
    const auto params = ec.parameters();
    REQUIRE(params.size() == 2 * 2 + 2 + 2); // backbone (2 layers), output layer, β, log T
    CHECK(params[0]->size() == 55 * 64);
    CHECK(params[2]->size() == 64 * 64);
    CHECK(params[4]->size() == 64 * 4);
    CHECK(params[6]->name() == "error_correction.blend");
    CHECK(params[7]->name() == "error_correction.log_temperature");
    ErrorCorrectionConfig c;
    c.learnable_temperature = false;
    c.num_layers = 0;
    c.use_quality = false;
    ErrorCorrection fixed(c);
    CHECK(fixed.parameters().size() == 3); // output layer (44 -> 4), β
    CHECK(fixed.parameters()[0]->size() == 44 * 4);
}

TEST_CASE("ErrorCorrection: shapes, padding, mass conservation", "[ops][error_correction]") {
    ErrorCorrection ec(tiny_config());
    perturb(ec);
    const Batch b({5, 3}, 5);
    Binder<double> bind;
    const auto out = run(ec, bind, b.packed(), b);
    REQUIRE(out.size() == 40);
    for (std::size_t i = 0; i < b.n; ++i) {
        for (std::size_t l = 0; l < b.length; ++l) {
            const std::size_t p = (i * b.length + l) * 4;
            const double sum = out[p] + out[p + 1] + out[p + 2] + out[p + 3];
            const double mass = b.seq[p] + b.seq[p + 1] + b.seq[p + 2] + b.seq[p + 3];
            if (l >= b.lengths[i]) {
                CHECK(sum == 0.0); // padding row
                for (std::size_t a = 0; a < 4; ++a) CHECK(out[p + a] == 0.0);
            } else {
                CHECK(sum == Approx(mass).epsilon(1e-14)); // 1 for one-hot rows, 0.4 for the masked one
                for (std::size_t a = 0; a < 4; ++a) CHECK(out[p + a] >= 0.0);
            }
        }
    }
    CHECK(out[4] + out[5] + out[6] + out[7] == Approx(0.4).epsilon(1e-14));
    // Padding content is never read: changing it changes nothing.
    Batch b2 = b;
    for (std::size_t a = 0; a < 4; ++a) b2.seq[(1 * b.length + 4) * 4 + a] = 7.0;
    b2.qual[1 * b.length + 3] = -5.0;
    CHECK(run(ec, bind, b2.packed(), b2) == out);
    // A batch with a single valid base (and an empty read) is corrected like any other: the one
    // row keeps its mass, the network moves some of it, and the generic (Dual) path agrees.
    const Batch one({1, 0}, 2);
    const auto o1 = run(ec, bind, one.packed(), one);
    REQUIRE(o1.size() == 16);
    CHECK(o1[0] + o1[1] + o1[2] + o1[3] == Approx(1.0).epsilon(1e-14));
    CHECK(*std::max_element(o1.begin(), o1.begin() + 4) < 1.0); // the network moved some mass
    for (std::size_t k = 4; k < 16; ++k) CHECK(o1[k] == 0.0);
    Binder<Dual<double>> bd;
    const auto d1 = run(ec, bd, one.packed(), one);
    for (std::size_t k = 0; k < 16; ++k) CHECK(d1[k].value == Approx(o1[k]).epsilon(1e-13).margin(1e-15));
    // Shape errors
    const std::vector<std::uint32_t> too_long{6, 3};
    CHECK_THROWS_AS(ec.apply(bind, std::span<const double>(b.seq), std::span<const double>(b.qual),
                             std::span<const std::uint32_t>(too_long), 2, 5),
                    diffbio::ShapeError);
    CHECK_THROWS_AS(ec.apply(bind, std::span<const double>(b.seq).first(36), std::span<const double>(b.qual),
                             std::span<const std::uint32_t>(b.lengths), 2, 5),
                    diffbio::ShapeError);
    // NaN and inf are rejected, in padding too (a ReLU would turn a NaN into a silent 0)
    b2.qual[1 * b.length + 3] = std::nan("");
    CHECK_THROWS_WITH(run(ec, bind, b2.packed(), b2), Catch::Contains("ErrorCorrection: quality at read 1, position 3 is not finite (nan)"));
}

TEST_CASE("ErrorCorrection: beta -> inf and T -> 0 give the one-hot argmax of the network", "[ops][error_correction][limit]") {
    ErrorCorrectionConfig c = tiny_config();
    c.temperature = 1e-7;
    c.blend_init = 60.0; // σ(60) = 1 in double
    ErrorCorrection ec(c);
    perturb(ec);
    const Batch b({5, 3}, 5);
    Binder<double> bind;
    const auto out = run(ec, bind, b.packed(), b);
    const auto z = ec.logits(bind, std::span<const double>(b.seq), std::span<const double>(b.qual),
                             std::span<const std::uint32_t>(b.lengths), b.n, b.length);
    for (std::size_t i = 0; i < b.n; ++i) {
        for (std::size_t l = 0; l < b.lengths[i]; ++l) {
            const std::size_t p = (i * b.length + l) * 4;
            const auto best = std::max_element(z.begin() + static_cast<std::ptrdiff_t>(p), z.begin() + static_cast<std::ptrdiff_t>(p + 4)) -
                              (z.begin() + static_cast<std::ptrdiff_t>(p));
            const double mass = b.seq[p] + b.seq[p + 1] + b.seq[p + 2] + b.seq[p + 3];
            for (std::size_t a = 0; a < 4; ++a) CHECK(out[p + a] == (static_cast<std::ptrdiff_t>(a) == best ? mass : 0.0));
        }
    }
    // A learned log T far below any sensible value (1/T would overflow): still the hard limit,
    // finite values and gradients.
    ec.log_temperature().values()[0] = -800.0;
    CHECK(run(ec, bind, b.packed(), b) == out);
    Binder<float> bf;
    const auto packed = b.packed();
    const auto outf = run(ec, bf, std::vector<float>(packed.begin(), packed.end()), b);
    for (std::size_t k = 0; k < out.size(); ++k) CHECK(outf[k] == Approx(out[k]).margin(1e-6));
    Tape tape;
    ScopedTape scope(tape);
    Binder<Var> bv(tape);
    const auto x = tape.variables(b.packed());
    const auto y = run(ec, bv, std::vector<Var>(x.begin(), x.end()), b);
    Var loss = 0.0;
    for (std::size_t k = 0; k < y.size(); ++k) loss += std::sin(static_cast<double>(k)) * y[k];
    tape.backward(loss);
    for (const Var& v : x) CHECK(std::isfinite(tape.adjoint(v)));
    bv.accumulate_grad();
    for (Parameter* p : ec.parameters()) {
        for (const double g : p->grad()) CHECK(std::isfinite(g));
    }
}

TEST_CASE("ErrorCorrection: the fused window layer equals a Linear on the explicit window matrix", "[ops][error_correction]") {
    ErrorCorrection ec(tiny_config());
    perturb(ec);
    const Batch b({5, 3}, 5);
    const std::span<const std::uint32_t> lens(b.lengths);
    const auto f = ec.window_features(std::span<const double>(b.seq), std::span<const double>(b.qual), lens, b.n, b.length);
    REQUIRE(f.size() == 10 * 15);
    // row (read 1, l = 0): window positions −1 (outside), 0, 1; channel 4 is q/40
    const double* r = f.data() + (1 * 5 + 0) * 15;
    for (std::size_t k = 0; k < 5; ++k) CHECK(r[k] == 0.0);
    CHECK(r[9] == b.qual[5] / 40.0);
    CHECK(r[14] == b.qual[6] / 40.0);
    Binder<double> bind;
    const auto h = ec.backbone()->forward(bind, std::span<const double>(f), 10);
    const auto ref = ec.output_layer().forward(bind, std::span<const double>(h), 10);
    Tape tape;
    ScopedTape scope(tape);
    Binder<Var> bv(tape);
    const auto z = ec.logits(bv, std::span<const double>(b.seq), std::span<const double>(b.qual), lens, b.n, b.length);
    for (std::size_t i = 0; i < b.n; ++i) {
        for (std::size_t l = 0; l < b.length; ++l) {
            for (std::size_t a = 0; a < 4; ++a) {
                const std::size_t k = (i * b.length + l) * 4 + a;
                CHECK(z[k].value() == Approx(l < b.lengths[i] ? ref[k] : 0.0).epsilon(1e-13).margin(1e-15));
            }
        }
    }
}

TEST_CASE("ErrorCorrection passes expect_ad in the reads and qualities (tiny batch)", "[ops][error_correction][ad]") {
    const Batch b({5, 3}, 5);
    const diffbio::test::AdTolerance tol;
    for (int variant = 0; variant < 3; ++variant) {
        ErrorCorrectionConfig c = tiny_config();
        if (variant == 1) {
            c.num_layers = 0; // output layer straight on the window
            c.use_quality = false;
        }
        if (variant == 2) {
            c.num_layers = 1;
            c.learnable_temperature = false;
            c.temperature = 0.7;
        }
        ErrorCorrection ec(c);
        perturb(ec);
        INFO("variant " << variant);
        expect_ad(
            [&ec, &b](auto v) {
                using U = typename decltype(v)::value_type;
                auto bind = make_binder<U>();
                return run(ec, bind, std::vector<U>(v.begin(), v.end()), b);
            },
            b.packed(), tol);
    }
}

TEST_CASE("ErrorCorrection::logits: the layer-by-layer nodes pass expect_ad and the parameter checks",
          "[ops][error_correction][ad]") {
    // logits() runs the [window gather + first Linear + ReLU] node and one node per further layer
    // (not apply's single fused node): its backward is checked here on its own.
    const Batch b({5, 3}, 5);
    const diffbio::test::AdTolerance tol;
    for (int variant = 0; variant < 2; ++variant) {
        ErrorCorrectionConfig c = tiny_config();
        if (variant == 1) {
            c.num_layers = 0;
            c.use_quality = false;
        }
        ErrorCorrection ec(c);
        perturb(ec);
        INFO("variant " << variant);
        const auto logits_of = [&ec, &b](auto& bind, const auto& v) {
            using U = typename std::decay_t<decltype(v)>::value_type;
            const std::span<const U> all(v);
            return ec.logits(bind, all.first(b.n * b.length * 4), all.subspan(b.n * b.length * 4),
                             std::span<const std::uint32_t>(b.lengths), b.n, b.length);
        };
        expect_ad(
            [&logits_of](auto v) {
                using U = typename decltype(v)::value_type;
                auto bind = make_binder<U>();
                return logits_of(bind, std::vector<U>(v.begin(), v.end()));
            },
            b.packed(), tol);
        const std::vector<double> data = b.packed();
        diffbio::test::expect_parameter_gradients(ec.parameters(), [&](auto& bind) {
            const auto z = logits_of(bind, data);
            auto s = z[0] * 0.0;
            for (std::size_t k = 0; k < z.size(); ++k) s = s + z[k] * (0.5 + std::sin(1.3 * static_cast<double>(k)));
            return s;
        });
    }
}

TEST_CASE("ErrorCorrection: Var records a handful of fused nodes, padding gets no gradient", "[ops][error_correction][ad]") {
    ErrorCorrection ec(tiny_config());
    perturb(ec);
    const Batch b({5, 3}, 5);
    Tape tape;
    ScopedTape scope(tape);
    const auto x = tape.variables(b.packed());
    Binder<Var> bind(tape);
    const auto nodes_before = tape.num_nodes();
    const std::vector<Var> xs(x.begin(), x.end());
    const auto out = run(ec, bind, xs, b);
    CHECK(tape.num_nodes() - nodes_before == 1); // window gather + every layer + softmax + blend
    CHECK(tape.num_operands() == 0);
    Var loss = 0.0;
    for (std::size_t k = 0; k < out.size(); ++k) loss += std::cos(static_cast<double>(k)) * out[k];
    tape.backward(loss);
    for (std::size_t i = 0; i < b.n; ++i) {
        for (std::size_t l = b.lengths[i]; l < b.length; ++l) {
            const std::size_t p = i * b.length + l;
            for (std::size_t a = 0; a < 4; ++a) CHECK(tape.adjoint(x[p * 4 + a]) == 0.0);
            CHECK(tape.adjoint(x[40 + p]) == 0.0);
        }
    }
    double nonzero = 0.0;
    for (std::size_t k = 0; k < 40; ++k) nonzero += std::fabs(tape.adjoint(x[k]));
    CHECK(nonzero > 0.0);
}

TEST_CASE("ErrorCorrection: parameter gradients (beta, log T, weights) match Dual and finite differences",
          "[ops][error_correction][ad]") {
    ErrorCorrection ec(tiny_config());
    perturb(ec);
    const Batch b({5, 3}, 5);
    const std::vector<double> data = b.packed();
    for (const bool weighted : {true, false}) {
        // weighted: L = Σ w_k c_k; unweighted: L = Σ c_k, which is the total mass and so does not
        // depend on β, T or any weight (gradient 0).
        const auto loss = [&](auto& bind) {
            const auto c = run(ec, bind, data, b);
            auto s = c[0] * 0.0;
            for (std::size_t k = 0; k < c.size(); ++k) s = s + c[k] * (weighted ? 0.5 + std::sin(1.3 * static_cast<double>(k)) : 1.0);
            return s;
        };
        for (Parameter* p : ec.parameters()) p->zero_grad();
        {
            Tape tape;
            ScopedTape scope(tape);
            Binder<Var> bv(tape);
            const Var l = loss(bv);
            tape.backward(l);
            bv.accumulate_grad();
        }
        for (Parameter* p : ec.parameters()) {
            const std::size_t step = p->size() > 8 ? p->size() / 5 : 1;
            for (std::size_t j = 0; j < p->size(); j += step) {
                Binder<Dual<double>> bd;
                bd.seed(*p, j);
                const double fwd = loss(bd).tangent;
                Binder<double> bp;
                const double v0 = p->values()[j], h = 1e-6;
                p->values()[j] = v0 + h;
                const double up = loss(bp);
                p->values()[j] = v0 - h;
                const double dn = loss(bp);
                p->values()[j] = v0;
                const double fd = (up - dn) / (2 * h);
                INFO((weighted ? "weighted" : "sum") << " loss, " << p->name() << "[" << j << "]: reverse " << p->grad()[j]
                                                     << ", forward " << fwd << ", finite difference " << fd);
                CHECK(p->grad()[j] == Approx(fwd).epsilon(1e-10).margin(1e-13));
                CHECK(p->grad()[j] == Approx(fd).epsilon(1e-6).margin(1e-8));
                if (!weighted) CHECK(std::fabs(p->grad()[j]) < 1e-12);
            }
        }
        if (weighted) {
            CHECK(std::fabs(ec.blend().grad()[0]) > 1e-6);
            CHECK(std::fabs(ec.log_temperature().grad()[0]) > 1e-6);
        }
    }
}

TEST_CASE("ErrorCorrection: CpuParallel and float agree with Cpu double", "[ops][error_correction]") {
    ErrorCorrectionConfig c = tiny_config();
    c.window_size = 5;
    ErrorCorrection ec(c);
    perturb(ec);
    std::vector<std::uint32_t> lens;
    for (std::uint32_t i = 0; i < 300; ++i) lens.push_back(1 + (i * 7) % 9); // > 1 block of rows
    const Batch b(lens, 9);
    Binder<double> bind;
    const auto ref = run(ec, bind, b.packed(), b);
    const auto all = b.packed();
    const std::span<const double> s(all);
    const auto par = ec.apply(bind, s.first(b.seq.size()), s.subspan(b.seq.size()), std::span<const std::uint32_t>(b.lengths), b.n,
                              b.length, exec::CpuParallel{2});
    for (std::size_t k = 0; k < ref.size(); ++k) CHECK(par[k] == Approx(ref[k]).epsilon(1e-13).margin(1e-15));
    Binder<float> bf;
    const std::vector<float> fl(all.begin(), all.end());
    const auto out_f = run(ec, bf, fl, b);
    for (std::size_t k = 0; k < ref.size(); ++k) CHECK(out_f[k] == Approx(ref[k]).margin(1e-5));
    // Var, both policies: same values and same gradients
    std::vector<double> g[2];
    std::vector<double> vals[2];
    for (int k = 0; k < 2; ++k) {
        Tape tape;
        ScopedTape scope(tape);
        const auto x = tape.variables(all);
        Binder<Var> bv(tape);
        const std::span<const Var> xv(x);
        const auto out = k == 0 ? ec.apply(bv, xv.first(b.seq.size()), xv.subspan(b.seq.size()), std::span<const std::uint32_t>(b.lengths),
                                           b.n, b.length)
                                : ec.apply(bv, xv.first(b.seq.size()), xv.subspan(b.seq.size()), std::span<const std::uint32_t>(b.lengths),
                                           b.n, b.length, exec::CpuParallel{2});
        Var loss = 0.0;
        for (std::size_t j = 0; j < out.size(); ++j) {
            vals[k].push_back(out[j].value());
            loss += std::sin(static_cast<double>(j)) * out[j];
        }
        tape.backward(loss);
        g[k].resize(all.size());
        tape.adjoints(x, g[k]);
    }
    for (std::size_t k = 0; k < ref.size(); ++k) CHECK(vals[0][k] == Approx(ref[k]).epsilon(1e-13).margin(1e-15));
    for (std::size_t j = 0; j < g[0].size(); ++j) CHECK(g[1][j] == Approx(g[0][j]).epsilon(1e-12).margin(1e-15));
}

TEST_CASE("ErrorCorrection: float_gradient (float GEMMs in reverse mode) agrees with the double path",
          "[ops][error_correction][ad]") {
    ErrorCorrectionConfig c = tiny_config();
    c.window_size = 5;
    c.hidden_dim = 16;
    ErrorCorrectionConfig cf = c;
    cf.float_gradient = true;
    ErrorCorrection ec(c), ecf(cf);
    perturb(ec);
    perturb(ecf);
    std::vector<std::uint32_t> lens;
    for (std::uint32_t i = 0; i < 300; ++i) lens.push_back(1 + (i * 7) % 9); // > 1 block of rows
    const Batch b(lens, 9);
    const auto all = b.packed();
    // values, input adjoints, parameter gradients of L = Σ sin(j)·c_j
    struct Run {
        std::vector<double> vals, gx, gp;
    };
    const auto run_var = [&](ErrorCorrection& e, int policy) {
        Run r;
        for (Parameter* p : e.parameters()) p->zero_grad();
        Tape tape;
        ScopedTape scope(tape);
        const auto x = tape.variables(all);
        Binder<Var> bv(tape);
        const std::span<const Var> xv(x);
        const auto seq = xv.first(b.seq.size());
        const auto qual = xv.subspan(b.seq.size());
        const std::span<const std::uint32_t> lens_span(b.lengths);
        const auto out = policy == 0 ? e.apply(bv, seq, qual, lens_span, b.n, b.length)
                                     : e.apply(bv, seq, qual, lens_span, b.n, b.length, exec::CpuParallel{2});
        Var loss = 0.0;
        for (std::size_t j = 0; j < out.size(); ++j) {
            r.vals.push_back(out[j].value());
            loss += std::sin(static_cast<double>(j)) * out[j];
        }
        tape.backward(loss);
        bv.accumulate_grad();
        r.gx.resize(all.size());
        tape.adjoints(x, r.gx);
        for (Parameter* p : e.parameters()) r.gp.insert(r.gp.end(), p->grad().begin(), p->grad().end());
        return r;
    };
    const Run ref = run_var(ec, 0);
    double gx_scale = 0.0, gp_scale = 0.0;
    for (double v : ref.gx) gx_scale = std::max(gx_scale, std::fabs(v));
    for (double v : ref.gp) gp_scale = std::max(gp_scale, std::fabs(v));
    REQUIRE(gx_scale > 0.0);
    REQUIRE(gp_scale > 0.0);
    for (int policy : {0, 1}) {
        const Run f = run_var(ecf, policy);
        REQUIRE(f.vals.size() == ref.vals.size());
        REQUIRE(f.gp.size() == ref.gp.size());
        double max_dv = 0.0, max_dx = 0.0, max_dp = 0.0;
        for (std::size_t k = 0; k < ref.vals.size(); ++k) max_dv = std::max(max_dv, std::fabs(f.vals[k] - ref.vals[k]));
        for (std::size_t k = 0; k < ref.gx.size(); ++k) max_dx = std::max(max_dx, std::fabs(f.gx[k] - ref.gx[k]));
        for (std::size_t k = 0; k < ref.gp.size(); ++k) max_dp = std::max(max_dp, std::fabs(f.gp[k] - ref.gp[k]));
        INFO("policy " << policy << ": max |Δ value| " << max_dv << ", max |Δ input grad| " << max_dx << " (scale " << gx_scale
                       << "), max |Δ parameter grad| " << max_dp << " (scale " << gp_scale << ")");
        CHECK(max_dv < 1e-5);
        CHECK(max_dx < 1e-4 * gx_scale);
        CHECK(max_dp < 1e-4 * gp_scale);
        // not bitwise the double path: the float kernels really ran
        CHECK(max_dv > 0.0);
    }
}
