// CPU/GPU parity of the preprocessing operators' CUDA backends (QualityFilter, AdapterRemoval), in float
// and double, forward values and every gradient. The CPU reference is the operator itself in double
// (AdapterRemoval: ad::Var on a tape, i.e. its fused node, seeded with random cotangents on every
// output; QualityFilter: forward mode, see quality_reference).
//
// Every check runs twice: first on the host (HostEmulation: the kernels' per-base and per-read warp
// programs, the warp emulated by 32 cooperative contexts on one thread; any machine), then on the
// GPU (Device). A failure of the host emulation fails the program; with it passed and no CUDA device
// present, it exits 77 (ctest: skipped).
//
// Tolerance per compared array: |gpu − cpu| ≤ rel·scale for every entry, scale = max(1, max_j |cpu_j|)
// (float: rel 1e-5, double: rel 1e-12), i.e. relative to the array's magnitude with an absolute floor
// of rel: float gradients are sums over many positions and reads, and their rounding is relative to
// that magnitude, not to each (possibly tiny, cancelled) entry. Each check prints its worst scaled error.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/exec/cuda/buffer.cuh>
#include <diffbio/ops/preprocessing/adapter_removal.hpp>
#include <diffbio/ops/preprocessing/cuda/adapter_removal.cuh>
#include <diffbio/ops/preprocessing/cuda/quality_filter.cuh>
#include <diffbio/ops/preprocessing/quality_filter.hpp>

#include "host_warp.hpp"

namespace {

namespace ad = diffbio::ad;
namespace exec = diffbio::exec;
namespace ops = diffbio::ops;
namespace gpu = diffbio::ops::cuda;
using exec::cuda::DeviceBuffer;

int failures = 0;
int checks = 0;

template <class T>
void expect_close(std::span<const T> got, std::span<const double> want, double rel, const std::string& what) {
    ++checks;
    if (got.size() != want.size()) {
        std::printf("FAIL %s: sizes %zu vs %zu\n", what.c_str(), got.size(), want.size());
        ++failures;
        return;
    }
    double scale = 1.0;
    for (const double w : want) scale = std::max(scale, std::fabs(w));
    double worst = 0.0;
    std::size_t bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double g = static_cast<double>(got[i]);
        const double err = std::fabs(g - want[i]) / scale;
        if (!(err <= rel)) {
            if (bad < 5) std::printf("  %s[%zu]: gpu %.17g cpu %.17g\n", what.c_str(), i, g, want[i]);
            ++bad;
        }
        if (err > worst || std::isnan(err)) worst = err;
    }
    std::printf("%s %s (%zu values, scale %.3g, worst scaled error %.3g, tolerance %.1g)\n", bad == 0 ? "PASS" : "FAIL",
                what.c_str(), got.size(), scale, worst, rel);
    if (bad != 0) ++failures;
}

template <class T>
void expect_close(const std::vector<T>& got, const std::vector<double>& want, double rel, const std::string& what) {
    expect_close(std::span<const T>(got), std::span<const double>(want), rel, what);
}

void expect_scalar(double got, double want, double rel, const std::string& what) {
    const std::vector<double> g{got}, w{want};
    expect_close(std::span<const double>(g), std::span<const double>(w), rel, what);
}

std::uint64_t rng_state = 2024;
double uniform() {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(rng_state >> 11) / 9007199254740992.0;
}
std::size_t below(std::size_t n) { return std::min(n - 1, static_cast<std::size_t>(uniform() * static_cast<double>(n))); }

/// Padded reads in double: random bases (5% N = 0.25 rows), some with a copy of `adapter` (with an
/// occasional mismatch) at a random start, some running off the 3' end; lengths from 0 to L.
struct Batch {
    std::size_t n = 0, length = 0;
    std::vector<double> seq, quality;
    std::vector<std::uint32_t> lengths;
};

Batch make_batch(std::size_t n, std::size_t length, const std::string& adapter) {
    Batch b;
    b.n = n;
    b.length = length;
    b.seq.assign(n * length * 4, 0.0);
    b.quality.assign(n * length, 0.0);
    b.lengths.resize(n);
    const std::string bases = "ACGT";
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t len = 0;
        const double u = uniform();
        if (i == 0 || u < 0.05) {
            len = below(4); // 0 to 3
        } else if (i == 1 || u < 0.15) {
            len = length;
        } else if (u < 0.25) {
            len = below(std::min(adapter.size(), length) + 1); // at most one adapter length
        } else {
            len = below(length + 1);
        }
        b.lengths[i] = static_cast<std::uint32_t>(len);
        std::string read(len, 'A');
        for (auto& c : read) c = uniform() < 0.05 ? 'N' : bases[below(4)];
        if (len > 0 && uniform() < 0.7) { // an adapter copy, possibly cut by the 3' end
            const std::size_t start = below(len);
            for (std::size_t k = 0; k < adapter.size() && start + k < len; ++k) {
                read[start + k] = uniform() < 0.05 ? bases[below(4)] : adapter[k];
            }
        }
        for (std::size_t l = 0; l < length; ++l) {
            // Quality in padding too: it must not leak into any output or gradient.
            b.quality[i * length + l] = std::floor(2.0 + 39.0 * uniform()) + (l % 3 == 0 ? 0.5 : 0.0);
            if (l >= len) continue;
            double* row = b.seq.data() + (i * length + l) * 4;
            const auto at = bases.find(read[l]);
            for (std::size_t a = 0; a < 4; ++a) row[a] = at == std::string::npos ? 0.25 : (a == at ? 1.0 : 0.0);
        }
    }
    return b;
}

std::vector<double> random_vector(std::size_t n, double lo, double hi) {
    std::vector<double> v(n);
    for (auto& x : v) x = lo + (hi - lo) * uniform();
    return v;
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
    return std::vector<T>(v.begin(), v.end());
}

std::vector<double> values(const ad::Tape& tape, const std::vector<ad::Var>& v) {
    std::vector<double> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) out[i] = tape.value(v[i]);
    return out;
}

void seed_all(ad::Tape& tape, const std::vector<ad::Var>& outputs, const std::vector<double>& cotangent) {
    for (std::size_t i = 0; i < outputs.size(); ++i) tape.seed(outputs[i], cotangent[i]);
}

std::vector<double> adjoints(const ad::Tape& tape, std::span<const ad::Var> v) {
    std::vector<double> out(v.size());
    tape.adjoints(v, out);
    return out;
}

// ----------------------------------------------------------------------------------------------
// QualityFilter
// ----------------------------------------------------------------------------------------------

struct QualityReference {
    std::vector<double> weights, seq_out, seq_grad, quality_grad;
    double theta_grad = 0.0;
};

/// CPU reference: forward values and the gradients for cotangents gseq (on seq') and gw (on w; may be
/// empty). The gradients come from the operator in forward mode (ad::Dual), three passes: θ seeded,
/// every quality seeded, every base seeded. That is exact here because w_{i,l} depends on q_{i,l} and θ
/// only and seq'_{i,l,a} on seq_{i,l,a}, q_{i,l} and θ only. (Not ad::Var: QualityFilter's Var path
/// instantiates diffbio::passive<ad::Var>, a __host__ __device__ template calling Var's host-only
/// constructor, which nvcc reports as warning 20014, an error under -Werror=all-warnings.)
QualityReference quality_reference(ops::QualityFilter& qf, const Batch& b, const std::vector<double>& gseq,
                                   const std::vector<double>& gw) {
    using D = ad::Dual<double>;
    QualityReference ref;
    {
        ad::Binder<double> bind;
        const ops::ReadsView<double, double> view{b.seq, b.quality, b.lengths, b.n, b.length};
        const auto r = qf.apply(bind, view);
        ref.weights = r.weights;
        ref.seq_out = r.seq;
    }
    // Σ cotangent · tangent over both outputs, per output entry.
    const auto run = [&](bool seed_theta, bool seed_quality, bool seed_seq) {
        std::vector<D> seq(b.seq.size()), quality(b.quality.size());
        for (std::size_t k = 0; k < seq.size(); ++k) seq[k] = D(b.seq[k], seed_seq ? 1.0 : 0.0);
        for (std::size_t k = 0; k < quality.size(); ++k) quality[k] = D(b.quality[k], seed_quality ? 1.0 : 0.0);
        ad::Binder<D> bind;
        if (seed_theta) bind.seed(qf.threshold(), 0);
        const ops::ReadsView<D, D> view{seq, quality, b.lengths, b.n, b.length};
        return qf.apply(bind, view);
    };
    {
        const auto r = run(true, false, false);
        double s = 0.0;
        for (std::size_t k = 0; k < r.seq.size(); ++k) s += gseq[k] * r.seq[k].tangent;
        for (std::size_t k = 0; k < r.weights.size() && !gw.empty(); ++k) s += gw[k] * r.weights[k].tangent;
        ref.theta_grad = s;
    }
    {
        const auto r = run(false, true, false);
        ref.quality_grad.assign(b.quality.size(), 0.0);
        for (std::size_t k = 0; k < r.weights.size(); ++k) {
            double s = gw.empty() ? 0.0 : gw[k] * r.weights[k].tangent;
            for (std::size_t a = 0; a < 4; ++a) s += gseq[k * 4 + a] * r.seq[k * 4 + a].tangent;
            ref.quality_grad[k] = s;
        }
    }
    {
        const auto r = run(false, false, true);
        ref.seq_grad.resize(b.seq.size());
        for (std::size_t k = 0; k < r.seq.size(); ++k) ref.seq_grad[k] = gseq[k] * r.seq[k].tangent;
    }
    return ref;
}

template <class T, class Engine>
void quality_filter_parity(const Batch& b, double theta, double softness, double rel, const std::string& name) {
    ops::QualityFilter qf({.initial_threshold = theta, .softness = softness});
    const std::vector<double> gseq = random_vector(b.n * b.length * 4, -0.5, 0.5);
    const std::vector<double> gw = random_vector(b.n * b.length, -0.5, 0.5);
    const QualityReference ref = quality_reference(qf, b, gseq, gw);

    const std::vector<T> seq = cast<T>(b.seq), quality = cast<T>(b.quality), gseq_t = cast<T>(gseq), gw_t = cast<T>(gw);
    const ops::ReadsView<T, T> view{seq, quality, b.lengths, b.n, b.length};
    const std::string tag = Engine::prefix + name + " quality_filter ";

    // Host convenience forms.
    const auto fwd = Engine::quality_forward(qf, view);
    expect_close(fwd.weights, ref.weights, rel, tag + "weights");
    expect_close(fwd.seq, ref.seq_out, rel, tag + "seq'");
    qf.threshold().zero_grad();
    const auto g = Engine::quality_backward(qf, view, std::span<const T>(gseq_t), std::span<const T>(gw_t));
    expect_close(g.seq, ref.seq_grad, rel, tag + "seq gradient");
    expect_close(g.quality, ref.quality_grad, rel, tag + "quality gradient");
    expect_scalar(qf.threshold().grad()[0], ref.theta_grad, rel, tag + "theta gradient");
    qf.threshold().zero_grad();
    if constexpr (Engine::device) {
        // Device-pointer form, ∂L/∂w null; the read gradients accumulate onto what is there.
        const QualityReference ref_w = quality_reference(qf, b, gseq, {});
        DeviceBuffer<T> d_seq{std::span<const T>(seq)}, d_q{std::span<const T>(quality)}, d_gseq{std::span<const T>(gseq_t)};
        DeviceBuffer<std::uint32_t> d_len{std::span<const std::uint32_t>(b.lengths)};
        const std::vector<T> ones_seq(seq.size(), T(1)), ones_q(quality.size(), T(1));
        DeviceBuffer<T> d_seq_grad{std::span<const T>(ones_seq)}, d_q_grad{std::span<const T>(ones_q)};
        T theta_grad = T(2);
        gpu::quality_filter_backward<T>(exec::Cuda{}, d_seq.data(), d_q.data(), d_len.data(), b.n, b.length, T(theta),
                                        T(softness), d_gseq.data(), nullptr, d_seq_grad.data(), d_q_grad.data(), &theta_grad);
        std::vector<double> want_seq = ref_w.seq_grad, want_q = ref_w.quality_grad;
        for (auto& v : want_seq) v += 1.0;
        for (auto& v : want_q) v += 1.0;
        expect_close(d_seq_grad.to_host(), want_seq, rel, tag + "device API seq gradient (accumulated, no dL/dw)");
        expect_close(d_q_grad.to_host(), want_q, rel, tag + "device API quality gradient (accumulated, no dL/dw)");
        expect_scalar(static_cast<double>(theta_grad), 2.0 + ref_w.theta_grad, rel, tag + "device API theta gradient (accumulated)");
    }
}

// ----------------------------------------------------------------------------------------------
// AdapterRemoval
// ----------------------------------------------------------------------------------------------

struct AdapterCotangents {
    std::vector<double> retention, trim, seq, quality;
};

struct AdapterReference {
    std::vector<double> retention, trim, seq_out, quality_out; // forward
    std::vector<double> seq_grad, quality_grad;                // reads
    std::vector<double> A_grad, S_grad;                        // parameters
    double tau_grad = 0.0, log_t_grad = 0.0;
};

void zero_grads(ops::AdapterRemoval& ar) {
    ar.adapter().zero_grad();
    ar.scores().zero_grad();
    ar.match_threshold().zero_grad();
    ar.log_temperature().zero_grad();
}

AdapterReference read_parameter_grads(ops::AdapterRemoval& ar) {
    AdapterReference r;
    r.A_grad.assign(ar.adapter().grad().begin(), ar.adapter().grad().end());
    r.S_grad.assign(ar.scores().grad().begin(), ar.scores().grad().end());
    r.tau_grad = ar.match_threshold().grad()[0];
    r.log_t_grad = ar.log_temperature().grad()[0];
    return r;
}

/// CPU reference; cotangents that are empty are zero.
AdapterReference adapter_reference(ops::AdapterRemoval& ar, const Batch& b, const AdapterCotangents& c) {
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto seq = tape.variables(b.seq);
    const auto quality = tape.variables(b.quality);
    const ops::ReadsView<ad::Var, ad::Var> view{seq, quality, b.lengths, b.n, b.length};
    ad::Binder<ad::Var> bind(tape);
    const auto r = ar.apply(bind, view);
    tape.zero_adjoints();
    if (!c.retention.empty()) seed_all(tape, r.retention, c.retention);
    if (!c.trim.empty()) seed_all(tape, r.trim_position, c.trim);
    if (!c.seq.empty()) seed_all(tape, r.seq, c.seq);
    if (!c.quality.empty()) seed_all(tape, r.quality, c.quality);
    tape.propagate();
    zero_grads(ar);
    bind.accumulate_grad();
    AdapterReference ref = read_parameter_grads(ar);
    zero_grads(ar);
    ref.retention = values(tape, r.retention);
    ref.trim = values(tape, r.trim_position);
    ref.seq_out = values(tape, r.seq);
    ref.quality_out = values(tape, r.quality);
    ref.seq_grad = adjoints(tape, seq);
    ref.quality_grad = adjoints(tape, quality);
    return ref;
}

template <class T>
gpu::AdapterRemovalOutputGrads<T> spans_of(const std::vector<T>& r, const std::vector<T>& t, const std::vector<T>& s,
                                           const std::vector<T>& q) {
    return {std::span<const T>(r), std::span<const T>(t), std::span<const T>(s), std::span<const T>(q)};
}

template <class T, class Engine>
void adapter_parity(ops::AdapterRemoval& ar, const Batch& b, double rel, const std::string& name) {
    const std::string tag = Engine::prefix + name + " adapter_removal [" + ar.config().adapter_sequence + ", min_overlap " +
                            std::to_string(ar.config().min_overlap) + ", min_score " +
                            std::to_string(ar.config().min_score) + "] ";
    AdapterCotangents full;
    full.retention = random_vector(b.n * b.length, -0.5, 0.5);
    full.trim = random_vector(b.n, -0.5, 0.5);
    full.seq = random_vector(b.n * b.length * 4, -0.5, 0.5);
    full.quality = random_vector(b.n * b.length, -0.05, 0.05);
    AdapterCotangents trim_only;
    trim_only.trim = full.trim;
    const AdapterReference ref = adapter_reference(ar, b, full);
    const AdapterReference ref_trim = adapter_reference(ar, b, trim_only);

    const std::vector<T> seq = cast<T>(b.seq), quality = cast<T>(b.quality);
    const ops::ReadsView<T, T> view{seq, quality, b.lengths, b.n, b.length};
    const auto fwd = Engine::adapter_forward(ar, view);
    expect_close(fwd.retention, ref.retention, rel, tag + "retention");
    expect_close(fwd.trim_position, ref.trim, rel, tag + "trim_position");
    expect_close(fwd.seq, ref.seq_out, rel, tag + "seq'");
    expect_close(fwd.quality, ref.quality_out, rel, tag + "quality'");

    // Every cotangent at once, read gradients requested.
    const std::vector<T> gr = cast<T>(full.retention), gt = cast<T>(full.trim), gs = cast<T>(full.seq),
                         gq = cast<T>(full.quality), none;
    zero_grads(ar);
    const auto g = Engine::adapter_backward(ar, view, std::span<const T>(fwd.retention), spans_of(gr, gt, gs, gq), true);
    const AdapterReference got = read_parameter_grads(ar);
    expect_close(g.seq, ref.seq_grad, rel, tag + "seq gradient");
    expect_close(g.quality, ref.quality_grad, rel, tag + "quality gradient");
    expect_close(got.A_grad, ref.A_grad, rel, tag + "adapter one-hot gradient");
    expect_close(got.S_grad, ref.S_grad, rel, tag + "scores gradient");
    expect_scalar(got.tau_grad, ref.tau_grad, rel, tag + "match threshold gradient");
    expect_scalar(got.log_t_grad, ref.log_t_grad, rel, tag + "log temperature gradient");

    // Only ∂L/∂trim, no read gradients (no scratch path).
    zero_grads(ar);
    const auto g2 = Engine::adapter_backward(ar, view, std::span<const T>(fwd.retention), spans_of(none, gt, none, none),
                                             /*read_gradients=*/false);
    const AdapterReference got2 = read_parameter_grads(ar);
    ++checks;
    if (!g2.seq.empty() || !g2.quality.empty()) {
        std::printf("FAIL %sread gradients returned although not requested\n", tag.c_str());
        ++failures;
    }
    expect_close(got2.A_grad, ref_trim.A_grad, rel, tag + "trim only: adapter one-hot gradient");
    expect_close(got2.S_grad, ref_trim.S_grad, rel, tag + "trim only: scores gradient");
    expect_scalar(got2.tau_grad, ref_trim.tau_grad, rel, tag + "trim only: match threshold gradient");
    expect_scalar(got2.log_t_grad, ref_trim.log_t_grad, rel, tag + "trim only: log temperature gradient");
    zero_grads(ar);
}

// ----------------------------------------------------------------------------------------------
// Engines: the same checks run on the GPU (Device) and, without one, on the host (HostEmulation)
// ----------------------------------------------------------------------------------------------

/// The CUDA backends through their host convenience forms (needs a GPU).
struct Device {
    static constexpr bool device = true;
    static constexpr const char* prefix = "";
    template <class T>
    static ops::QualityFilterResult<T> quality_forward(const ops::QualityFilter& qf, const ops::ReadsView<T, T>& v) {
        return gpu::quality_filter_forward(exec::Cuda{}, qf, v);
    }
    template <class T>
    static gpu::QualityFilterReadGradients<T> quality_backward(ops::QualityFilter& qf, const ops::ReadsView<T, T>& v,
                                                               std::span<const T> gseq, std::span<const T> gw) {
        return gpu::quality_filter_backward(exec::Cuda{}, qf, v, gseq, gw);
    }
    template <class T>
    static ops::AdapterRemovalResult<T> adapter_forward(const ops::AdapterRemoval& ar, const ops::ReadsView<T, T>& v) {
        return gpu::adapter_removal_forward(exec::Cuda{}, ar, v);
    }
    template <class T>
    static gpu::AdapterRemovalReadGradients<T> adapter_backward(ops::AdapterRemoval& ar, const ops::ReadsView<T, T>& v,
                                                                std::span<const T> retention,
                                                                const gpu::AdapterRemovalOutputGrads<T>& grads,
                                                                bool read_gradients) {
        return gpu::adapter_removal_backward(exec::Cuda{}, ar, v, retention, grads, read_gradients);
    }
};

/// The kernels' per-thread and per-warp programs on the host: quality_filter_kernels::forward_base /
/// backward_base for every base, adapter_kernels::forward_read / backward_read for every read on an
/// emulated warp (tests/support/host_warp.hpp), with the host-side steps of the convenience forms
/// (B = S·A, the parameter gradients from B̄). Outputs start at a sentinel (-7; NaN for the g scratch,
/// which the device leaves uninitialised) so that an entry the programs fail to write, or read before
/// it is written, shows. Not emulated: the kernels' shared-memory staging, block sums and atomics.
/// The host's exp/log differ from the device's in the last bits, so this is parity with the CPU
/// operator, not bit-for-bit the device's output.
struct HostEmulation {
    static constexpr bool device = false;
    static constexpr const char* prefix = "host emulation: ";
    template <class T>
    static const T* ptr(std::span<const T> s) {
        return s.empty() ? nullptr : s.data();
    }

    template <class T>
    static ops::QualityFilterResult<T> quality_forward(const ops::QualityFilter& qf, const ops::ReadsView<T, T>& v) {
        v.validate("quality_forward (host emulation)");
        namespace k = gpu::quality_filter_kernels;
        ops::QualityFilterResult<T> out;
        out.weights.assign(v.n * v.length, T(-7));
        out.seq.assign(v.n * v.length * 4, T(-7));
        const T theta = static_cast<T>(qf.threshold().values()[0]), softness = static_cast<T>(qf.config().softness);
        for (std::size_t idx = 0; idx < v.n * v.length; ++idx) {
            k::forward_base(idx, v.seq.data(), v.quality.data(), v.lengths.data(), v.length, theta, softness,
                            out.weights.data(), out.seq.data());
        }
        return out;
    }
    template <class T>
    static gpu::QualityFilterReadGradients<T> quality_backward(ops::QualityFilter& qf, const ops::ReadsView<T, T>& v,
                                                               std::span<const T> gseq, std::span<const T> gw) {
        v.validate("quality_backward (host emulation)");
        namespace k = gpu::quality_filter_kernels;
        gpu::QualityFilterReadGradients<T> out;
        out.seq.assign(v.seq.size(), T(0));
        out.quality.assign(v.quality.size(), T(0));
        const T theta = static_cast<T>(qf.threshold().values()[0]), softness = static_cast<T>(qf.config().softness);
        double sum = 0.0;
        for (std::size_t idx = 0; idx < v.n * v.length; ++idx) {
            sum += static_cast<double>(k::backward_base(idx, v.seq.data(), v.quality.data(), v.lengths.data(), v.length,
                                                        theta, softness, T(1) / softness, ptr(gseq), ptr(gw),
                                                        out.seq.data(), out.quality.data()));
        }
        qf.threshold().grad()[0] -= sum;
        return out;
    }

    /// What the host convenience forms prepare before a launch: the parameter values, the launch
    /// arguments (validated) and B = S·A in T.
    template <class T>
    struct AdapterSetup {
        gpu::adapter_detail::AdapterValues values;
        gpu::AdapterRemovalArgs<T> args;
        std::vector<T> B;
        AdapterSetup(const ops::AdapterRemoval& ar, const ops::ReadsView<T, T>& v, const char* where)
            : values(gpu::adapter_detail::values_of(ar)),
              args(gpu::adapter_detail::args_of<T>(ar, values.tau_m, v.n, v.length)) {
            v.validate(where);
            gpu::adapter_detail::validate(args, where);
            const std::vector<double> Bd = gpu::adapter_score_matrix(values.A, values.S);
            B.assign(Bd.begin(), Bd.end());
        }
    };

    template <class T>
    static ops::AdapterRemovalResult<T> adapter_forward(const ops::AdapterRemoval& ar, const ops::ReadsView<T, T>& v) {
        const AdapterSetup<T> su(ar, v, "adapter_forward (host emulation)");
        const auto& args = su.args;
        const std::vector<T>& B = su.B;
        ops::AdapterRemovalResult<T> out;
        out.retention.assign(v.n * v.length, T(-7));
        out.trim_position.assign(v.n, T(-7));
        out.seq.assign(v.seq.size(), T(-7));
        out.quality.assign(v.quality.size(), T(-7));
        host_warp::run_warp([&](const host_warp::HostWarp& w) {
            for (std::size_t i = 0; i < v.n; ++i) {
                gpu::adapter_kernels::forward_read(w, args, i, v.seq.data(), v.quality.data(), v.lengths.data(), B.data(),
                                                   out.retention.data(), out.trim_position.data(), out.seq.data(),
                                                   out.quality.data());
            }
        });
        return out;
    }
    template <class T>
    static gpu::AdapterRemovalReadGradients<T> adapter_backward(ops::AdapterRemoval& ar, const ops::ReadsView<T, T>& v,
                                                                std::span<const T> retention,
                                                                const gpu::AdapterRemovalOutputGrads<T>& grads,
                                                                bool read_gradients) {
        const AdapterSetup<T> su(ar, v, "adapter_backward (host emulation)");
        const auto& args = su.args;
        const std::vector<T>& B = su.B;
        const gpu::AdapterRemovalOutputGradPtrs<T> gy{ptr(grads.retention), ptr(grads.trim_position), ptr(grads.seq),
                                                      ptr(grads.quality)};
        gpu::AdapterRemovalReadGradients<T> out;
        std::vector<T> g_scratch;
        if (read_gradients) {
            out.seq.assign(v.seq.size(), T(0));
            out.quality.assign(v.quality.size(), T(0));
            g_scratch.assign(v.n * v.length, std::numeric_limits<T>::quiet_NaN());
        }
        gpu::AdapterScoreGradients sg;
        sg.B.assign(args.adapter_length * 4, 0.0); // the one warp's slice
        host_warp::run_warp([&](const host_warp::HostWarp& w) {
            double tau_bar = 0.0, temp_bar = 0.0;
            for (std::size_t i = 0; i < v.n; ++i) {
                gpu::adapter_kernels::backward_read(w, args, i, v.seq.data(), v.quality.data(), v.lengths.data(),
                                                    B.data(), retention.data(), gy,
                                                    read_gradients ? g_scratch.data() : nullptr,
                                                    read_gradients ? out.seq.data() : nullptr,
                                                    read_gradients ? out.quality.data() : nullptr, sg.B.data(),
                                                    tau_bar, temp_bar);
            }
            tau_bar = exec::cuda::warp_sum(w, tau_bar);
            temp_bar = exec::cuda::warp_sum(w, temp_bar);
            if (w.lane() == 0) {
                sg.tau_m = tau_bar;
                sg.temperature = temp_bar;
            }
        });
        gpu::adapter_detail::add_parameter_gradients(ar, su.values, sg);
        return out;
    }
};

/// Moves the parameters off their one-hot / match-mismatch initial values (unless `keep`), so that
/// every entry of A and S has a generic gradient.
void perturb(ops::AdapterRemoval& ar, bool keep) {
    if (keep) return;
    for (auto& v : ar.adapter().values()) v = 0.8 * v + 0.1 * uniform();
    for (auto& v : ar.scores().values()) v += 0.3 * (uniform() - 0.5);
}

struct AdapterCase {
    ops::AdapterRemovalConfig cfg;
    std::size_t n, length;
    bool keep_parameters; // exact values needed (the θ tie case)
};

std::vector<AdapterCase> adapter_cases() {
    const double no_floor = -std::numeric_limits<double>::infinity();
    return {
        // The defaults (fraction rule only, min_overlap 6).
        {{.adapter_sequence = "AGATCGGAAGAG", .temperature = 1.0, .match_threshold = 0.5, .min_overlap = 6,
          .min_score = no_floor},
         300, 151, false},
        // The recommended Illumina rule: the min_score floor decides short overlaps; fixed temperature.
        {{.adapter_sequence = "AGATCGGAAGAG", .temperature = 0.7, .learnable_temperature = false,
          .match_threshold = 0.3, .min_overlap = 1, .match_score = 1.0, .mismatch_score = -3.0, .min_score = 3.5},
         257, 100, false},
        // θ tie at ov = 6 (0.25·2·6 = 3 = min_score, exact in float): the fraction branch must win.
        // An N in the adapter (a 0.25 row). L = 32: one chunk per read.
        {{.adapter_sequence = "ACGTNACG", .temperature = 1.5, .match_threshold = 0.25, .min_overlap = 2,
          .match_score = 2.0, .mismatch_score = -1.0, .min_score = 3.0},
         64, 32, true},
        // min_overlap > adapter length: no start ever counts, r = 1 and every parameter gradient is 0.
        {{.adapter_sequence = "ACGTA", .temperature = 2.0, .match_threshold = 0.5, .min_overlap = 7}, 17, 40, false},
        // An adapter longer than a warp (La·4 = 168 entries, 6 per lane) on long reads.
        {{.adapter_sequence = "AGATCGGAAGAGCACACGTCTGAACTCCAGTCACNNATCTCG", .temperature = 0.8,
          .match_threshold = 0.4, .min_overlap = 3, .match_score = 1.0, .mismatch_score = -2.0, .min_score = 2.5},
         200, 300, false},
    };
}


/// Every parity check, on one engine; the same batches and parameters for each engine.
template <class Engine>
void all_parity() {
    rng_state = 2024;
    const Batch qb = make_batch(300, 151, "AGATCGGAAGAG");
    quality_filter_parity<double, Engine>(qb, 20.0, 1.0, 1e-12, "double");
    quality_filter_parity<float, Engine>(qb, 20.0, 1.0, 1e-5, "float");
    quality_filter_parity<double, Engine>(qb, 27.3, 3.5, 1e-12, "double");
    quality_filter_parity<float, Engine>(qb, 27.3, 3.5, 1e-5, "float");

    for (const AdapterCase& c : adapter_cases()) {
        ops::AdapterRemoval ar(c.cfg);
        perturb(ar, c.keep_parameters);
        const Batch b = make_batch(c.n, c.length, c.cfg.adapter_sequence);
        adapter_parity<double, Engine>(ar, b, 1e-12, "double");
        adapter_parity<float, Engine>(ar, b, 1e-5, "float");
    }
}

} // namespace

int main() {
    // First the kernels' programs on the host (any machine), then the device.
    try {
        all_parity<HostEmulation>();
    } catch (const std::exception& e) {
        std::printf("FAIL: host emulation: exception %s\n", e.what());
        ++failures;
    }
    if (failures != 0) {
        std::printf("FAIL: host emulation: %d checks, %d failures\n", checks, failures);
        return 1;
    }
    if (!exec::cuda::device_available()) {
        std::printf("SKIP: no CUDA device available; the host emulation passed (%d checks), the CPU/GPU parity of "
                    "the preprocessing backends was not checked\n",
                    checks);
        return 77;
    }
    cudaDeviceProp prop{};
    exec::cuda::check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("device: %s\n", prop.name);
    try {
        all_parity<Device>();

        // Bad arguments are reported before any launch.
        ++checks;
        try {
            gpu::AdapterRemovalArgs<float> a;
            a.n = 1;
            a.length = 1;
            a.adapter_length = gpu::adapter_cuda_max_length + 1;
            float dummy = 0;
            const std::uint32_t len = 0;
            gpu::adapter_removal_forward<float>(exec::Cuda{}, a, &dummy, nullptr, &len, &dummy, &dummy, nullptr, nullptr,
                                                nullptr);
            std::printf("FAIL adapter_removal: an over-long adapter was not rejected\n");
            ++failures;
        } catch (const diffbio::InvalidArgument&) {
            std::printf("PASS adapter_removal rejects an adapter longer than %zu\n", gpu::adapter_cuda_max_length);
        }
    } catch (const std::exception& e) {
        std::printf("FAIL: exception %s\n", e.what());
        ++failures;
    }
    std::printf("%s: %d checks, %d failures\n", failures == 0 ? "PASS" : "FAIL", checks, failures);
    return failures == 0 ? 0 : 1;
}
