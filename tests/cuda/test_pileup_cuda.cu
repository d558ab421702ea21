// CPU/GPU parity of DifferentiablePileup's CUDA backend (ops/variant/cuda/pileup.cuh), forward
// and backward, in float and double, on a random batch with every CIGAR operation (soft and hard
// clips, insertions anchored and not, deletions, reference skips, = and X), N bases, missing
// qualities, unmapped reads and reads on another contig, zero-weight reads, reads over the
// region's ends and positions no read covers; three configurations (quality weights with read
// weights and gates; no quality weights with N spread uniformly and the softmax option; soft
// bases).
//
// Part 1 runs everywhere: the kernels' bodies (forward_read, finish_position,
// table_adjoint_position, backward_read) are run on the host, lane by lane for 32 lanes, against
// the Cpu backend (forward) and its Var tape (backward), and the host API's validation is
// checked. Part 2 needs a GPU (exit 77 without one, after part 1 passed): the host API on the
// device against the Cpu backend.
//
// Tolerances, relative to max(1, |cpu|): double 1e-12 (forward), 1e-10 (gradients); float 1e-5
// (the project's float bar; the forward's atomicAdd order changes the float rounding of sums of
// ~60 terms per position). The GPU's float gradients are compared with the CPU's Var gradients
// (double) at 1e-5.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/exec/cuda/error.cuh>

#include "cuda_checks.hpp"
#include <diffbio/ops/variant/cuda/pileup.cuh>
#include <diffbio/ops/variant/pileup.hpp>

namespace {

using namespace diffbio;
namespace pk = ops::cuda::pileup_kernels;

using cuda_checks::expect;
using cuda_checks::expect_all_close;
using cuda_checks::expect_close;
using cuda_checks::expect_throw;
using cuda_checks::failures;

std::uint64_t rng_state = 7;
std::uint64_t next_u64() {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return rng_state >> 17;
}
std::uint64_t below(std::uint64_t n) { return next_u64() % n; }
double uniform() { return static_cast<double>(next_u64() % (1ULL << 40)) / static_cast<double>(1ULL << 40); }

constexpr std::int64_t contig_length = 2000;
// Reads on c1 start in [0, 1400) and span at most 179 reference positions: the region's last 300
// positions (1600..1899) have no reads.
const ops::PileupRegion region{0, 100, 1900};

AlignedBatch random_batch(std::size_t reads) {
    AlignedBatch b;
    b.contigs = {{"c1", contig_length}, {"c2", 300}};
    for (std::size_t r = 0; r < reads; ++r) {
        std::vector<std::uint32_t> ops;
        std::string seq;
        std::vector<std::uint8_t> q;
        auto add_bases = [&](std::uint32_t n) {
            for (std::uint32_t k = 0; k < n; ++k) {
                seq.push_back(below(20) == 0 ? 'N' : "ACGT"[below(4)]);
                q.push_back(below(20) == 0 ? std::uint8_t{255} : static_cast<std::uint8_t>(below(42)));
            }
        };
        auto push = [&](CigarOp op, std::uint32_t n) {
            ops.push_back(cigar_pack(op, n));
            if (consumes_query(op)) add_bases(n);
        };
        if (below(8) == 0) push(CigarOp::HardClip, 1 + static_cast<std::uint32_t>(below(5)));
        if (below(4) == 0) push(CigarOp::SoftClip, 1 + static_cast<std::uint32_t>(below(6)));
        if (below(10) == 0) push(CigarOp::Insertion, 1 + static_cast<std::uint32_t>(below(3))); // unanchored
        const int blocks = 1 + static_cast<int>(below(3));
        for (int k = 0; k < blocks; ++k) {
            const CigarOp aligned[] = {CigarOp::Match, CigarOp::Match, CigarOp::SeqMatch, CigarOp::SeqMismatch};
            push(aligned[below(4)], 8 + static_cast<std::uint32_t>(below(40)));
            if (k + 1 < blocks) {
                const CigarOp gap[] = {CigarOp::Insertion, CigarOp::Deletion, CigarOp::RefSkip};
                const CigarOp g = gap[below(3)];
                push(g, g == CigarOp::RefSkip ? 5 + static_cast<std::uint32_t>(below(15)) : 1 + static_cast<std::uint32_t>(below(3)));
            }
        }
        if (below(10) == 0) push(CigarOp::Insertion, 1 + static_cast<std::uint32_t>(below(3))); // anchored at the end
        if (below(4) == 0) push(CigarOp::SoftClip, 1 + static_cast<std::uint32_t>(below(6)));
        std::uint16_t flags = below(2) == 0 ? sam_flag::reverse : 0;
        if (below(20) == 0) flags |= sam_flag::unmapped;
        const std::int32_t contig = below(20) == 0 ? 1 : 0;
        const std::int64_t start = static_cast<std::int64_t>(below(contig == 0 ? 1400 : 120));
        std::string name = "r";
        name += std::to_string(r);
        b.add(name, contig, start, 60, flags, ops, seq, q);
    }
    return b;
}

/// One configuration of the operator and its upstream inputs (as double; float copies are made).
struct Case {
    std::string name;
    ops::PileupConfig cfg;
    bool read_weights = false, gates = false, soft = false, table_adjoint = false;
};

std::vector<Case> cases() {
    std::vector<Case> out;
    Case a{"quality+weights+gates", {}, true, true, false, false};
    a.cfg.quality_scale = 0.9;
    a.cfg.quality_offset = 0.7;
    out.push_back(a);
    Case b{"hard+N-uniform+softmax", {}, false, false, false, true};
    b.cfg.use_quality_weights = false;
    b.cfg.n_as_uniform = true;
    b.cfg.apply_softmax = true;
    b.cfg.temperature = 0.7;
    out.push_back(b);
    Case c{"soft bases+quality+weights", {}, true, true, true, false};
    c.cfg.quality_scale = 1.1;
    c.cfg.quality_offset = -0.4;
    c.cfg.missing_quality = 20.0;
    out.push_back(c);
    return out;
}

/// Upstream inputs and output adjoints of one case, drawn once (exact in float).
struct Data {
    std::vector<double> rho, gates, soft;
    std::vector<double> g_counts, g_cov, g_qsum, g_del, g_ins, g_freq, g_mq, g_table;
};

double draw_float_exact(double lo, double hi) { return static_cast<double>(static_cast<float>(lo + (hi - lo) * uniform())); }

Data make_data(const Case& c, const AlignedBatch& b) {
    Data d;
    const std::size_t N = b.num_reads(), M = b.num_bases(), L = region.length();
    if (c.read_weights) {
        for (std::size_t i = 0; i < N; ++i) d.rho.push_back(below(10) == 0 ? 0.0 : draw_float_exact(0.2, 1.5)); // some zero-weight reads
    }
    if (c.gates) {
        for (std::size_t m = 0; m < M; ++m) d.gates.push_back(draw_float_exact(0.0, 1.0));
    }
    if (c.soft) {
        for (std::size_t m = 0; m < M; ++m) {
            for (int k = 0; k < 4; ++k) d.soft.push_back(draw_float_exact(0.0, 1.0));
        }
    }
    auto fill = [&](std::vector<double>& v, std::size_t n) {
        for (std::size_t k = 0; k < n; ++k) v.push_back(draw_float_exact(-1.0, 1.0));
    };
    fill(d.g_counts, 4 * L);
    fill(d.g_cov, L);
    fill(d.g_qsum, L);
    for (double& v : d.g_qsum) v *= 0.01;
    fill(d.g_del, L);
    fill(d.g_ins, L);
    fill(d.g_freq, 4 * L);
    fill(d.g_mq, L);
    if (c.table_adjoint) fill(d.g_table, 8 * L);
    return d;
}

template <class T>
std::vector<T> as(const std::vector<double>& v) {
    return std::vector<T>(v.begin(), v.end());
}

/// The CPU Var gradients of L = Σ adjoint · output over every field.
struct CpuGrads {
    std::vector<double> rho, gates, soft;
    double a = 0.0, b = 0.0;
};

CpuGrads cpu_grads(const Case& c, const AlignedBatch& batch, const Data& d) {
    ops::DifferentiablePileup op(c.cfg);
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    ad::Binder<ad::Var> bind(tape);
    const auto rv = tape.variables(d.rho);
    const auto gv = tape.variables(d.gates);
    const auto sv = tape.variables(d.soft);
    const auto r = op.apply(bind, batch, region, ops::PileupInputs<ad::Var, ad::Var, ad::Var>{rv, gv, sv});
    ad::Var loss = 0.0;
    auto add = [&](const std::vector<ad::Var>& y, const std::vector<double>& g) {
        for (std::size_t k = 0; k < g.size(); ++k) loss += y[k] * g[k];
    };
    add(r.counts, d.g_counts);
    add(r.coverage, d.g_cov);
    add(r.quality_sum, d.g_qsum);
    add(r.deletions, d.g_del);
    add(r.insertions, d.g_ins);
    add(r.frequencies, d.g_freq);
    add(r.mean_quality, d.g_mq);
    add(r.table, d.g_table);
    tape.backward(loss);
    CpuGrads out;
    out.rho.resize(rv.size());
    out.gates.resize(gv.size());
    out.soft.resize(sv.size());
    tape.adjoints(rv, out.rho);
    tape.adjoints(gv, out.gates);
    tape.adjoints(sv, out.soft);
    bind.accumulate_grad();
    if (c.cfg.use_quality_weights) {
        out.a = op.quality_scale().grad()[0];
        out.b = op.quality_offset().grad()[0];
    }
    return out;
}

template <class T>
ops::PileupResult<T> cpu_forward(const Case& c, const AlignedBatch& batch, const std::vector<T>& rho, const std::vector<T>& gates,
                                 const std::vector<T>& soft) {
    ops::DifferentiablePileup op(c.cfg);
    ad::Binder<T> bind;
    return op.apply(bind, batch, region, ops::PileupInputs<T, T, T>{rho, gates, soft});
}

ops::cuda::AlignedBatchView host_view(const AlignedBatch& b) {
    ops::cuda::AlignedBatchView v;
    v.num_reads = b.num_reads();
    v.num_bases = b.num_bases();
    v.contig = b.contig.data();
    v.ref_start = b.ref_start.data();
    v.ref_end = b.ref_end.data();
    v.flags = b.flags.data();
    v.base_offset = b.base_offset.data();
    v.cigar_offset = b.cigar_offset.data();
    v.cigar = b.cigar.data();
    v.bases = b.bases.data();
    v.qualities = b.qualities.data();
    return v;
}

template <class T>
ops::cuda::PileupDeviceInputs<T> pointers(const std::vector<T>& rho, const std::vector<T>& gates, const std::vector<T>& soft) {
    return {rho.empty() ? nullptr : rho.data(), gates.empty() ? nullptr : gates.data(), soft.empty() ? nullptr : soft.data()};
}

// ---- Part 1: the kernels' bodies on the host ------------------------------------------------

template <class T>
void emulated_forward(const Case& c, const AlignedBatch& batch, const Data& d, const char* tname, double rel) {
    const auto rho = as<T>(d.rho), gates = as<T>(d.gates), soft = as<T>(d.soft);
    const auto args = ops::cuda::pileup_cuda_detail::read_args<T>(c.cfg, host_view(batch), region, pointers(rho, gates, soft));
    T qw[256], qv[256];
    for (unsigned k = 0; k < 256; ++k) {
        qv[k] = pk::quality_value<T>(k, c.cfg.missing_quality);
        qw[k] = pk::quality_weight<T>(static_cast<T>(c.cfg.quality_scale), static_cast<T>(c.cfg.quality_offset), qv[k]);
    }
    const std::size_t L = region.length();
    std::vector<T> table(8 * L, T(0)), freq(4 * L), mq(L);
    for (std::size_t i = 0; i < batch.num_reads(); ++i) {
        for (unsigned lane = 0; lane < 32; ++lane) {
            pk::forward_read<T>(args, c.cfg.use_quality_weights ? qw : nullptr, qv, i, lane, 32, table.data());
        }
    }
    for (std::size_t p = 0; p < L; ++p) {
        pk::finish_position<T>(p, soft.empty(), c.cfg.n_as_uniform, c.cfg.eps, c.cfg.apply_softmax, c.cfg.temperature, table.data(),
                               freq.data(), mq.data());
    }
    const auto cpu = cpu_forward<T>(c, batch, rho, gates, soft);
    const std::string what = "host-run kernels " + c.name + " " + tname + " ";
    expect_all_close(table, cpu.table, rel, what + "table");
    expect_all_close(freq, cpu.frequencies, rel, what + "frequencies");
    expect_all_close(mq, cpu.mean_quality, rel, what + "mean quality");
}

void emulated_backward(const Case& c, const AlignedBatch& batch, const Data& d, const CpuGrads& want) {
    const auto rho = d.rho, gates = d.gates, soft = d.soft;
    const auto args = ops::cuda::pileup_cuda_detail::read_args<double>(c.cfg, host_view(batch), region, pointers(rho, gates, soft));
    const std::size_t L = region.length();
    const auto fwd = cpu_forward<double>(c, batch, rho, gates, soft);
    auto ptr = [](const std::vector<double>& v) { return v.empty() ? nullptr : v.data(); };
    const ops::cuda::PileupDeviceOutputGrads<double> gy{ptr(d.g_counts), ptr(d.g_cov), ptr(d.g_qsum), ptr(d.g_del),
                                                        ptr(d.g_ins),    ptr(d.g_freq), ptr(d.g_mq),  ptr(d.g_table)};
    std::vector<double> gt(8 * L);
    for (std::size_t p = 0; p < L; ++p) {
        pk::table_adjoint_position<double>(p, fwd.table.data(), gy, c.cfg.eps, c.cfg.apply_softmax, c.cfg.temperature, gt.data());
    }
    double qw[256], qv[256], qa[256], qb[256];
    for (unsigned k = 0; k < 256; ++k) {
        qv[k] = pk::quality_value<double>(k, c.cfg.missing_quality);
        pk::quality_derivatives(c.cfg.quality_scale, c.cfg.quality_offset, qv[k], qw[k], qa[k], qb[k]);
    }
    const bool use_q = c.cfg.use_quality_weights;
    std::vector<double> g_rho(rho.size(), 0.0), g_gates(gates.size(), 0.0), g_soft(soft.size(), 0.0);
    double ga = 0.0, gb = 0.0;
    for (std::size_t i = 0; i < batch.num_reads(); ++i) {
        double total = 0.0;
        for (unsigned lane = 0; lane < 32; ++lane) {
            const auto part = pk::backward_read<double>(args, use_q ? qw : nullptr, qv, use_q ? qa : nullptr, qb, gt.data(),
                                                        gates.empty() ? nullptr : g_gates.data(), soft.empty() ? nullptr : g_soft.data(),
                                                        i, lane, 32);
            total += part.read_w;
            ga += part.a;
            gb += part.b;
        }
        if (!g_rho.empty()) g_rho[i] += total;
    }
    const std::string what = "host-run kernels " + c.name + " gradient ";
    expect_all_close(g_rho, want.rho, 1e-10, what + "read weights");
    expect_all_close(g_gates, want.gates, 1e-10, what + "gates");
    expect_all_close(g_soft, want.soft, 1e-10, what + "soft bases");
    expect_close(ga, want.a, 1e-10, what + "a");
    expect_close(gb, want.b, 1e-10, what + "b");
}

void check_validation(const AlignedBatch& batch) {
    ops::DifferentiablePileup op;
    const exec::Cuda p{};
    expect_throw([&] { (void)ops::cuda::pileup_forward<float>(p, op, batch, ops::PileupRegion{5, 0, 10}); }, "contig 5",
                 "region on a missing contig");
    expect_throw([&] { (void)ops::cuda::pileup_forward<float>(p, op, batch, ops::PileupRegion{0, 10, 2500}); }, "length 2000",
                 "region past the contig's end");
    const std::vector<float> rho(3, 1.0f);
    expect_throw([&] { (void)ops::cuda::pileup_forward<float>(p, op, batch, region, ops::PileupInputs<float, float, float>{rho, {}, {}}); },
                 "read_weights", "read weights of the wrong size");
}

// ---- Part 2: the GPU -------------------------------------------------------------------------

template <class T>
void gpu_parity(const Case& c, const AlignedBatch& batch, const ops::cuda::DeviceAlignedBatch& dbatch, const Data& d, const CpuGrads& want,
                const char* tname, double rel_fwd, double rel_grad) {
    const auto rho = as<T>(d.rho), gates = as<T>(d.gates), soft = as<T>(d.soft);
    const ops::PileupInputs<T, T, T> in{rho, gates, soft};
    ops::DifferentiablePileup op(c.cfg);
    const exec::Cuda p{};
    const std::string what = "GPU " + c.name + " " + tname + " ";
    const auto gpu = ops::cuda::pileup_forward<T>(p, op, dbatch, region, in);
    const auto cpu = cpu_forward<T>(c, batch, rho, gates, soft);
    expect_all_close(gpu.table, cpu.table, rel_fwd, what + "table");
    expect_all_close(gpu.counts, cpu.counts, rel_fwd, what + "counts");
    expect_all_close(gpu.coverage, cpu.coverage, rel_fwd, what + "coverage");
    expect_all_close(gpu.quality_sum, cpu.quality_sum, rel_fwd, what + "quality_sum");
    expect_all_close(gpu.deletions, cpu.deletions, rel_fwd, what + "deletions");
    expect_all_close(gpu.insertions, cpu.insertions, rel_fwd, what + "insertions");
    expect_all_close(gpu.frequencies, cpu.frequencies, rel_fwd, what + "frequencies");
    expect_all_close(gpu.mean_quality, cpu.mean_quality, rel_fwd, what + "mean_quality");
    // Positions no read reaches (the region's last 300 positions) are exactly 0 (and uniform 0.25
    // after the softmax).
    for (std::size_t q = region.length() - 300; q < region.length(); ++q) {
        for (std::size_t k = 0; k < 8; ++k) expect(gpu.table[8 * q + k] == T(0), what + "empty position " + std::to_string(q) + " table");
        expect(gpu.mean_quality[q] == T(0), what + "empty position mean quality");
        for (std::size_t k = 0; k < 4; ++k) {
            expect(gpu.frequencies[4 * q + k] == (c.cfg.apply_softmax ? T(0.25) : T(0)), what + "empty position frequency");
        }
    }

    const auto g_counts = as<T>(d.g_counts), g_cov = as<T>(d.g_cov), g_qsum = as<T>(d.g_qsum), g_del = as<T>(d.g_del),
               g_ins = as<T>(d.g_ins), g_freq = as<T>(d.g_freq), g_mq = as<T>(d.g_mq), g_table = as<T>(d.g_table);
    const ops::cuda::PileupOutputGrads<T> gy{g_counts, g_cov, g_qsum, g_del, g_ins, g_freq, g_mq, g_table};
    const auto g = ops::cuda::pileup_backward<T>(p, op, dbatch, region, in, gpu, gy);
    expect_all_close(g.read_weights, want.rho, rel_grad, what + "read weight gradient");
    expect_all_close(g.gates, want.gates, rel_grad, what + "gate gradient");
    expect_all_close(g.soft_bases, want.soft, rel_grad, what + "soft base gradient");
    expect_close(op.quality_scale().grad()[0], want.a, rel_grad, what + "a gradient");
    expect_close(op.quality_offset().grad()[0], want.b, rel_grad, what + "b gradient");
}

} // namespace

int main() {
    const AlignedBatch batch = random_batch(1500);
    std::printf("batch: %zu reads, %zu bases, region [%lld, %lld)\n", batch.num_reads(), batch.num_bases(),
                static_cast<long long>(region.start), static_cast<long long>(region.end));
    std::vector<Data> data;
    std::vector<CpuGrads> grads;
    for (const Case& c : cases()) {
        data.push_back(make_data(c, batch));
        grads.push_back(cpu_grads(c, batch, data.back()));
        // a zero-weight read still has a gradient (its bases' weighted adjoints)
        if (c.read_weights) {
            bool some = false;
            for (std::size_t i = 0; i < data.back().rho.size(); ++i) some = some || (data.back().rho[i] == 0.0 && grads.back().rho[i] != 0.0);
            expect(some, c.name + ": a zero-weight read has a nonzero gradient");
        }
    }

    // Part 1
    const auto cs = cases();
    for (std::size_t k = 0; k < cs.size(); ++k) {
        emulated_forward<double>(cs[k], batch, data[k], "double", 1e-12);
        emulated_forward<float>(cs[k], batch, data[k], "float", 1e-5);
        emulated_backward(cs[k], batch, data[k], grads[k]);
    }
    check_validation(batch);
    std::printf("host-run kernels and validation: %d failures\n", failures);
    if (failures != 0) return 1;

    // Part 2
    if (!exec::cuda::device_available()) {
        std::printf("SKIP: no CUDA device available; GPU parity not checked\n");
        return 77;
    }
    cudaDeviceProp prop{};
    exec::cuda::check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("device: %s\n", prop.name);
    const exec::Cuda p{};
    const ops::cuda::DeviceAlignedBatch dbatch(p, batch);
    for (std::size_t k = 0; k < cs.size(); ++k) {
        gpu_parity<double>(cs[k], batch, dbatch, data[k], grads[k], "double", 1e-12, 1e-10);
        gpu_parity<float>(cs[k], batch, dbatch, data[k], grads[k], "float", 1e-5, 1e-5);
    }
    // The host-batch overload uploads the batch itself.
    {
        ops::DifferentiablePileup op(cs[0].cfg);
        const auto a = ops::cuda::pileup_forward<double>(p, op, batch, region);
        const auto b = ops::cuda::pileup_forward<double>(p, op, dbatch, region);
        expect_all_close(a.table, b.table, 1e-12, "GPU host-batch overload");
    }
    std::printf("%s: %d failures\n", failures == 0 ? "PASS" : "FAIL", failures);
    return failures == 0 ? 0 : 1;
}
