#pragma once
// CUDA backend of DifferentiablePileup (see <diffbio/ops/variant/pileup.hpp> for the maths). Same
// outputs as the CPU operator for T = float or double: the [L × 8] table (A C G T coverage
// quality_sum deletions insertions per position), frequencies (with the softmax option) and mean
// quality; and the gradients of the CPU Var path (the fused segment-sum node, the normalising
// node and, with apply_softmax, the softmax) with respect to the read weights, gates, soft bases
// and the quality transform's a and b.
//
// Kernels (256-thread blocks, grid-stride loops, at most 65536 blocks):
//   forward    ONE WARP PER READ. The 32 lanes walk the read's CIGAR together (every lane reads the
//              same operation); an aligned run of len bases is split over the lanes (lane j takes
//              bases j, j + 32, ...: coalesced loads of bases, qualities, gates), a deletion's
//              positions likewise, an insertion is added by lane 0. Each base adds its weight
//              w = ρ_i · g_m · q(Q_m) into the table with atomicAdd (in T), exactly the additions of
//              the CPU forward_range (hard bases: the N weight goes to the coverage slot first).
//              q(Q) and Q are tabulated per block in shared memory (256 entries, computed on the
//              device from a and b with the CPU plain path's formula in T).
//   finish     one thread per position: coverage = A + C + G + T + N (hard bases; with
//              n_as_uniform N/4 to each channel), frequencies (softmax option), mean quality;
//              the same operations, in the same order, as the CPU operator's finish.
//   backward   (1) one thread per position turns the adjoints of the result's fields into the
//              adjoint of the table (the normalising node's and the softmax's backward, in double);
//              (2) ONE WARP PER READ walks the CIGAR as the forward (the same walk_read) and gathers, per aligned base,
//              gw = Σ_c ∂L/∂table[p, c] · ∂table[p, c]/∂w (in double), writing ∂L/∂g_m and
//              ∂L/∂soft_m (each base belongs to one lane: no atomics, deterministic), summing
//              ∂L/∂ρ_i over the warp (shuffle reduction, written by lane 0: deterministic), and
//              ∂L/∂a, ∂L/∂b in double (block reduction, one double atomicAdd per block).
//
// Determinism and parity: the forward adds with atomicAdd, so the order of the additions into a
// position (and the last bits of float sums) may change from run to run; doubles differ from the
// Cpu backend by rounding only (tested at 1e-12 relative), floats by the summation order of a
// position's ≤ coverage terms (tested at 1e-5 relative, the project's float bar, at the test's
// coverage of ~60). The backward's per-base and per-read gradients are deterministic; ∂L/∂a and
// ∂L/∂b are double sums whose block order varies (differences ~1e-16 relative). The gradients are
// computed in double from T inputs and stored in T.
//
// Two levels of API (namespace diffbio::ops::cuda):
//   * device pointers: AlignedBatchView (the batch's arrays on the device) and pileup_forward /
//     pileup_backward with PileupDeviceInputs / PileupDeviceOutputs / PileupDeviceOutputGrads /
//     PileupDeviceInputGrads. Asynchronous on the policy's stream, except the backward when the
//     quality-parameter gradients are requested (they come back to the host: one synchronisation).
//     Scratch: the backward allocates [L × 8] T (stream-ordered) for the table's adjoint.
//   * host convenience: DeviceAlignedBatch (uploads an AlignedBatch once), and pileup_forward /
//     pileup_backward taking the DifferentiablePileup, an AlignedBatch (or DeviceAlignedBatch), the
//     region and PileupInputs<T, T, T> of host data, returning PileupResult<T> and the inputs'
//     gradients; the backward adds ∂L/∂a, ∂L/∂b into the operator's quality_scale().grad() and
//     quality_offset().grad() as ad::Binder<ad::Var>::accumulate_grad does. Synchronous.
// O(N·CIGAR + aligned bases in the region + L). nvcc only.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include <diffbio/config.hpp>
#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/cuda/buffer.cuh>
#include <diffbio/exec/cuda/error.cuh>
#include <diffbio/exec/cuda/launch.cuh>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/variant/pileup.hpp>

namespace diffbio::ops::cuda {

/// An AlignedBatch's arrays in device memory (core/aligned_batch.hpp gives their meaning); names,
/// mapping qualities and the contig table are not needed on the device.
struct AlignedBatchView {
    std::size_t num_reads = 0;
    std::size_t num_bases = 0;
    const std::int32_t* contig = nullptr;      ///< [N]
    const std::int64_t* ref_start = nullptr;   ///< [N]
    const std::int64_t* ref_end = nullptr;     ///< [N]
    const std::uint16_t* flags = nullptr;      ///< [N]
    const std::size_t* base_offset = nullptr;  ///< [N + 1]
    const std::size_t* cigar_offset = nullptr; ///< [N + 1]
    const std::uint32_t* cigar = nullptr;      ///< [Σ CIGAR lengths]
    const std::uint8_t* bases = nullptr;       ///< [M] codes 0..4
    const std::uint8_t* qualities = nullptr;   ///< [M] Phred, 255 = missing
};

/// Optional per-read / per-base inputs on the device (null: all 1, or the batch's bases).
template <class T>
struct PileupDeviceInputs {
    const T* read_weights = nullptr; ///< [N]
    const T* gates = nullptr;        ///< [M]
    const T* soft_bases = nullptr;   ///< [M × 4]
};

/// Forward outputs on the device: table [L × 8] (required), frequencies [L × 4] and mean_quality
/// [L] (each may be null).
template <class T>
struct PileupDeviceOutputs {
    T* table = nullptr;
    T* frequencies = nullptr;
    T* mean_quality = nullptr;
};

/// Adjoints of the forward's outputs on the device; null means zero. `table` [L × 8] is the
/// adjoint of the table itself (the CPU fused node's output) and adds to the others.
template <class T>
struct PileupDeviceOutputGrads {
    const T* counts = nullptr;       ///< [L × 4]
    const T* coverage = nullptr;     ///< [L]
    const T* quality_sum = nullptr;  ///< [L]
    const T* deletions = nullptr;    ///< [L]
    const T* insertions = nullptr;   ///< [L]
    const T* frequencies = nullptr;  ///< [L × 4] (needs the forward table)
    const T* mean_quality = nullptr; ///< [L] (needs the forward table)
    const T* table = nullptr;        ///< [L × 8]
};

/// Gradients of the inputs on the device; each ACCUMULATES (+=) and may be null.
template <class T>
struct PileupDeviceInputGrads {
    T* read_weights = nullptr; ///< [N]
    T* gates = nullptr;        ///< [M]
    T* soft_bases = nullptr;   ///< [M × 4]
};

namespace pileup_kernels {

inline constexpr unsigned warp = 32;
inline constexpr std::size_t stride = pileup_detail::stride;
inline constexpr std::size_t ch_cov = pileup_detail::ch_cov, ch_qsum = pileup_detail::ch_qsum,
                             ch_del = pileup_detail::ch_del, ch_ins = pileup_detail::ch_ins;

/// What a read walk needs besides the quality tables.
template <class T>
struct ReadArgs {
    AlignedBatchView batch;
    std::int32_t contig = 0;
    std::int64_t start = 0;
    std::int64_t end = 0;
    const T* read_w = nullptr;
    const T* gates = nullptr;
    const T* soft = nullptr;
    bool n_uniform = false;
};

DIFFBIO_HD inline bool aligned_op(unsigned op) {
    return op == static_cast<unsigned>(CigarOp::Match) || op == static_cast<unsigned>(CigarOp::SeqMatch) ||
           op == static_cast<unsigned>(CigarOp::SeqMismatch);
}
DIFFBIO_HD inline bool op_consumes_reference(unsigned op) {
    return aligned_op(op) || op == static_cast<unsigned>(CigarOp::Deletion) || op == static_cast<unsigned>(CigarOp::RefSkip);
}
DIFFBIO_HD inline bool op_consumes_query(unsigned op) {
    return aligned_op(op) || op == static_cast<unsigned>(CigarOp::Insertion) || op == static_cast<unsigned>(CigarOp::SoftClip);
}

/// *p += v: atomicAdd on the device; a plain addition when the same code runs on the host (the
/// tests run the kernels' bodies lane by lane on the CPU).
template <class T>
DIFFBIO_HD inline void add_to(T* p, T v) {
#if defined(__CUDA_ARCH__)
    atomicAdd(p, v);
#else
    *p += v;
#endif
}

/// Q of quality code k as a number (255: the configured missing quality).
template <class T>
DIFFBIO_HD inline T quality_value(unsigned k, double missing) {
    return k == 255u ? static_cast<T>(missing) : static_cast<T>(k);
}

/// q(Q) = max(0, 1 − e^{−ln10/10 · (a·Q + b)}) in T, as the CPU operator's plain (float/double) path.
template <class T>
DIFFBIO_HD inline T quality_weight(T a, T b, T Q) {
    using std::exp;
    const T x = a * Q + b;
    const T e = exp(-static_cast<T>(pileup_detail::ln10_over_10) * x);
    return e < T(1) ? T(1) - e : T(0);
}

/// q(Q), ∂q/∂a, ∂q/∂b in double at (a, b), as the CPU operator's Var path (quality_tables).
DIFFBIO_HD inline void quality_derivatives(double a, double b, double Q, double& qw, double& da, double& db) {
    using std::exp;
    const double e = exp(-pileup_detail::ln10_over_10 * (a * Q + b));
    const bool on = 1.0 - e > 0.0;
    qw = on ? 1.0 - e : 0.0;
    da = on ? pileup_detail::ln10_over_10 * Q * e : 0.0;
    db = on ? pileup_detail::ln10_over_10 * e : 0.0;
}

/// Whether read i is mapped to contig a.contig and overlaps [a.start, a.end) (the reads a walk visits).
template <class T>
DIFFBIO_HD inline bool read_in_region(const ReadArgs<T>& a, std::size_t i) {
    const AlignedBatchView& b = a.batch;
    if ((b.flags[i] & sam_flag::unmapped) != 0 || b.contig[i] != a.contig) return false;
    return b.ref_end[i] >= a.start && b.ref_start[i] < a.end;
}

/// Walks the CIGAR of read i (which read_in_region accepts) over [a.start, a.end) for lane `lane`
/// of `lanes`, in CIGAR order: hard clips and padding are skipped; an aligned run's bases inside
/// the region are split over the lanes (lane j takes the run's in-region bases j, j + lanes, ...)
/// and each calls on_aligned(p, m) (p: position in the region, m: the base's index in the batch);
/// a deletion's positions likewise call on_deletion(p); an insertion calls on_insertion(p) on lane
/// 0 only, at its anchor p (the position before it), when an aligned, deleted or skipped position
/// precedes it and the anchor is inside the region. The forward and the backward share this walk.
template <class T, class OnAligned, class OnDeletion, class OnInsertion>
DIFFBIO_HD void walk_read(const ReadArgs<T>& a, std::size_t i, unsigned lane, unsigned lanes, OnAligned&& on_aligned,
                          OnDeletion&& on_deletion, OnInsertion&& on_insertion) {
    const AlignedBatchView& b = a.batch;
    bool anchored = false; // an aligned, deleted or skipped position precedes (insertions need an anchor)
    std::int64_t r = b.ref_start[i];
    std::size_t q = b.base_offset[i];
    for (std::size_t k = b.cigar_offset[i]; k < b.cigar_offset[i + 1]; ++k) {
        const std::uint32_t c = b.cigar[k];
        const unsigned op = c & 0xfu;
        const std::uint32_t len = c >> 4;
        if (op == static_cast<unsigned>(CigarOp::HardClip) || op == static_cast<unsigned>(CigarOp::Padding)) continue;
        const std::int64_t bs = r, be = r + static_cast<std::int64_t>(len);
        if (aligned_op(op)) {
            anchored = true;
            const std::int64_t r0 = bs > a.start ? bs : a.start, r1 = be < a.end ? be : a.end;
            if (r1 > r0) {
                const auto count = static_cast<std::size_t>(r1 - r0);
                const std::size_t m0 = q + static_cast<std::size_t>(r0 - bs);
                const std::size_t p0 = static_cast<std::size_t>(r0 - a.start);
                for (std::size_t t = lane; t < count; t += lanes) on_aligned(p0 + t, m0 + t);
            }
        } else if (op == static_cast<unsigned>(CigarOp::Deletion)) {
            anchored = true;
            const std::int64_t r0 = bs > a.start ? bs : a.start, r1 = be < a.end ? be : a.end;
            if (r1 > r0) {
                const auto count = static_cast<std::size_t>(r1 - r0);
                const std::size_t p0 = static_cast<std::size_t>(r0 - a.start);
                for (std::size_t t = lane; t < count; t += lanes) on_deletion(p0 + t);
            }
        } else if (op == static_cast<unsigned>(CigarOp::Insertion)) {
            const std::int64_t anchor = bs - 1;
            if (lane == 0 && anchored && anchor >= a.start && anchor < a.end) {
                on_insertion(static_cast<std::size_t>(anchor - a.start));
            }
        } else if (op == static_cast<unsigned>(CigarOp::RefSkip)) {
            anchored = true;
        }
        if (op_consumes_reference(op)) r += len;
        if (op_consumes_query(op)) q += len;
    }
}

/// The forward additions of read i that lane `lane` of `lanes` makes into table [L × 8] (zeroed
/// before). qweight [256] may be null (no quality weights); qvalue [256].
template <class T>
DIFFBIO_HD void forward_read(const ReadArgs<T>& a, const T* qweight, const T* qvalue, std::size_t i, unsigned lane,
                             unsigned lanes, T* table) {
    if (!read_in_region(a, i)) return;
    const AlignedBatchView& b = a.batch;
    const T rw = a.read_w != nullptr ? a.read_w[i] : T(1);
    walk_read(
        a, i, lane, lanes,
        [&](std::size_t p, std::size_t m) {
            T* o = table + p * stride;
            const std::uint8_t qc = b.qualities[m];
            T w = rw;
            if (a.gates != nullptr) w = w * a.gates[m];
            if (qweight != nullptr) w = w * qweight[qc];
            if (a.soft != nullptr) {
                const T* sm = a.soft + m * 4;
                add_to(o + 0, w * sm[0]);
                add_to(o + 1, w * sm[1]);
                add_to(o + 2, w * sm[2]);
                add_to(o + 3, w * sm[3]);
                add_to(o + ch_cov, w);
            } else {
                // code 4 (N, or any stray code) goes to the coverage slot; finish() makes that
                // slot the coverage.
                const std::uint8_t code = b.bases[m];
                add_to(o + (code < 4 ? code : ch_cov), w);
            }
            add_to(o + ch_qsum, w * qvalue[qc]);
        },
        [&](std::size_t p) { add_to(table + p * stride + ch_del, rw); },
        [&](std::size_t p) { add_to(table + p * stride + ch_ins, rw); });
}

/// The finish of position p: coverage and N spreading (hard bases), frequencies (may be null),
/// mean quality (may be null). The CPU operator's operations, in its order.
template <class T>
DIFFBIO_HD void finish_position(std::size_t p, bool hard, bool n_uniform, double eps, bool softmax, double temperature,
                                T* table, T* frequencies, T* mean_quality) {
    T* o = table + p * stride;
    if (hard) {
        const T nw = o[ch_cov];
        o[ch_cov] = o[0] + o[1] + o[2] + o[3] + nw;
        if (n_uniform) {
            const T quarter = nw * T(0.25);
            o[0] += quarter;
            o[1] += quarter;
            o[2] += quarter;
            o[3] += quarter;
        }
    }
    if (frequencies != nullptr) {
        T* f = frequencies + 4 * p;
        const T total = o[0] + o[1] + o[2] + o[3];
        const T inv = T(1) / (static_cast<double>(total) > eps ? total : static_cast<T>(eps));
        for (std::size_t k = 0; k < 4; ++k) f[k] = o[k] * inv;
        if (softmax) {
            using std::exp;
            const T inv_t = static_cast<T>(1.0 / temperature);
            double mx = static_cast<double>(f[0]);
            for (std::size_t k = 1; k < 4; ++k) mx = static_cast<double>(f[k]) > mx ? static_cast<double>(f[k]) : mx;
            T e[4];
            T sum = T(0);
            for (std::size_t k = 0; k < 4; ++k) {
                e[k] = exp((f[k] - static_cast<T>(mx)) * inv_t);
                sum = sum + e[k];
            }
            for (std::size_t k = 0; k < 4; ++k) f[k] = e[k] / sum;
        }
    }
    if (mean_quality != nullptr) {
        const T cov = static_cast<double>(o[ch_cov]) > eps ? o[ch_cov] : static_cast<T>(eps);
        mean_quality[p] = o[ch_qsum] / cov;
    }
}

/// Adjoint of position p's table row from the adjoints of the result's fields (the normalising
/// node's and the softmax's backward, in double). table: the forward table (read only when the
/// frequency or mean-quality adjoints are given). Writes gt[p·8 .. p·8 + 7] (not accumulated).
template <class T>
DIFFBIO_HD void table_adjoint_position(std::size_t p, const T* table, const PileupDeviceOutputGrads<T>& g, double eps,
                                       bool softmax, double temperature, T* gt) {
    double a[stride] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (g.table != nullptr) {
        for (std::size_t c = 0; c < stride; ++c) a[c] = static_cast<double>(g.table[p * stride + c]);
    }
    if (g.counts != nullptr) {
        for (std::size_t k = 0; k < 4; ++k) a[k] += static_cast<double>(g.counts[4 * p + k]);
    }
    if (g.coverage != nullptr) a[ch_cov] += static_cast<double>(g.coverage[p]);
    if (g.quality_sum != nullptr) a[ch_qsum] += static_cast<double>(g.quality_sum[p]);
    if (g.deletions != nullptr) a[ch_del] += static_cast<double>(g.deletions[p]);
    if (g.insertions != nullptr) a[ch_ins] += static_cast<double>(g.insertions[p]);
    if (g.frequencies != nullptr) {
        const T* o = table + p * stride;
        double c[4], gf[4];
        for (std::size_t k = 0; k < 4; ++k) {
            c[k] = static_cast<double>(o[k]);
            gf[k] = static_cast<double>(g.frequencies[4 * p + k]);
        }
        const double total = c[0] + c[1] + c[2] + c[3];
        if (softmax) {
            // f = softmax(f0 / T) with f0 = c / max(total, eps): ∂L/∂f0_k = s_k (ḡ_k − Σ_j ḡ_j s_j) / T.
            using std::exp;
            const double denom = total > eps ? total : eps;
            double s[4], mx = c[0] / denom;
            for (std::size_t k = 1; k < 4; ++k) mx = c[k] / denom > mx ? c[k] / denom : mx;
            double sum = 0.0;
            for (std::size_t k = 0; k < 4; ++k) {
                s[k] = exp((c[k] / denom - mx) / temperature);
                sum += s[k];
            }
            double dot = 0.0;
            for (std::size_t k = 0; k < 4; ++k) {
                s[k] /= sum;
                dot += gf[k] * s[k];
            }
            for (std::size_t k = 0; k < 4; ++k) gf[k] = s[k] * (gf[k] - dot) / temperature;
        }
        if (total > eps) {
            double dot = 0.0;
            for (std::size_t k = 0; k < 4; ++k) dot += gf[k] * c[k];
            const double inv = 1.0 / total;
            for (std::size_t k = 0; k < 4; ++k) a[k] += (gf[k] - dot * inv) * inv;
        } else {
            for (std::size_t k = 0; k < 4; ++k) a[k] += gf[k] / eps;
        }
    }
    if (g.mean_quality != nullptr) {
        const T* o = table + p * stride;
        const double gm = static_cast<double>(g.mean_quality[p]);
        const double cv = static_cast<double>(o[ch_cov]);
        const double cov = cv > eps ? cv : eps;
        a[ch_qsum] += gm / cov;
        if (cv > eps) a[ch_cov] -= gm * (static_cast<double>(o[ch_qsum]) / cov) / cov;
    }
    for (std::size_t c = 0; c < stride; ++c) gt[p * stride + c] = static_cast<T>(a[c]);
}

/// One lane's share of the read gradient sums.
struct ReadGradPartial {
    double read_w = 0.0;
    double a = 0.0;
    double b = 0.0;
};

/// The backward of read i for lane `lane` of `lanes` (CPU: pileup_detail::backward_reads). Tables
/// [256] in double: qweight (null: no quality weights), qvalue, qa and qb (null: no ∂/∂a, ∂/∂b).
/// gt [L × 8] is the table's adjoint. Adds ∂L/∂g_m and ∂L/∂soft_m of the lane's bases (null: not
/// wanted); returns the lane's parts of ∂L/∂ρ_i, ∂L/∂a, ∂L/∂b.
template <class T>
DIFFBIO_HD ReadGradPartial backward_read(const ReadArgs<T>& a, const double* qweight, const double* qvalue, const double* qa,
                                         const double* qb, const T* gt, T* g_gates, T* g_soft, std::size_t i, unsigned lane,
                                         unsigned lanes) {
    ReadGradPartial out;
    if (!read_in_region(a, i)) return out;
    const AlignedBatchView& b = a.batch;
    const double rw = a.read_w != nullptr ? static_cast<double>(a.read_w[i]) : 1.0;
    walk_read(
        a, i, lane, lanes,
        [&](std::size_t p, std::size_t m) {
            const T* g = gt + p * stride;
            const std::uint8_t qc = b.qualities[m];
            const double gate = a.gates != nullptr ? static_cast<double>(a.gates[m]) : 1.0;
            const double qw = qweight != nullptr ? qweight[qc] : 1.0;
            double gw = static_cast<double>(g[ch_cov]) + qvalue[qc] * static_cast<double>(g[ch_qsum]);
            if (a.soft != nullptr) {
                const T* s = a.soft + m * 4;
                gw += static_cast<double>(s[0]) * static_cast<double>(g[0]) + static_cast<double>(s[1]) * static_cast<double>(g[1]) +
                      static_cast<double>(s[2]) * static_cast<double>(g[2]) + static_cast<double>(s[3]) * static_cast<double>(g[3]);
                if (g_soft != nullptr) {
                    const double w = rw * gate * qw;
                    T* gs = g_soft + m * 4;
                    for (std::size_t ch = 0; ch < 4; ++ch) gs[ch] += static_cast<T>(w * static_cast<double>(g[ch]));
                }
            } else {
                const std::uint8_t code = b.bases[m];
                if (code < 4) {
                    gw += static_cast<double>(g[code]);
                } else if (a.n_uniform) {
                    gw += 0.25 * (static_cast<double>(g[0]) + static_cast<double>(g[1]) + static_cast<double>(g[2]) +
                                  static_cast<double>(g[3]));
                }
            }
            out.read_w += gw * gate * qw;
            if (g_gates != nullptr) g_gates[m] += static_cast<T>(gw * rw * qw);
            if (qa != nullptr) {
                const double gq = gw * rw * gate;
                out.a += gq * qa[qc];
                out.b += gq * qb[qc];
            }
        },
        [&](std::size_t p) { out.read_w += static_cast<double>(gt[p * stride + ch_del]); },
        [&](std::size_t p) { out.read_w += static_cast<double>(gt[p * stride + ch_ins]); });
    return out;
}

__device__ inline double warp_sum(double v) {
    for (unsigned off = warp / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/// Fills the block's shared tables q(Q) [256] (when wanted) and Q [256] in T.
template <class T>
__device__ void fill_forward_tables(bool use_q, T a, T b, double missing, T* qweight, T* qvalue) {
    for (unsigned k = threadIdx.x; k < 256u; k += blockDim.x) {
        qvalue[k] = quality_value<T>(k, missing);
        if (use_q) qweight[k] = quality_weight<T>(a, b, qvalue[k]);
    }
    __syncthreads();
}

template <class T>
__global__ void forward(ReadArgs<T> args, bool use_q, T qa, T qb, double missing, T* __restrict__ table) {
    __shared__ T s_qweight[256];
    __shared__ T s_qvalue[256];
    fill_forward_tables<T>(use_q, qa, qb, missing, s_qweight, s_qvalue);
    const unsigned lane = threadIdx.x % warp;
    const std::size_t warps_per_block = blockDim.x / warp;
    const std::size_t n = args.batch.num_reads;
    for (std::size_t i = blockIdx.x * warps_per_block + threadIdx.x / warp; i < n; i += gridDim.x * warps_per_block) {
        forward_read<T>(args, use_q ? s_qweight : nullptr, s_qvalue, i, lane, warp, table);
    }
}

template <class T>
__global__ void finish(std::size_t L, bool hard, bool n_uniform, double eps, bool softmax, double temperature, T* __restrict__ table,
                       T* __restrict__ frequencies, T* __restrict__ mean_quality) {
    for (std::size_t p = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; p < L;
         p += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        finish_position<T>(p, hard, n_uniform, eps, softmax, temperature, table, frequencies, mean_quality);
    }
}

template <class T>
__global__ void table_adjoint(std::size_t L, const T* __restrict__ table, PileupDeviceOutputGrads<T> g, double eps, bool softmax,
                              double temperature, T* __restrict__ gt) {
    for (std::size_t p = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; p < L;
         p += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        table_adjoint_position<T>(p, table, g, eps, softmax, temperature, gt);
    }
}

/// ∂L/∂ρ_i per read (warp sum, lane 0 writes), ∂L/∂g, ∂L/∂soft per base, and (when ab is not
/// null) Σ ∂L/∂a, Σ ∂L/∂b added into ab[0], ab[1] with one double atomicAdd per block.
/// blockDim.x must be a multiple of 32 and at most 1024.
template <class T>
__global__ void backward(ReadArgs<T> args, bool use_q, double qa_value, double qb_value, double missing, const T* __restrict__ gt,
                         T* __restrict__ g_read_w, T* __restrict__ g_gates, T* __restrict__ g_soft, double* __restrict__ ab) {
    __shared__ double s_qweight[256];
    __shared__ double s_qvalue[256];
    __shared__ double s_da[256];
    __shared__ double s_db[256];
    for (unsigned k = threadIdx.x; k < 256u; k += blockDim.x) {
        s_qvalue[k] = quality_value<double>(k, missing);
        quality_derivatives(qa_value, qb_value, s_qvalue[k], s_qweight[k], s_da[k], s_db[k]);
    }
    __syncthreads();
    const bool want_ab = use_q && ab != nullptr;
    const unsigned lane = threadIdx.x % warp;
    const std::size_t warps_per_block = blockDim.x / warp;
    const std::size_t n = args.batch.num_reads;
    double acc_a = 0.0, acc_b = 0.0;
    for (std::size_t i = blockIdx.x * warps_per_block + threadIdx.x / warp; i < n; i += gridDim.x * warps_per_block) {
        const ReadGradPartial part = backward_read<T>(args, use_q ? s_qweight : nullptr, s_qvalue, want_ab ? s_da : nullptr,
                                                      s_db, gt, g_gates, g_soft, i, lane, warp);
        acc_a += part.a;
        acc_b += part.b;
        const double total = warp_sum(part.read_w); // every lane of the warp is on the same read
        if (lane == 0 && g_read_w != nullptr) g_read_w[i] += static_cast<T>(total);
    }
    if (!want_ab) return; // uniform across the grid
    __shared__ double s_a[32];
    __shared__ double s_b[32];
    acc_a = warp_sum(acc_a);
    acc_b = warp_sum(acc_b);
    if (lane == 0) {
        s_a[threadIdx.x / warp] = acc_a;
        s_b[threadIdx.x / warp] = acc_b;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double ta = 0.0, tb = 0.0;
        for (unsigned w = 0; w < blockDim.x / warp; ++w) {
            ta += s_a[w];
            tb += s_b[w];
        }
        atomicAdd(ab, ta);
        atomicAdd(ab + 1, tb);
    }
}

} // namespace pileup_kernels

namespace pileup_cuda_detail {

/// A stream-ordered device allocation of n T (cudaMallocAsync / cudaFreeAsync on p.stream).
template <class T>
class StreamScratch {
public:
    StreamScratch(const exec::Cuda& p, std::size_t n) : stream_(p.stream) {
        if (n > 0) exec::cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&data_), n * sizeof(T), stream_), "cudaMallocAsync");
    }
    StreamScratch(const StreamScratch&) = delete;
    StreamScratch& operator=(const StreamScratch&) = delete;
    ~StreamScratch() {
        if (data_ != nullptr) (void)cudaFreeAsync(data_, stream_);
    }
    T* data() const noexcept { return data_; }

private:
    cudaStream_t stream_;
    T* data_ = nullptr;
};

inline void check_region(const PileupRegion& region, const char* where) {
    if (region.contig < 0 || region.start < 0 || region.end <= region.start) {
        throw InvalidArgument(std::string(where) + ": region [" + std::to_string(region.start) + ", " + std::to_string(region.end) +
                              ") of contig " + std::to_string(region.contig) + " is not a non-empty range of a contig");
    }
}

template <class T>
pileup_kernels::ReadArgs<T> read_args(const PileupConfig& cfg, const AlignedBatchView& batch, const PileupRegion& region,
                                      const PileupDeviceInputs<T>& in) {
    pileup_kernels::ReadArgs<T> a;
    a.batch = batch;
    a.contig = region.contig;
    a.start = region.start;
    a.end = region.end;
    a.read_w = in.read_weights;
    a.gates = in.gates;
    a.soft = in.soft_bases;
    a.n_uniform = cfg.n_as_uniform;
    return a;
}

} // namespace pileup_cuda_detail

/// Forward on device data: the table [L × 8], and frequencies [L × 4] / mean quality [L] when their
/// pointers are set, for quality transform (a, b) = (quality_scale, quality_offset) (used in T, as
/// the CPU operator's float/double path; ignored without cfg.use_quality_weights). The region is
/// not checked against the contig's length (positions past its end stay 0). Asynchronous on
/// p.stream. Throws InvalidArgument for a bad config or an empty region, or a null table.
template <class T>
void pileup_forward(const exec::Cuda& p, const PileupConfig& cfg, double quality_scale, double quality_offset,
                    const AlignedBatchView& batch, const PileupRegion& region, const PileupDeviceInputs<T>& in,
                    const PileupDeviceOutputs<T>& out) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "pileup (CUDA): T is float or double");
    constexpr const char* where = "pileup_forward (CUDA)";
    cfg.validate();
    check_finite(quality_scale, where, "quality_scale");
    check_finite(quality_offset, where, "quality_offset");
    pileup_cuda_detail::check_region(region, where);
    if (out.table == nullptr) throw InvalidArgument(std::string(where) + ": the output table is required");
    const std::size_t L = region.length();
    exec::cuda::check(cudaMemsetAsync(out.table, 0, L * pileup_kernels::stride * sizeof(T), p.stream), "cudaMemsetAsync");
    if (batch.num_reads > 0) {
        const auto args = pileup_cuda_detail::read_args<T>(cfg, batch, region, in);
        pileup_kernels::forward<T><<<exec::cuda::grid_size(batch.num_reads * pileup_kernels::warp), exec::cuda::block_size, 0, p.stream>>>(
            args, cfg.use_quality_weights, static_cast<T>(quality_scale), static_cast<T>(quality_offset), cfg.missing_quality, out.table);
        exec::cuda::check_launch("pileup forward");
    }
    pileup_kernels::finish<T><<<exec::cuda::grid_size(L), exec::cuda::block_size, 0, p.stream>>>(
        L, in.soft_bases == nullptr, cfg.n_as_uniform, cfg.eps, cfg.apply_softmax, cfg.temperature, out.table, out.frequencies,
        out.mean_quality);
    exec::cuda::check_launch("pileup finish");
}

/// Backward on device data (the CPU Var path's gradients): from the adjoints `gy` of the forward's
/// outputs, ACCUMULATES the inputs' gradients into `gx` (device, each may be null) and, when
/// quality_grads (a HOST pointer to 2 doubles) is given and cfg.use_quality_weights, adds ∂L/∂a and
/// ∂L/∂b into quality_grads[0], [1] (synchronises p.stream); otherwise asynchronous. `table` is the
/// forward's table (device), needed when gy.frequencies or gy.mean_quality is set. `in` must be the
/// forward's inputs. Scratch: L × 8 T, stream-ordered.
template <class T>
void pileup_backward(const exec::Cuda& p, const PileupConfig& cfg, double quality_scale, double quality_offset,
                     const AlignedBatchView& batch, const PileupRegion& region, const PileupDeviceInputs<T>& in, const T* table,
                     const PileupDeviceOutputGrads<T>& gy, const PileupDeviceInputGrads<T>& gx, double* quality_grads) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "pileup (CUDA): T is float or double");
    constexpr const char* where = "pileup_backward (CUDA)";
    cfg.validate();
    check_finite(quality_scale, where, "quality_scale");
    check_finite(quality_offset, where, "quality_offset");
    pileup_cuda_detail::check_region(region, where);
    if ((gy.frequencies != nullptr || gy.mean_quality != nullptr) && table == nullptr) {
        throw InvalidArgument(std::string(where) + ": the adjoints of frequencies and mean quality need the forward table");
    }
    if (gx.soft_bases != nullptr && in.soft_bases == nullptr) {
        throw InvalidArgument(std::string(where) + ": a soft-base gradient needs the soft bases of the forward");
    }
    const std::size_t L = region.length();
    const bool want_ab = quality_grads != nullptr && cfg.use_quality_weights;
    if (batch.num_reads == 0) return; // every gradient is 0
    pileup_cuda_detail::StreamScratch<T> gt(p, L * pileup_kernels::stride);
    pileup_kernels::table_adjoint<T><<<exec::cuda::grid_size(L), exec::cuda::block_size, 0, p.stream>>>(
        L, table, gy, cfg.eps, cfg.apply_softmax, cfg.temperature, gt.data());
    exec::cuda::check_launch("pileup table adjoint");
    pileup_cuda_detail::StreamScratch<double> ab(p, want_ab ? 2 : 0);
    if (want_ab) exec::cuda::check(cudaMemsetAsync(ab.data(), 0, 2 * sizeof(double), p.stream), "cudaMemsetAsync");
    {
        const auto args = pileup_cuda_detail::read_args<T>(cfg, batch, region, in);
        pileup_kernels::backward<T><<<exec::cuda::grid_size(batch.num_reads * pileup_kernels::warp), exec::cuda::block_size, 0, p.stream>>>(
            args, cfg.use_quality_weights, quality_scale, quality_offset, cfg.missing_quality, gt.data(), gx.read_weights, gx.gates,
            gx.soft_bases, want_ab ? ab.data() : nullptr);
        exec::cuda::check_launch("pileup backward");
    }
    if (want_ab) {
        double host[2] = {0.0, 0.0};
        exec::cuda::check(cudaMemcpyAsync(host, ab.data(), 2 * sizeof(double), cudaMemcpyDeviceToHost, p.stream), "cudaMemcpyAsync D2H");
        exec::cuda::check(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize");
        quality_grads[0] += host[0];
        quality_grads[1] += host[1];
    }
}

/// An AlignedBatch on the device (its reads' positions, flags, CIGARs, bases and qualities), with
/// its contig table kept on the host for validation. Upload once, run many regions.
class DeviceAlignedBatch {
public:
    DeviceAlignedBatch() = default;
    /// Copies `b` to the device on p.stream and synchronises. Throws ShapeError when the batch's
    /// arrays disagree in length.
    DeviceAlignedBatch(const exec::Cuda& p, const AlignedBatch& b) : contigs_(b.contigs) {
        const std::size_t n = b.num_reads();
        if (b.ref_start.size() != n || b.ref_end.size() != n || b.flags.size() != n || b.base_offset.size() != n + 1 ||
            b.cigar_offset.size() != n + 1 || b.qualities.size() != b.num_bases() ||
            (n > 0 && (b.base_offset[n] != b.num_bases() || b.cigar_offset[n] != b.cigar.size()))) {
            throw ShapeError("DeviceAlignedBatch: the AlignedBatch's arrays disagree in length");
        }
        contig_ = exec::cuda::upload(p, std::span<const std::int32_t>(b.contig));
        ref_start_ = exec::cuda::upload(p, std::span<const std::int64_t>(b.ref_start));
        ref_end_ = exec::cuda::upload(p, std::span<const std::int64_t>(b.ref_end));
        flags_ = exec::cuda::upload(p, std::span<const std::uint16_t>(b.flags));
        base_offset_ = exec::cuda::upload(p, std::span<const std::size_t>(b.base_offset));
        cigar_offset_ = exec::cuda::upload(p, std::span<const std::size_t>(b.cigar_offset));
        cigar_ = exec::cuda::upload(p, std::span<const std::uint32_t>(b.cigar));
        bases_ = exec::cuda::upload(p, std::span<const std::uint8_t>(b.bases));
        qualities_ = exec::cuda::upload(p, std::span<const std::uint8_t>(b.qualities));
        exec::cuda::check(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize");
        num_reads_ = n;
        num_bases_ = b.num_bases();
    }

    std::size_t num_reads() const noexcept { return num_reads_; }
    std::size_t num_bases() const noexcept { return num_bases_; }
    const std::vector<ContigInfo>& contigs() const noexcept { return contigs_; }

    AlignedBatchView view() const noexcept {
        AlignedBatchView v;
        v.num_reads = num_reads_;
        v.num_bases = num_bases_;
        v.contig = contig_.data();
        v.ref_start = ref_start_.data();
        v.ref_end = ref_end_.data();
        v.flags = flags_.data();
        v.base_offset = base_offset_.data();
        v.cigar_offset = cigar_offset_.data();
        v.cigar = cigar_.data();
        v.bases = bases_.data();
        v.qualities = qualities_.data();
        return v;
    }

private:
    std::vector<ContigInfo> contigs_;
    std::size_t num_reads_ = 0;
    std::size_t num_bases_ = 0;
    exec::cuda::DeviceBuffer<std::int32_t> contig_;
    exec::cuda::DeviceBuffer<std::int64_t> ref_start_, ref_end_;
    exec::cuda::DeviceBuffer<std::uint16_t> flags_;
    exec::cuda::DeviceBuffer<std::size_t> base_offset_, cigar_offset_;
    exec::cuda::DeviceBuffer<std::uint32_t> cigar_;
    exec::cuda::DeviceBuffer<std::uint8_t> bases_, qualities_;
};

/// Adjoints of a PileupResult's fields (host data, each [L] or [L × 4], table [L × 8]); an empty
/// span means zero.
template <class T>
struct PileupOutputGrads {
    std::span<const T> counts;
    std::span<const T> coverage;
    std::span<const T> quality_sum;
    std::span<const T> deletions;
    std::span<const T> insertions;
    std::span<const T> frequencies;
    std::span<const T> mean_quality;
    std::span<const T> table;
};

/// Gradients of the upstream inputs (each empty when that input was empty).
template <class T>
struct PileupInputGrads {
    std::vector<T> read_weights; ///< [N]
    std::vector<T> gates;        ///< [M]
    std::vector<T> soft_bases;   ///< [M × 4]
};

namespace pileup_cuda_detail {

/// The CPU operator's validation of the region and the inputs (sizes and finite values).
template <class T>
void validate_host(const std::vector<ContigInfo>& contigs, std::size_t n, std::size_t m, const PileupRegion& region,
                   const PileupInputs<T, T, T>& in, const char* where) {
    pileup_detail::validate_region_and_inputs(contigs, n, m, region, in, where);
}

/// The host inputs on the device (empty spans stay null).
template <class T>
struct UploadedInputs {
    exec::cuda::DeviceBuffer<T> read_weights, gates, soft_bases;
    PileupDeviceInputs<T> view() const {
        PileupDeviceInputs<T> v;
        if (read_weights.size() > 0) v.read_weights = read_weights.data();
        if (gates.size() > 0) v.gates = gates.data();
        if (soft_bases.size() > 0) v.soft_bases = soft_bases.data();
        return v;
    }
};
template <class T>
UploadedInputs<T> upload_inputs(const exec::Cuda& p, const PileupInputs<T, T, T>& in) {
    UploadedInputs<T> u;
    u.read_weights = exec::cuda::upload(p, in.read_weights);
    u.gates = exec::cuda::upload(p, in.gates);
    u.soft_bases = exec::cuda::upload(p, in.soft_bases);
    return u;
}

} // namespace pileup_cuda_detail

/// One-call forward: op.apply(bind, batch, region, in) for T = float or double (the operator's
/// current a and b), computed on the GPU from a batch already on the device. Synchronous.
template <class T>
PileupResult<T> pileup_forward(const exec::Cuda& p, const DifferentiablePileup& op, const DeviceAlignedBatch& batch,
                               const PileupRegion& region, const PileupInputs<T, T, T>& in = {}) {
    namespace d = pileup_cuda_detail;
    d::validate_host(batch.contigs(), batch.num_reads(), batch.num_bases(), region, in, "pileup_forward (CUDA)");
    const auto up = d::upload_inputs(p, in);
    const std::size_t L = region.length();
    exec::cuda::DeviceBuffer<T> table(L * pileup_kernels::stride), freq(L * 4), mq(L);
    pileup_forward<T>(p, op.config(), op.quality_scale().values()[0], op.quality_offset().values()[0], batch.view(), region, up.view(),
                      PileupDeviceOutputs<T>{table.data(), freq.data(), mq.data()});
    PileupResult<T> res;
    res.region = region;
    res.table = exec::cuda::download(p, table);
    res.frequencies = exec::cuda::download(p, freq);
    res.mean_quality = exec::cuda::download(p, mq);
    res.counts.resize(4 * L);
    res.coverage.resize(L);
    res.quality_sum.resize(L);
    res.deletions.resize(L);
    res.insertions.resize(L);
    for (std::size_t q = 0; q < L; ++q) {
        const T* o = res.table.data() + q * pileup_kernels::stride;
        for (std::size_t k = 0; k < 4; ++k) res.counts[4 * q + k] = o[k];
        res.coverage[q] = o[pileup_kernels::ch_cov];
        res.quality_sum[q] = o[pileup_kernels::ch_qsum];
        res.deletions[q] = o[pileup_kernels::ch_del];
        res.insertions[q] = o[pileup_kernels::ch_ins];
    }
    return res;
}

/// As above, uploading the host batch first.
template <class T>
PileupResult<T> pileup_forward(const exec::Cuda& p, const DifferentiablePileup& op, const AlignedBatch& batch,
                               const PileupRegion& region, const PileupInputs<T, T, T>& in = {}) {
    pileup_cuda_detail::validate_host(batch.contigs, batch.num_reads(), batch.num_bases(), region, in, "pileup_forward (CUDA)");
    return pileup_forward<T>(p, op, DeviceAlignedBatch(p, batch), region, in);
}

/// One-call backward: the gradients the CPU Var path gives for loss L with ∂L/∂(result fields) =
/// `grad`, at the forward `result` of the same op, batch, region and inputs. Returns the inputs'
/// gradients and adds ∂L/∂a, ∂L/∂b into op.quality_scale().grad()[0], op.quality_offset().grad()[0]
/// (when quality weights are on). Synchronous. Throws ShapeError for adjoints or a result of the
/// wrong size.
template <class T>
PileupInputGrads<T> pileup_backward(const exec::Cuda& p, DifferentiablePileup& op, const DeviceAlignedBatch& batch,
                                    const PileupRegion& region, const PileupInputs<T, T, T>& in, const PileupResult<T>& result,
                                    const PileupOutputGrads<T>& grad) {
    namespace d = pileup_cuda_detail;
    constexpr const char* where = "pileup_backward (CUDA)";
    d::validate_host(batch.contigs(), batch.num_reads(), batch.num_bases(), region, in, where);
    const std::size_t L = region.length();
    check_size(result.table.size(), L * pileup_kernels::stride, where, "result.table (L x 8)");
    const std::pair<std::span<const T>, std::size_t> sizes[] = {
        {grad.counts, 4 * L},    {grad.coverage, L}, {grad.quality_sum, L},  {grad.deletions, L},
        {grad.insertions, L},    {grad.frequencies, 4 * L}, {grad.mean_quality, L}, {grad.table, 8 * L}};
    const char* names[] = {"counts adjoint (L x 4)", "coverage adjoint (L)", "quality_sum adjoint (L)", "deletions adjoint (L)",
                           "insertions adjoint (L)", "frequencies adjoint (L x 4)", "mean_quality adjoint (L)", "table adjoint (L x 8)"};
    for (std::size_t k = 0; k < 8; ++k) {
        if (!sizes[k].first.empty()) check_size(sizes[k].first.size(), sizes[k].second, where, names[k]);
    }
    const auto up = d::upload_inputs(p, in);
    const auto table = exec::cuda::upload(p, std::span<const T>(result.table));
    exec::cuda::DeviceBuffer<T> g[8];
    for (std::size_t k = 0; k < 8; ++k) g[k] = exec::cuda::upload(p, sizes[k].first);
    auto ptr = [&](std::size_t k) -> const T* { return sizes[k].first.empty() ? nullptr : g[k].data(); };
    const PileupDeviceOutputGrads<T> gy{ptr(0), ptr(1), ptr(2), ptr(3), ptr(4), ptr(5), ptr(6), ptr(7)};
    auto g_rw = exec::cuda::zeros<T>(p, in.read_weights.size());
    auto g_gates = exec::cuda::zeros<T>(p, in.gates.size());
    auto g_soft = exec::cuda::zeros<T>(p, in.soft_bases.size());
    const PileupDeviceInputGrads<T> gx{in.read_weights.empty() ? nullptr : g_rw.data(), in.gates.empty() ? nullptr : g_gates.data(),
                                       in.soft_bases.empty() ? nullptr : g_soft.data()};
    double ab[2] = {0.0, 0.0};
    pileup_backward<T>(p, op.config(), op.quality_scale().values()[0], op.quality_offset().values()[0], batch.view(), region,
                       up.view(), table.data(), gy, gx, ab);
    PileupInputGrads<T> out;
    out.read_weights = exec::cuda::download(p, g_rw);
    out.gates = exec::cuda::download(p, g_gates);
    out.soft_bases = exec::cuda::download(p, g_soft);
    if (op.config().use_quality_weights) {
        op.quality_scale().grad()[0] += ab[0];
        op.quality_offset().grad()[0] += ab[1];
    }
    return out;
}

/// As above, uploading the host batch first.
template <class T>
PileupInputGrads<T> pileup_backward(const exec::Cuda& p, DifferentiablePileup& op, const AlignedBatch& batch,
                                    const PileupRegion& region, const PileupInputs<T, T, T>& in, const PileupResult<T>& result,
                                    const PileupOutputGrads<T>& grad) {
    pileup_cuda_detail::validate_host(batch.contigs, batch.num_reads(), batch.num_bases(), region, in, "pileup_backward (CUDA)");
    return pileup_backward<T>(p, op, DeviceAlignedBatch(p, batch), region, in, result, grad);
}

} // namespace diffbio::ops::cuda
