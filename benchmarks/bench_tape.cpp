// bench_tape: the cost of a full reverse-mode gradient on diffbio's tape.
//
//   f(x, t, τ) = Σ_{i<n} σ((x_i − t)/τ),   gradient with respect to every x_i, t and τ
//
// Variants (Args: n = 1e4, 1e5, 1e6):
//   BM_double_forward      plain double forward pass: the baseline, no derivatives at all
//   BM_var_tape            scalar reverse mode: every −, /, σ and + is one tape record
//   BM_fused_node          the same gradient through ONE fused node (soft::sum_sigmoid_threshold)
//   BM_adolc               ADOL-C (adouble): taping + gradient(), what ADOL-C users write
//   BM_adolc_keep_reverse  ADOL-C taping with keep=1 + one fos_reverse: no second forward pass,
//                          the closest match to our record + sweep
// Each timed iteration of a tape variant records the function AND sweeps it backwards and reads
// every adjoint out: that is the price of one gradient.
//
// Counters:
//   elements_per_second    n per iteration time
//   bytes_per_op           tape bytes per record (see set_tape_counters / set_adolc_counters for
//                          what a record is and what is counted)
//   tape_MB                tape bytes of the last recording, in 10^6 bytes
//   taylor_MB              ADOL-C only: its Taylor (value) stack, which its reverse sweep reads
//   records_per_element    records (our variables / ADOL-C operations) per x_i
//   first_iter_ms          the untimed first gradient before the timing loop (tape variants):
//                          for our Tape, the recording that allocates the memory later reused
//   adolc_file_access      ADOL-C only: 1 if any part of its tape went to disk files (should be 0)
//
// Before running the benchmarks, main() checks (n = 1000 and n = 10^4) that every variant
// computes the same value as the double forward pass and the same gradient as the scalar tape
// and as an exact long-double gradient, and aborts on a relative difference > 1e-10 (values:
// relative; gradients: max_i |a_i − b_i| / max_i |b_i|). It also prints the worst single
// component against the exact gradient (the σ partial is computed as σ(z)σ(−z), which keeps its
// relative accuracy in the saturated tail; the worst components are the sums for t and τ).
//
// ADOL-C and memory: ADOL-C keeps each tape in buffers of OBUFSIZE operations, LBUFSIZE
// locations, VBUFSIZE values and TBUFSIZE Taylor coefficients (524288 each in the Debian
// build, see <adolc/internal/usrparms.h>) and writes a tape out to files ("ADOLC-*.tap" in
// the current directory) once it outgrows them, which happens at n = 10^5 already. A
// `.adolcrc` file in the working directory could raise the defaults, but it is read only when
// ADOL-C initialises and depends on where the program is started. This benchmark instead uses
// the documented per-tape overload
//   trace_on(tag, keep, obs, lbs, vbs, tbs)
// with per-element upper bounds on the buffer sizes (see adolc_buffers_for), so the whole tape
// stays in memory wherever the program runs and nothing is written to the working directory.
// adolc_file_access reports whether that held (tapestats: OP/LOC/VAL_FILE_ACCESS, and the
// Taylor stack against its buffer); the startup check prints it too.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include <benchmark/benchmark.h>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/soft/threshold.hpp>

#if DIFFBIO_HAVE_ADOLC
#include <adolc/adolc.h>
#endif

namespace {

using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::ad::Var;

constexpr double kT0 = 20.0;
constexpr double kTau0 = 1.5;

/// x_i = 2 + 39·frac(0.618·i): deterministic, spread over [2, 41), so some σ are saturated.
std::vector<double> make_data(std::size_t n) {
    std::vector<double> x(n);
    for (std::size_t i = 0; i < n; ++i) {
        const double v = 0.618 * static_cast<double>(i);
        x[i] = 2.0 + 39.0 * (v - std::floor(v));
    }
    return x;
}

/// The baseline: value only.
double forward_double(std::span<const double> x, double t, double tau) {
    double s = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) s += diffbio::sigmoid((x[i] - t) / tau);
    return s;
}

/// Scalar reverse mode on an already rewound tape (active on this thread): record, sweep,
/// read every adjoint into grad (size n + 2: x, then t, then τ). Returns f.
double gradient_var_tape(Tape& tape, std::span<const double> x, double t0, double tau0, std::span<double> grad) {
    const std::size_t n = x.size();
    const std::span<const Var> xv = tape.variables(x);
    const Var t = tape.variable(t0);
    const Var tau = tape.variable(tau0);
    Var s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += sigmoid((xv[i] - t) / tau); // diffbio::ad::sigmoid (ADL)
    tape.backward(s);
    tape.adjoints(xv, grad.first(n));
    grad[n] = tape.adjoint(t);
    grad[n + 1] = tape.adjoint(tau);
    return tape.value(s);
}

/// The same gradient through one fused node.
double gradient_fused(Tape& tape, std::span<const double> x, double t0, double tau0, std::span<double> grad) {
    const std::size_t n = x.size();
    const std::span<const Var> xv = tape.variables(x);
    const Var t = tape.variable(t0);
    const Var tau = tape.variable(tau0);
    const Var s = diffbio::soft::sum_sigmoid_threshold(xv, t, tau);
    tape.backward(s);
    tape.adjoints(xv, grad.first(n));
    grad[n] = tape.adjoint(t);
    grad[n + 1] = tape.adjoint(tau);
    return tape.value(s);
}

/// Runs one gradient untimed before the timing loop and reports its time as first_iter_ms: for
/// our tapes that first recording is where the tape's memory is allocated and faulted in; the
/// timed iterations then measure the steady state of a loop that rewinds and reuses the tape.
template <class F>
void warm_up(benchmark::State& state, F&& one_gradient) {
    const auto start = std::chrono::steady_clock::now();
    one_gradient();
    const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - start;
    state.counters["first_iter_ms"] = ms.count();
}

void set_common_counters(benchmark::State& state, std::size_t n) {
    state.counters["elements_per_second"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

/// Our tape's size after a recording. A record is one variable: 20 bytes (value 8, adjoint 8 —
/// the adjoint array is counted although it is only sized by the sweep — and the 4-byte end
/// offset of its operand list) + 12 bytes per operand (4-byte index + 8-byte partial). The scalar
/// variant records per element 1 leaf + 4 ops (−, /, σ, +) with 7 operands: 184 bytes over 5
/// records = 36.8 bytes per record. The fused variant records the n + 2 leaves and one output,
/// no operands: 20 bytes per record (its arena also holds the Var block and a copy of the x
/// values, 12 bytes per element, which used_bytes() does not count).
void set_tape_counters(benchmark::State& state, const Tape& tape, std::size_t n) {
    const double bytes = static_cast<double>(tape.used_bytes());
    const double vars = static_cast<double>(tape.num_vars());
    state.counters["bytes_per_op"] = bytes / vars;
    state.counters["tape_MB"] = bytes / 1e6;
    state.counters["records_per_element"] = vars / static_cast<double>(n);
}

// ---- benchmarks -------------------------------------------------------------------------------

void BM_double_forward(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::vector<double> x = make_data(n);
    double t = kT0;
    double tau = kTau0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(t);
        benchmark::DoNotOptimize(tau);
        double s = forward_double(x, t, tau);
        benchmark::DoNotOptimize(s);
    }
    set_common_counters(state, n);
}

void BM_var_tape(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::vector<double> x = make_data(n);
    std::vector<double> grad(n + 2);
    Tape tape; // created once; every iteration rewinds it and reuses its memory
    ScopedTape scope(tape);
    const Tape::Mark mark = tape.mark();
    warm_up(state, [&] { gradient_var_tape(tape, x, kT0, kTau0, grad); });
    for (auto _ : state) {
        tape.rewind(mark);
        double f = gradient_var_tape(tape, x, kT0, kTau0, grad);
        benchmark::DoNotOptimize(f);
        benchmark::DoNotOptimize(grad.data());
        benchmark::ClobberMemory();
    }
    set_common_counters(state, n);
    set_tape_counters(state, tape, n); // the last iteration's recording is still on the tape
}

void BM_fused_node(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::vector<double> x = make_data(n);
    std::vector<double> grad(n + 2);
    Tape tape;
    ScopedTape scope(tape);
    const Tape::Mark mark = tape.mark();
    warm_up(state, [&] { gradient_fused(tape, x, kT0, kTau0, grad); });
    for (auto _ : state) {
        tape.rewind(mark);
        double f = gradient_fused(tape, x, kT0, kTau0, grad);
        benchmark::DoNotOptimize(f);
        benchmark::DoNotOptimize(grad.data());
        benchmark::ClobberMemory();
    }
    set_common_counters(state, n);
    set_tape_counters(state, tape, n);
}

/// n = 10^4, 10^5 and the headline 10^6.
void sizes(benchmark::internal::Benchmark* b) {
    b->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_double_forward)->Apply(sizes);
BENCHMARK(BM_var_tape)->Apply(sizes);
BENCHMARK(BM_fused_node)->Apply(sizes);

// ---- ADOL-C -----------------------------------------------------------------------------------
#if DIFFBIO_HAVE_ADOLC

/// The same overflow-free σ as diffbio::sigmoid, branching on the value as our Var does (the
/// tape is only evaluated at the point it was recorded at, so the branch stays valid).
adouble adolc_sigmoid(const adouble& z) {
    if (z.getValue() >= 0.0) return 1.0 / (1.0 + exp(-z));
    const adouble e = exp(z);
    return e / (1.0 + e);
}

/// Buffer sizes (in elements) for trace_on's per-tape overload.
struct AdolcBuffers {
    unsigned obs = OBUFSIZE;
    unsigned lbs = LBUFSIZE;
    unsigned vbs = VBUFSIZE;
    unsigned tbs = TBUFSIZE;
};

/// Record f on tape `tag` with the given buffers; keep = 1 also stores the Taylor coefficients
/// for a following fos_reverse. Returns f.
double adolc_record(short tag, int keep, const AdolcBuffers& b, std::span<const double> point) {
    const std::size_t n = point.size() - 2;
    double y = 0.0;
    trace_on(tag, keep, b.obs, b.lbs, b.vbs, b.tbs);
    {
        std::vector<adouble> xa(n);
        for (std::size_t i = 0; i < n; ++i) xa[i] <<= point[i];
        adouble t;
        adouble tau;
        t <<= point[n];
        tau <<= point[n + 1];
        adouble s = 0.0;
        for (std::size_t i = 0; i < n; ++i) s += adolc_sigmoid((xa[i] - t) / tau);
        s >>= y;
    }
    trace_off();
    return y;
}

void adolc_fail(const char* what, int rc) {
    std::fprintf(stderr, "bench_tape: ADOL-C %s failed (rc = %d)\n", what, rc);
    std::abort();
}

/// ADOL-C's standard driver: taping, then gradient() = zos_forward (keep) + fos_reverse.
double gradient_adolc(short tag, const AdolcBuffers& b, std::span<const double> point, std::span<double> grad) {
    const double y = adolc_record(tag, 0, b, point);
    const int rc = gradient(tag, static_cast<int>(point.size()), point.data(), grad.data());
    if (rc < 0) adolc_fail("gradient()", rc);
    return y;
}

/// Taping with keep = 1, then one reverse sweep on the kept Taylors (no second forward pass).
double gradient_adolc_keep(short tag, const AdolcBuffers& b, std::span<const double> point, std::span<double> grad) {
    const double y = adolc_record(tag, 1, b, point);
    double u = 1.0;
    const int rc = fos_reverse(tag, 1, static_cast<int>(point.size()), &u, grad.data());
    if (rc < 0) adolc_fail("fos_reverse()", rc);
    return y;
}

struct AdolcStats {
    std::size_t ops = 0, locs = 0, vals = 0, taylors = 0;
    bool on_disk = false;
};
/// The tape's statistics. on_disk: the operations, locations or values went to files, or the
/// Taylor stack outgrew its buffer (then ADOL-C writes it to ADOLC-Taylors_<tag>.tap).
AdolcStats adolc_stats(short tag) {
    std::size_t s[STAT_SIZE] = {};
    tapestats(tag, s);
    return {s[NUM_OPERATIONS], s[NUM_LOCATIONS], s[NUM_VALUES], s[TAY_STACK_SIZE],
            s[OP_FILE_ACCESS] != 0 || s[LOC_FILE_ACCESS] != 0 || s[VAL_FILE_ACCESS] != 0 ||
                s[TAY_STACK_SIZE] > s[TAY_BUFFER_SIZE]};
}

/// Buffers that hold the whole tape for n elements in memory. Measured with ADOL-C 2.7.2, this
/// function tapes per element about 9 operations, 18 locations, 2 values and 9 Taylors; the
/// Taylor stack also holds one entry per location of ADOL-C's global store (≈ the largest
/// number of adoubles alive so far, ≥ n here). Bounds: 16, 32, 4 and 16 per element + 2^21.
/// Only the part a tape uses is ever touched, so generous bounds cost no time. Whether they
/// held is checked after every recording that reports counters (adolc_file_access).
AdolcBuffers adolc_buffers_for(std::size_t n) {
    auto bound = [n](std::size_t per_element) {
        const std::size_t want = per_element * n + (std::size_t{1} << 21);
        return static_cast<unsigned>(std::min<std::size_t>(want, 0xFFFF'FFFFu));
    };
    return {bound(16), bound(32), bound(4), bound(16)};
}

/// ADOL-C's tape proper, as tapestats counts it: operation codes (1 byte each), locations
/// (locint, 4 bytes) and constants (8 bytes). A record is one ADOL-C operation (assign_ind,
/// min_a_a, div_a_a, exp_op, ... each is one). Not in bytes_per_op: the Taylor (value) stack the
/// reverse sweep reads (taylor_MB, 8 bytes per entry; it also holds one entry per location of
/// ADOL-C's global store, so after a larger run it is inflated at small n) and the adjoint array
/// (max live locations doubles, reused). Our bytes_per_op includes values and adjoints, so compare
/// tape_MB + taylor_MB with our tape_MB.
void set_adolc_counters(benchmark::State& state, short tag, std::size_t n) {
    const AdolcStats st = adolc_stats(tag);
    const double bytes = static_cast<double>(st.ops * 1 + st.locs * sizeof(locint) + st.vals * sizeof(double));
    state.counters["bytes_per_op"] = bytes / static_cast<double>(st.ops);
    state.counters["tape_MB"] = bytes / 1e6;
    state.counters["taylor_MB"] = static_cast<double>(st.taylors * sizeof(double)) / 1e6;
    state.counters["records_per_element"] = static_cast<double>(st.ops) / static_cast<double>(n);
    state.counters["adolc_file_access"] = st.on_disk ? 1.0 : 0.0;
}

template <double (*Gradient)(short, const AdolcBuffers&, std::span<const double>, std::span<double>)>
void adolc_benchmark(benchmark::State& state, short tag) {
    const auto n = static_cast<std::size_t>(state.range(0));
    std::vector<double> point = make_data(n);
    point.push_back(kT0);
    point.push_back(kTau0);
    std::vector<double> grad(n + 2);
    const AdolcBuffers buffers = adolc_buffers_for(n);
    warm_up(state, [&] { Gradient(tag, buffers, point, grad); });
    for (auto _ : state) {
        double f = Gradient(tag, buffers, point, grad);
        benchmark::DoNotOptimize(f);
        benchmark::DoNotOptimize(grad.data());
        benchmark::ClobberMemory();
    }
    set_common_counters(state, n);
    set_adolc_counters(state, tag, n);
}

void BM_adolc(benchmark::State& state) { adolc_benchmark<gradient_adolc>(state, 1); }
void BM_adolc_keep_reverse(benchmark::State& state) { adolc_benchmark<gradient_adolc_keep>(state, 2); }

BENCHMARK(BM_adolc)->Apply(sizes);
BENCHMARK(BM_adolc_keep_reverse)->Apply(sizes);

#endif // DIFFBIO_HAVE_ADOLC

// ---- sanity check -----------------------------------------------------------------------------

/// The exact gradient in long double: g_i = σ'(z_i)/τ with σ'(z) = e^{−|z|}/(1 + e^{−|z|})², z_i = (x_i − t)/τ;
/// ∂t = −Σ g_i, ∂τ = −Σ g_i z_i. Tells which variant is accurate where they disagree.
std::vector<double> reference_gradient(std::span<const double> x, double t, double tau) {
    const std::size_t n = x.size();
    std::vector<double> g(n + 2);
    long double sum_g = 0.0L, sum_gz = 0.0L;
    for (std::size_t i = 0; i < n; ++i) {
        const long double z = (static_cast<long double>(x[i]) - t) / tau;
        const long double e = std::exp(-std::fabs(z));
        const long double gi = e / ((1.0L + e) * (1.0L + e)) / tau;
        g[i] = static_cast<double>(gi);
        sum_g += gi;
        sum_gz += gi * z;
    }
    g[n] = static_cast<double>(-sum_g);
    g[n + 1] = static_cast<double>(-sum_gz);
    return g;
}

/// max_i |a_i − b_i| / max_i |b_i|: the error relative to the gradient's size.
double normwise_rel_diff(std::span<const double> a, std::span<const double> b) {
    double diff = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
        diff = std::max(diff, std::fabs(a[i] - b[i]));
        scale = std::max(scale, std::fabs(b[i]));
    }
    return scale > 0.0 ? diff / scale : diff;
}

/// max_i |a_i − b_i| / |b_i| (components with b_i = 0 compared absolutely), and where.
struct ComponentDiff {
    double rel = 0.0;
    std::size_t at = 0;
};
ComponentDiff componentwise_rel_diff(std::span<const double> a, std::span<const double> b) {
    ComponentDiff worst;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = b[i] != 0.0 ? std::fabs((a[i] - b[i]) / b[i]) : std::fabs(a[i]);
        if (!(d <= worst.rel)) worst = {std::isfinite(d) ? d : INFINITY, i};
    }
    return worst;
}

constexpr double kTol = 1e-10;

[[noreturn]] void check_failed(const char* what, double d, std::size_t n) {
    std::fprintf(stderr, "bench_tape: %s differ by %.3g relative (> %.0e) at n = %zu; aborting\n", what, d, kTol, n);
    std::abort();
}

void expect_same_value(const char* what, double a, double b, std::size_t n) {
    const double d = std::fabs(a - b) / std::max(std::fabs(a), std::fabs(b));
    std::fprintf(stderr, "bench_tape check n=%-6zu value    %-22s rel diff %.3g\n", n, what, d);
    if (!(d <= kTol)) check_failed(what, d, n);
}

/// Aborts when the gradients differ by more than kTol relative to the gradient's size (the
/// normwise difference), against our scalar tape and against the exact gradient. Also prints the
/// worst single component against the exact gradient, where precision losses in small partials
/// show up (reported, not fatal).
void expect_same_gradient(const char* what, std::span<const double> g, std::span<const double> g_tape,
                          std::span<const double> g_exact, std::size_t n) {
    const double d_tape = normwise_rel_diff(g, g_tape);
    const double d_exact = normwise_rel_diff(g, g_exact);
    const ComponentDiff c = componentwise_rel_diff(g, g_exact);
    const char* component = c.at < n ? "x_i" : (c.at == n ? "t" : "tau");
    std::fprintf(stderr,
                 "bench_tape check n=%-6zu gradient %-22s normwise vs var_tape %.3g, vs exact %.3g; "
                 "worst component vs exact %.3g (%s, index %zu)%s\n",
                 n, what, d_tape, d_exact, c.rel, component, c.at, c.rel > kTol ? "  <-- above 1e-10" : "");
    if (!(d_tape <= kTol)) check_failed(what, d_tape, n);
    if (!(d_exact <= kTol)) check_failed(what, d_exact, n);
}

/// Every variant must give the same f and the same gradient before anything is timed.
void check_variants(std::size_t n) {
    const std::vector<double> x = make_data(n);
    const double f_double = forward_double(x, kT0, kTau0);
    const std::vector<double> g_exact = reference_gradient(x, kT0, kTau0);

    std::vector<double> g_tape(n + 2), g_fused(n + 2);
    double f_tape = 0.0, f_fused = 0.0;
    {
        Tape tape;
        ScopedTape scope(tape);
        f_tape = gradient_var_tape(tape, x, kT0, kTau0, g_tape);
        tape.clear();
        f_fused = gradient_fused(tape, x, kT0, kTau0, g_fused);
    }
    expect_same_value("var_tape", f_tape, f_double, n);
    expect_same_value("fused_node", f_fused, f_double, n);
    expect_same_gradient("var_tape", g_tape, g_tape, g_exact, n);
    expect_same_gradient("fused_node", g_fused, g_tape, g_exact, n);

#if DIFFBIO_HAVE_ADOLC
    std::vector<double> point = x;
    point.push_back(kT0);
    point.push_back(kTau0);
    const AdolcBuffers buffers = adolc_buffers_for(n);
    std::vector<double> g_adolc(n + 2), g_keep(n + 2);
    expect_same_value("adolc", gradient_adolc(1, buffers, point, g_adolc), f_double, n);
    expect_same_value("adolc_keep_reverse", gradient_adolc_keep(2, buffers, point, g_keep), f_double, n);
    expect_same_gradient("adolc", g_adolc, g_tape, g_exact, n);
    expect_same_gradient("adolc_keep_reverse", g_keep, g_tape, g_exact, n);
    for (const short tag : {short{1}, short{2}}) {
        const AdolcStats st = adolc_stats(tag);
        std::fprintf(stderr,
                     "bench_tape check n=%-6zu adolc tape %d: %zu operations, %zu locations, %zu values, %zu Taylors, %s\n",
                     n, tag, st.ops, st.locs, st.vals, st.taylors,
                     st.on_disk ? "PARTLY ON DISK (buffers too small)" : "all in memory");
    }
#endif
}

} // namespace

int main(int argc, char** argv) {
    check_variants(1000);
    check_variants(10'000);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
