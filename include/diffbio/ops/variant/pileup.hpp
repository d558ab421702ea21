#pragma once
// DifferentiablePileup: per reference position, weighted counts of the bases that aligned reads
// put there (the differentiable samtools mpileup).
//
// For a region [start, end) of one contig (L = end − start positions) and an AlignedBatch
// (core/aligned_batch.hpp), each aligned base m of read i (CIGAR M, = or X) at reference
// position p carries the weight
//
//   w_m = ρ_i · g_m · q(Q_m)          q(Q) = max(0, 1 − 10^{−(a·Q + b)/10})
//
// ρ_i: upstream read weights (e.g. duplicate weighting), g_m: per-base gates (e.g. a quality
// filter), a, b: the learnable quality transform (Parameters "pileup_quality_scale" = 1 and
// "pileup_quality_offset" = 0, so q is the probability that the base call is right). With
// use_quality_weights = false, q = 1. The outputs, segment sums over p:
//
//   counts[p, c]     Σ w_m · x_m[c]       x_m: one-hot of the base (or soft bases [M × 4] from
//                                          upstream); an N base adds nothing (or 1/4 to each
//                                          channel with n_as_uniform)
//   coverage[p]      Σ w_m                 over aligned bases (N included, deletions not)
//   quality_sum[p]   Σ w_m · Q_m
//   deletions[p]     Σ ρ_i                 reads with a deletion (CIGAR D) over p
//   insertions[p]    Σ ρ_i                 insertion events (CIGAR I) anchored after p
//   frequencies[p,c] counts[p,c] / max(Σ_c counts[p,c], eps); 0 on uncovered positions;
//                    with apply_softmax, softmax_c(frequencies/T) instead (DiffBio's default,
//                    which flattens a pure column to 0.475; here an option, off by default)
//   mean_quality[p]  quality_sum[p] / max(coverage[p], eps)
//
// Reads that are unmapped (flag 0x4), on another contig, or outside the region add nothing;
// reads overlapping the region's ends add their bases inside it. Soft clips, hard clips,
// padding and reference skips (N) add nothing. A missing quality (255) counts as
// config.missing_quality. With ρ = g = 1 and use_quality_weights = false, counts and
// deletions and insertions are the integer counts of `samtools mpileup -B -Q 0 -q 0 -A --ff 0`
// (tests/io/test_pileup_samtools.cpp checks every position).
//
// Scalars: any mix of plain (float/double) and one AD type (Dual or Var) for the parameters
// (Binder<T>), read weights, gates and soft bases; the result has their promoted type. For Var
// the segment sums are ONE tape node whose backward scatters adjoints to a, b, ρ, g and the soft
// bases; frequencies and mean quality are a second fused node of O(L) on its outputs (the
// softmax option adds ordinary tape operations). An N base's weight counts in coverage only.
// insertions: an insertion is anchored at the reference position before it, as samtools shows
// "+n" after that base; one before any aligned or deleted position of its read is not counted.
// apply() returns a fresh PileupResult; apply_into() refills one and reuses its buffers (no
// allocation once grown). result.table is the kernel's own [L × 8] layout (A C G T coverage
// quality_sum deletions insertions per position), one cache line per position in float.
// Backends: exec::Cpu; exec::CpuParallel splits the region into one block of positions per
// thread (each thread visits the reads overlapping its block, in batch order), so the forward
// sums are bitwise identical to Cpu; the Var backward runs in parallel over reads (a, b
// reduced in thread order: deterministic for a fixed thread count).
// O(N·threads + aligned bases in the region + L).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/soft/detail/ad_operand.hpp>

namespace diffbio::ops {

struct PileupConfig {
    bool use_quality_weights = true;
    double quality_scale = 1.0;  ///< initial a
    double quality_offset = 0.0; ///< initial b
    double missing_quality = 30.0; ///< Phred score used for bases without quality (255)
    bool n_as_uniform = false;   ///< N bases add 1/4 to each base channel (else nothing)
    bool apply_softmax = false;  ///< frequencies ← softmax(frequencies / temperature)
    double temperature = 1.0;
    double eps = 1e-8;           ///< floor of the normalising denominators
    void validate() const {
        check_finite(quality_scale, "PileupConfig", "quality_scale");
        check_finite(quality_offset, "PileupConfig", "quality_offset");
        check_finite(missing_quality, "PileupConfig", "missing_quality");
        if (missing_quality < 0.0) throw InvalidArgument("PileupConfig: missing_quality must be >= 0");
        check_temperature(temperature, "PileupConfig", "temperature");
        check_temperature(eps, "PileupConfig", "eps");
    }
};

/// Reference positions [start, end) (0-based) of contig `contig` (an index into the batch's contigs).
struct PileupRegion {
    std::int32_t contig = 0;
    std::int64_t start = 0;
    std::int64_t end = 0;
    std::size_t length() const noexcept { return end > start ? static_cast<std::size_t>(end - start) : 0; }
};

/// Optional upstream inputs; empty spans mean "all 1" (weights, gates) or "the batch's bases".
template <class RW = double, class G = double, class B = double>
struct PileupInputs {
    std::span<const RW> read_weights; ///< [N]
    std::span<const G> gates;         ///< [M] per base of the batch (all query bases)
    std::span<const B> soft_bases;    ///< [M × 4]
};

template <class R>
struct PileupResult {
    PileupRegion region;
    std::vector<R> counts;       ///< [L × 4]
    std::vector<R> coverage;     ///< [L]
    std::vector<R> quality_sum;  ///< [L]
    std::vector<R> deletions;    ///< [L]
    std::vector<R> insertions;   ///< [L]
    std::vector<R> frequencies;  ///< [L × 4]
    std::vector<R> mean_quality; ///< [L]
    /// [L × 8] the segment sums interleaved per position: A C G T coverage quality_sum deletions
    /// insertions (the kernel's own layout; counts etc. above are copies of its columns).
    std::vector<R> table;
    std::size_t length() const noexcept { return region.length(); }
};

namespace pileup_detail {

inline constexpr double ln10_over_10 = 0.23025850929940456840;

/// Pointers to the per-call arrays of the kernel, all in the computation scalar C.
template <class C>
struct Sources {
    const C* qweight = nullptr; ///< [256] q(Q) per quality value, or null (q = 1)
    const C* qvalue = nullptr;  ///< [256] Q as a number (255 → missing_quality)
    const C* read_w = nullptr;  ///< [N] or null
    const C* gates = nullptr;   ///< [M] or null
    const C* soft = nullptr;    ///< [M × 4] or null
};

inline bool is_aligned_op(CigarOp op) noexcept {
    return op == CigarOp::Match || op == CigarOp::SeqMatch || op == CigarOp::SeqMismatch;
}

/// The reads that can touch positions [lo, hi): mapped, on the region's contig, overlapping
/// it (ref_end ≥ lo also keeps a read whose trailing insertion is anchored at lo).
inline bool read_in_region(const AlignedBatch& b, std::size_t i, const PileupRegion& reg, std::int64_t lo,
                           std::int64_t hi) noexcept {
    if ((b.flags[i] & sam_flag::unmapped) != 0 || b.contig[i] != reg.contig) return false;
    return b.ref_end[i] >= lo && b.ref_start[i] < hi;
}

/// Slot of a base code in a position's row: 0..3 for A C G T, 4 for anything else (so that a
/// stray code in a hand-filled batch counts as N instead of writing out of the row).
inline constexpr auto slot_of_code = [] {
    std::array<std::uint8_t, 256> t{};
    for (std::size_t k = 0; k < 256; ++k) t[k] = static_cast<std::uint8_t>(k < 4 ? k : 4);
    return t;
}();

/// Channels of one position in the kernel's output block [L × 8] (interleaved, so that a base
/// touches one cache line): A C G T coverage quality_sum deletions insertions.
inline constexpr std::size_t stride = 8;
inline constexpr std::size_t ch_cov = 4, ch_qsum = 5, ch_del = 6, ch_ins = 7;

/// Forward segment sums for absolute positions [lo, hi) ⊆ [reg.start, reg.end) into out
/// ([L × 8], region-relative, zeroed by the caller). Reads in batch order. The flags are the
/// loop-invariant choices, resolved at compile time.
template <class C, bool NUniform, bool HasG, bool HasQ, bool HasS>
void forward_range(const AlignedBatch& b, const PileupRegion& reg, std::int64_t lo, std::int64_t hi,
                   const Sources<C>& src, C* out) {
    const std::uint8_t* codes = b.bases.data();
    const std::uint8_t* quals = b.qualities.data();
    const C* qweight = src.qweight;
    const C* qvalue = src.qvalue;
    const C* gates = src.gates;
    const C* soft = src.soft;
    const std::size_t n = b.num_reads();
    for (std::size_t i = 0; i < n; ++i) {
        if (!read_in_region(b, i, reg, lo, hi)) continue;
        const C rw = src.read_w != nullptr ? src.read_w[i] : C(1);
        bool anchored = false; // an aligned or deleted position precedes (insertions need an anchor)
        b.for_each_block(i, [&](const AlignedBlock& blk) {
            const std::int64_t bs = blk.ref_start, be = blk.ref_start + static_cast<std::int64_t>(blk.length);
            if (is_aligned_op(blk.op)) {
                anchored = true;
                const std::int64_t r0 = std::max(bs, lo), r1 = std::min(be, hi);
                if (r1 <= r0) return;
                const std::size_t m0 = blk.query_start + static_cast<std::size_t>(r0 - bs);
                const auto count = static_cast<std::size_t>(r1 - r0);
                C* o = out + static_cast<std::size_t>(r0 - reg.start) * stride;
                for (std::size_t k = 0; k < count; ++k, o += stride) {
                    const std::size_t m = m0 + k;
                    const std::uint8_t q = quals[m];
                    C w = rw;
                    if constexpr (HasG) w = w * gates[m];
                    if constexpr (HasQ) w = w * qweight[q];
                    if constexpr (HasS) {
                        const C* sm = soft + m * 4;
                        o[0] += w * sm[0];
                        o[1] += w * sm[1];
                        o[2] += w * sm[2];
                        o[3] += w * sm[3];
                        o[ch_cov] += w;
                    } else {
                        // Hard bases: code 4 (N) lands in the coverage slot, which finish_range
                        // turns into the coverage (one read-modify-write per base, no branch).
                        o[slot_of_code[codes[m]]] += w;
                    }
                    o[ch_qsum] += w * qvalue[q];
                }
            } else if (blk.op == CigarOp::Deletion) {
                anchored = true;
                const std::int64_t r0 = std::max(bs, lo), r1 = std::min(be, hi);
                for (std::int64_t r = r0; r < r1; ++r) out[static_cast<std::size_t>(r - reg.start) * stride + ch_del] += rw;
            } else if (blk.op == CigarOp::Insertion) {
                const std::int64_t anchor = bs - 1;
                if (anchored && anchor >= lo && anchor < hi) {
                    out[static_cast<std::size_t>(anchor - reg.start) * stride + ch_ins] += rw;
                }
            } else if (blk.op == CigarOp::RefSkip) {
                anchored = true;
            }
        });
    }
}

/// After forward_range with hard bases: slot 4 of each position in [lo, hi) holds the weight
/// of its N bases; make it the coverage (A + C + G + T + N) and, with NUniform, spread the N
/// weight over the four channels.
template <class C, bool NUniform>
void finish_range(const PileupRegion& reg, std::int64_t lo, std::int64_t hi, C* out) {
    C* o = out + static_cast<std::size_t>(lo - reg.start) * stride;
    for (std::int64_t r = lo; r < hi; ++r, o += stride) {
        const C nw = o[ch_cov];
        o[ch_cov] = o[0] + o[1] + o[2] + o[3] + nw;
        if constexpr (NUniform) {
            const C quarter = nw * C(0.25);
            o[0] += quarter;
            o[1] += quarter;
            o[2] += quarter;
            o[3] += quarter;
        }
    }
}

template <class C, bool NUniform, bool HasG, bool HasQ>
void forward_dispatch_s(const AlignedBatch& b, const PileupRegion& reg, std::int64_t lo, std::int64_t hi,
                        const Sources<C>& src, C* out) {
    if (src.soft != nullptr) {
        forward_range<C, NUniform, HasG, HasQ, true>(b, reg, lo, hi, src, out);
    } else {
        forward_range<C, NUniform, HasG, HasQ, false>(b, reg, lo, hi, src, out);
        finish_range<C, NUniform>(reg, lo, hi, out);
    }
}
template <class C, bool NUniform, bool HasG>
void forward_dispatch_q(const AlignedBatch& b, const PileupRegion& reg, std::int64_t lo, std::int64_t hi,
                        const Sources<C>& src, C* out) {
    if (src.qweight != nullptr) {
        forward_dispatch_s<C, NUniform, HasG, true>(b, reg, lo, hi, src, out);
    } else {
        forward_dispatch_s<C, NUniform, HasG, false>(b, reg, lo, hi, src, out);
    }
}
template <class C, bool NUniform>
void forward_dispatch_g(const AlignedBatch& b, const PileupRegion& reg, std::int64_t lo, std::int64_t hi,
                        const Sources<C>& src, C* out) {
    if (src.gates != nullptr) {
        forward_dispatch_q<C, NUniform, true>(b, reg, lo, hi, src, out);
    } else {
        forward_dispatch_q<C, NUniform, false>(b, reg, lo, hi, src, out);
    }
}

template <class C, class P>
void forward(const P& policy, const AlignedBatch& b, const PileupRegion& reg, const Sources<C>& src, bool n_uniform,
             C* out) {
    const std::size_t L = reg.length();
    auto run = [&](std::int64_t lo, std::int64_t hi) {
        // Each caller zeroes its own block of positions (first touch by the thread that uses it).
        const auto z0 = static_cast<std::size_t>(lo - reg.start) * stride, z1 = static_cast<std::size_t>(hi - reg.start) * stride;
        for (std::size_t k = z0; k < z1; ++k) out[k] = C(0);
        if (n_uniform) {
            forward_dispatch_g<C, true>(b, reg, lo, hi, src, out);
        } else {
            forward_dispatch_g<C, false>(b, reg, lo, hi, src, out);
        }
    };
    exec::for_each_range(policy, L, [&](std::size_t lo, std::size_t hi) {
        run(reg.start + static_cast<std::int64_t>(lo), reg.start + static_cast<std::int64_t>(hi));
    });
}

/// Backward of forward() on doubles: accumulates into the (possibly null) gradients of a, b
/// (ga, gb: one double each), read weights [N], gates [M], soft bases [M × 4].
struct Grads {
    double* a = nullptr;
    double* b = nullptr;
    double* read_w = nullptr;
    double* gates = nullptr;
    double* soft = nullptr;
};

inline void backward_reads(const AlignedBatch& b, const PileupRegion& reg, std::size_t i0, std::size_t i1,
                           const Sources<double>& src, const double* qa, const double* qb, bool n_uniform,
                           const double* go, const Grads& g, double& acc_a, double& acc_b) {
    const std::uint8_t* codes = b.bases.data();
    const std::uint8_t* quals = b.qualities.data();
    for (std::size_t i = i0; i < i1; ++i) {
        if (!read_in_region(b, i, reg, reg.start, reg.end)) continue;
        const double rw = src.read_w != nullptr ? src.read_w[i] : 1.0;
        double g_rw = 0.0;
        bool anchored = false;
        b.for_each_block(i, [&](const AlignedBlock& blk) {
            const std::int64_t bs = blk.ref_start, be = blk.ref_start + static_cast<std::int64_t>(blk.length);
            if (is_aligned_op(blk.op)) {
                anchored = true;
                const std::int64_t r0 = std::max(bs, reg.start), r1 = std::min(be, reg.end);
                for (std::int64_t r = r0; r < r1; ++r) {
                    const std::size_t m = blk.query_start + static_cast<std::size_t>(r - bs);
                    const auto p = static_cast<std::size_t>(r - reg.start);
                    const std::uint8_t q = quals[m];
                    const double gate = src.gates != nullptr ? src.gates[m] : 1.0;
                    const double qw = src.qweight != nullptr ? src.qweight[q] : 1.0;
                    const double* gc = go + p * stride;
                    double gw = gc[ch_cov] + src.qvalue[q] * gc[ch_qsum];
                    if (src.soft != nullptr) {
                        const double* s = src.soft + m * 4;
                        gw += s[0] * gc[0] + s[1] * gc[1] + s[2] * gc[2] + s[3] * gc[3];
                        if (g.soft != nullptr) {
                            const double w = rw * gate * qw;
                            double* gs = g.soft + m * 4;
                            gs[0] += w * gc[0];
                            gs[1] += w * gc[1];
                            gs[2] += w * gc[2];
                            gs[3] += w * gc[3];
                        }
                    } else {
                        const std::uint8_t code = codes[m];
                        if (code < 4) {
                            gw += gc[code];
                        } else if (n_uniform) {
                            gw += 0.25 * (gc[0] + gc[1] + gc[2] + gc[3]);
                        }
                    }
                    g_rw += gw * gate * qw;
                    if (g.gates != nullptr) g.gates[m] += gw * rw * qw;
                    if (qa != nullptr) {
                        const double gq = gw * rw * gate;
                        acc_a += gq * qa[q];
                        acc_b += gq * qb[q];
                    }
                }
            } else if (blk.op == CigarOp::Deletion) {
                anchored = true;
                const std::int64_t r0 = std::max(bs, reg.start), r1 = std::min(be, reg.end);
                for (std::int64_t r = r0; r < r1; ++r) g_rw += go[static_cast<std::size_t>(r - reg.start) * stride + ch_del];
            } else if (blk.op == CigarOp::Insertion) {
                const std::int64_t anchor = bs - 1;
                if (anchored && anchor >= reg.start && anchor < reg.end) {
                    g_rw += go[static_cast<std::size_t>(anchor - reg.start) * stride + ch_ins];
                }
            } else if (blk.op == CigarOp::RefSkip) {
                anchored = true;
            }
        });
        if (g.read_w != nullptr) g.read_w[i] += g_rw;
    }
}

template <class P>
void backward(const P& policy, const AlignedBatch& b, const PileupRegion& reg, const Sources<double>& src,
              const double* qa, const double* qb, bool n_uniform, const double* go, const Grads& g) {
    const std::size_t n = b.num_reads();
    double acc_a = 0.0, acc_b = 0.0;
    if constexpr (std::is_same_v<P, exec::CpuParallel>) {
        const int threads = exec::thread_count(policy);
        if (threads > 1 && n > 1) {
            std::vector<double> part(2 * static_cast<std::size_t>(threads), 0.0);
            DIFFBIO_OMP(parallel num_threads(threads))
            {
                const exec::Range r = exec::this_thread_range(n);
                const std::size_t t = exec::this_thread_index();
                backward_reads(b, reg, r.lo, r.hi, src, qa, qb, n_uniform, go, g, part[2 * t], part[2 * t + 1]);
            }
            for (int t = 0; t < threads; ++t) {
                acc_a += part[2 * static_cast<std::size_t>(t)];
                acc_b += part[2 * static_cast<std::size_t>(t) + 1];
            }
            if (g.a != nullptr) *g.a += acc_a;
            if (g.b != nullptr) *g.b += acc_b;
            return;
        }
    }
    (void)policy;
    backward_reads(b, reg, 0, n, src, qa, qb, n_uniform, go, g, acc_a, acc_b);
    if (g.a != nullptr) *g.a += acc_a;
    if (g.b != nullptr) *g.b += acc_b;
}

/// C(x) for x of a plain or the same AD type.
template <class C, class X>
C convert(const X& x) {
    if constexpr (std::is_same_v<C, X>) {
        return x;
    } else if constexpr (std::is_arithmetic_v<X>) {
        return passive<C>(static_cast<double>(x));
    } else {
        return C(x);
    }
}

template <class C, class X>
std::vector<C> convert_all(std::span<const X> x) {
    std::vector<C> out(x.size());
    for (std::size_t k = 0; k < x.size(); ++k) out[k] = convert<C>(x[k]);
    return out;
}

/// The region on one of the contigs and inside it (InvalidArgument); the upstream inputs with N, M
/// and M × 4 entries when given (ShapeError) and finite (InvalidArgument). Shared by the CPU and
/// CUDA operators.
template <class RW, class G, class B>
void validate_region_and_inputs(const std::vector<ContigInfo>& contigs, std::size_t n, std::size_t m, const PileupRegion& region,
                                const PileupInputs<RW, G, B>& in, const char* where) {
    if (region.contig < 0 || static_cast<std::size_t>(region.contig) >= contigs.size()) {
        throw InvalidArgument(std::string(where) + ": region contig " + std::to_string(region.contig) + " is not one of the batch's " +
                              std::to_string(contigs.size()) + " contigs");
    }
    const ContigInfo& c = contigs[static_cast<std::size_t>(region.contig)];
    if (region.start < 0 || region.end <= region.start || region.end > c.length) {
        throw InvalidArgument(std::string(where) + ": region [" + std::to_string(region.start) + ", " + std::to_string(region.end) +
                              ") is not a non-empty range inside contig '" + c.name + "' of length " + std::to_string(c.length));
    }
    if (!in.read_weights.empty()) check_size(in.read_weights.size(), n, where, "read_weights (N)");
    if (!in.gates.empty()) check_size(in.gates.size(), m, where, "gates (M bases)");
    if (!in.soft_bases.empty()) check_size(in.soft_bases.size(), m * 4, where, "soft_bases (M x 4)");
    check_all_finite(in.read_weights, where, "read_weights");
    check_all_finite(in.gates, where, "gates");
    check_all_finite(in.soft_bases, where, "soft_bases");
}

} // namespace pileup_detail

/// DiffBio's pileup input as an AlignedBatch: N gapless reads, read n covering reference
/// positions positions[n] .. positions[n] + lengths[n] − 1 of one contig of length
/// reference_length (bases before position 0 become soft clips; bases past the end are cut by
/// the region). Bases are unknown (code 4) and qualities missing (255): pass the reads' (soft)
/// bases as PileupInputs::soft_bases [M × 4], M = Σ lengths in read order, and any quality
/// weighting as gates. O(N + M).
/// Errors: ShapeError when positions and lengths differ in size; InvalidArgument for
/// reference_length <= 0.
inline AlignedBatch gapless_batch(std::int64_t reference_length, std::span<const std::int64_t> positions,
                                  std::span<const std::uint32_t> lengths) {
    if (reference_length <= 0) {
        throw InvalidArgument("gapless_batch: reference_length must be > 0, got " + std::to_string(reference_length));
    }
    check_size(lengths.size(), positions.size(), "gapless_batch", "lengths");
    AlignedBatch b;
    b.contigs = {{"reference", reference_length}};
    std::string seq;
    std::vector<std::uint32_t> ops;
    for (std::size_t i = 0; i < positions.size(); ++i) {
        const std::int64_t p = positions[i];
        const std::uint32_t len = lengths[i];
        const std::int64_t clip64 = p < 0 ? std::min<std::int64_t>(-p, len) : 0;
        const auto clip = static_cast<std::uint32_t>(clip64);
        ops.clear();
        if (clip > 0) ops.push_back(cigar_pack(CigarOp::SoftClip, clip));
        if (len > clip) ops.push_back(cigar_pack(CigarOp::Match, len - clip));
        seq.assign(len, 'N');
        b.add("", 0, p < 0 ? 0 : p, 255, 0, ops, seq, {});
    }
    return b;
}

class DifferentiablePileup {
public:
    explicit DifferentiablePileup(PileupConfig cfg = {})
        : cfg_((cfg.validate(), cfg)), scale_("pileup_quality_scale", cfg.quality_scale),
          offset_("pileup_quality_offset", cfg.quality_offset) {}

    const PileupConfig& config() const noexcept { return cfg_; }
    ad::Parameter& quality_scale() noexcept { return scale_; }
    ad::Parameter& quality_offset() noexcept { return offset_; }
    const ad::Parameter& quality_scale() const noexcept { return scale_; }
    const ad::Parameter& quality_offset() const noexcept { return offset_; }
    /// The learnable parameters (none when quality weights are off).
    std::vector<ad::Parameter*> parameters() {
        if (!cfg_.use_quality_weights) return {};
        return {&scale_, &offset_};
    }

    /// The pileup of `batch` over `region` (see the header comment). For Var the tape node
    /// refers to `batch`: keep it alive (and unchanged) until the tape's backward pass has run.
    /// Errors: InvalidArgument for a region on a contig the batch does not have, or not inside
    /// it (0 <= start < end <= contig length), or for a NaN or ±inf entry of read_weights, gates or
    /// soft_bases; ShapeError when they do not have N, M or M × 4 entries.
    template <class T, class RW, class G, class B, exec::HostPolicy P = exec::Cpu>
    PileupResult<promote_t<T, RW, G, B>> apply(ad::Binder<T>& bind, const AlignedBatch& batch,
                                               const PileupRegion& region, const PileupInputs<RW, G, B>& in,
                                               const P& policy = {}) const {
        PileupResult<promote_t<T, RW, G, B>> res;
        apply_into(bind, batch, region, in, res, policy);
        return res;
    }

    /// As apply, into `res`, whose buffers are reused (no allocation once they have grown: the
    /// form for training loops and streaming over regions).
    template <class T, class RW, class G, class B, exec::HostPolicy P = exec::Cpu>
    void apply_into(ad::Binder<T>& bind, const AlignedBatch& batch, const PileupRegion& region,
                    const PileupInputs<RW, G, B>& in, PileupResult<promote_t<T, RW, G, B>>& res,
                    const P& policy = {}) const {
        using R = promote_t<T, RW, G, B>;
        validate(batch, region, in);
        res.region = region;
        const std::size_t L = region.length();
        res.table.resize(pileup_detail::stride * L);
        if constexpr (soft::detail::is_var_v<R>) {
            run_var<T, RW, G, B>(bind, batch, region, in, policy, res.table);
        } else {
            run_plain<R>(bind, batch, region, in, policy, res.table);
        }
        finish(res.table, res);
    }

    /// Without upstream inputs (all read weights and gates 1, the batch's bases).
    template <class T, exec::HostPolicy P = exec::Cpu>
    PileupResult<T> apply(ad::Binder<T>& bind, const AlignedBatch& batch, const PileupRegion& region,
                          const P& policy = {}) const {
        return apply(bind, batch, region, PileupInputs<T, T, T>{}, policy);
    }

private:
    template <class RW, class G, class B>
    static void validate(const AlignedBatch& batch, const PileupRegion& region, const PileupInputs<RW, G, B>& in) {
        pileup_detail::validate_region_and_inputs(batch.contigs, batch.num_reads(), batch.num_bases(), region, in,
                                                  "DifferentiablePileup");
        if (batch.base_offset.size() != batch.num_reads() + 1 || batch.cigar_offset.size() != batch.num_reads() + 1 ||
            batch.ref_end.size() != batch.num_reads() || batch.flags.size() != batch.num_reads() ||
            batch.qualities.size() != batch.num_bases()) {
            throw ShapeError("DifferentiablePileup: the AlignedBatch's arrays disagree in length");
        }
    }

    /// q(Q) and dq/da, dq/db for every quality value, in double, at (a, b).
    void quality_tables(double a, double b, std::vector<double>& qw, std::vector<double>& da,
                        std::vector<double>& db) const {
        qw.resize(256);
        da.resize(256);
        db.resize(256);
        for (int k = 0; k < 256; ++k) {
            const double Q = qvalue(k);
            const double e = std::pow(10.0, -(a * Q + b) / 10.0);
            const bool on = 1.0 - e > 0.0;
            const auto u = static_cast<std::size_t>(k);
            qw[u] = on ? 1.0 - e : 0.0;
            da[u] = on ? pileup_detail::ln10_over_10 * Q * e : 0.0;
            db[u] = on ? pileup_detail::ln10_over_10 * e : 0.0;
        }
    }

    double qvalue(int k) const noexcept { return k == 255 ? cfg_.missing_quality : static_cast<double>(k); }

    template <class R, class T, class RW, class G, class B, class P>
    void run_plain(ad::Binder<T>& bind, const AlignedBatch& batch, const PileupRegion& region,
                   const PileupInputs<RW, G, B>& in, const P& policy, std::vector<R>& block) const {
        pileup_detail::Sources<R> src;
        std::vector<R> qw, qv(256), rw, gates, soft;
        for (int k = 0; k < 256; ++k) qv[static_cast<std::size_t>(k)] = passive<R>(qvalue(k));
        src.qvalue = qv.data();
        if (cfg_.use_quality_weights) {
            const R a = pileup_detail::convert<R>(bind(scale_)[0]);
            const R b = pileup_detail::convert<R>(bind(offset_)[0]);
            qw.resize(256);
            for (int k = 0; k < 256; ++k) {
                using std::exp;
                const R x = a * qv[static_cast<std::size_t>(k)] + b;
                const R e = exp(-passive<R>(pileup_detail::ln10_over_10) * x);
                qw[static_cast<std::size_t>(k)] = primal(e) < 1.0 ? R(1) - e : passive<R>(0.0);
            }
            src.qweight = qw.data();
        }
        if (!in.read_weights.empty()) {
            rw = pileup_detail::convert_all<R>(in.read_weights);
            src.read_w = rw.data();
        }
        if (!in.gates.empty()) {
            gates = pileup_detail::convert_all<R>(in.gates);
            src.gates = gates.data();
        }
        if (!in.soft_bases.empty()) {
            soft = pileup_detail::convert_all<R>(in.soft_bases);
            src.soft = soft.data();
        }
        pileup_detail::forward(policy, batch, region, src, cfg_.n_as_uniform, block.data());
    }

    template <class T, class RW, class G, class B, class P>
    void run_var(ad::Binder<T>& bind, const AlignedBatch& batch, const PileupRegion& region,
                 const PileupInputs<RW, G, B>& in, const P& policy, std::vector<ad::Var>& block) const {
        namespace sd = soft::detail;
        ad::Tape& tape = ad::Tape::active();
        const std::size_t L = region.length();
        // The quality transform's parameters as (value, Var-or-nothing).
        std::array<T, 2> ab{};
        double a = cfg_.quality_scale, b = cfg_.quality_offset;
        if (cfg_.use_quality_weights) {
            ab[0] = bind(scale_)[0];
            ab[1] = bind(offset_)[0];
            a = primal(ab[0]);
            b = primal(ab[1]);
        }
        const std::span<const T> ab_span(ab.data(), cfg_.use_quality_weights ? 2 : 0);
        // Tables: q(Q), dq/da, dq/db, Q (arena copies: the backward may outlive this call).
        std::vector<double> qw, da, db;
        quality_tables(a, b, qw, da, db);
        std::span<double> tables = tape.allocate<double>(4 * 256);
        for (std::size_t k = 0; k < 256; ++k) {
            tables[k] = qw[k];
            tables[256 + k] = da[k];
            tables[512 + k] = db[k];
            tables[768 + k] = qvalue(static_cast<int>(k));
        }
        const auto saved_rw = sd::saved_values(tape, in.read_weights);
        const auto saved_g = sd::saved_values(tape, in.gates);
        const auto saved_s = sd::saved_values(tape, in.soft_bases);
        const bool use_q = cfg_.use_quality_weights, has_rw = !in.read_weights.empty(), has_g = !in.gates.empty(),
                   has_s = !in.soft_bases.empty(), n_uniform = cfg_.n_as_uniform;
        const AlignedBatch* bp = &batch; // the batch must outlive the backward pass (documented)
        const PileupRegion reg = region;
        auto y = tape.record_node_uninitialised(
            {sd::node_inputs(ab_span), sd::node_inputs(in.read_weights), sd::node_inputs(in.gates),
             sd::node_inputs(in.soft_bases)},
            8 * L,
            [=](const ad::NodeGrad& g) {
                pileup_detail::Sources<double> src;
                src.qvalue = tables.data() + 768;
                if (use_q) src.qweight = tables.data();
                if (has_rw) src.read_w = sd::input_values<RW>(g, 1, saved_rw).data();
                if (has_g) src.gates = sd::input_values<G>(g, 2, saved_g).data();
                if (has_s) src.soft = sd::input_values<B>(g, 3, saved_s).data();
                pileup_detail::Grads grads;
                const auto gab = g.in_adjoint(0);
                if (!gab.empty()) {
                    grads.a = gab.data();
                    grads.b = gab.data() + 1;
                }
                if (const auto x = g.in_adjoint(1); !x.empty()) grads.read_w = x.data();
                if (const auto x = g.in_adjoint(2); !x.empty()) grads.gates = x.data();
                if (const auto x = g.in_adjoint(3); !x.empty()) grads.soft = x.data();
                pileup_detail::backward(policy, *bp, reg, src, use_q && grads.a != nullptr ? tables.data() + 256 : nullptr,
                                        tables.data() + 512, n_uniform, g.out_adjoint().data(), grads);
            });
        pileup_detail::Sources<double> src;
        src.qvalue = tables.data() + 768;
        if (use_q) src.qweight = tables.data();
        const auto rwv = sd::forward_values(tape, in.read_weights, saved_rw);
        const auto gv = sd::forward_values(tape, in.gates, saved_g);
        const auto sv = sd::forward_values(tape, in.soft_bases, saved_s);
        if (has_rw) src.read_w = rwv.data();
        if (has_g) src.gates = gv.data();
        if (has_s) src.soft = sv.data();
        pileup_detail::forward(policy, batch, region, src, n_uniform, tape.values_of(y).data());
        for (std::size_t k = 0; k < y.size(); ++k) block[k] = y[k];
    }

    /// Splits the [L × 8] block into the result's channels and derives frequencies and mean
    /// quality (for Var: one more fused node of O(L)).
    template <class R>
    void finish(const std::vector<R>& block, PileupResult<R>& res) const {
        // (block is res.table)
        using namespace pileup_detail;
        const std::size_t L = res.region.length();
        res.counts.resize(4 * L);
        res.coverage.resize(L);
        res.quality_sum.resize(L);
        res.deletions.resize(L);
        res.insertions.resize(L);
        for (std::size_t p = 0; p < L; ++p) {
            const R* o = block.data() + p * stride;
            for (std::size_t k = 0; k < 4; ++k) res.counts[4 * p + k] = o[k];
            res.coverage[p] = o[ch_cov];
            res.quality_sum[p] = o[ch_qsum];
            res.deletions[p] = o[ch_del];
            res.insertions[p] = o[ch_ins];
        }
        res.frequencies.resize(4 * L);
        res.mean_quality.resize(L);
        const double eps = cfg_.eps;
        if constexpr (soft::detail::is_var_v<R>) {
            normalise_var(block, res, eps);
        } else {
            for (std::size_t p = 0; p < L; ++p) {
                const R* c = block.data() + p * stride;
                const R total = c[0] + c[1] + c[2] + c[3];
                const R inv = R(1) / (primal(total) > eps ? total : passive<R>(eps));
                for (std::size_t k = 0; k < 4; ++k) res.frequencies[4 * p + k] = c[k] * inv;
                const R cov = primal(c[ch_cov]) > eps ? c[ch_cov] : passive<R>(eps);
                res.mean_quality[p] = c[ch_qsum] / cov;
            }
        }
        if (cfg_.apply_softmax) {
            // 1/T capped at float's largest value: at T → 0 (1/T = ∞ below 5.6e-309, or as a float
            // below 2.9e-39) the column's largest frequency would be 0·∞ = NaN; capped, it is the
            // hard argmax (ties shared), every other entry exp(−huge) = 0
            const R inv_t = passive<R>(std::min(1.0 / cfg_.temperature, static_cast<double>(std::numeric_limits<float>::max())));
            for (std::size_t p = 0; p < L; ++p) {
                R* f = res.frequencies.data() + 4 * p;
                double mx = primal(f[0]);
                for (std::size_t k = 1; k < 4; ++k) mx = std::max(mx, primal(f[k]));
                using std::exp;
                std::array<R, 4> e;
                R sum = passive<R>(0.0);
                for (std::size_t k = 0; k < 4; ++k) {
                    e[k] = exp((f[k] - passive<R>(mx)) * inv_t);
                    sum = sum + e[k];
                }
                for (std::size_t k = 0; k < 4; ++k) f[k] = e[k] / sum;
            }
        }
    }

    /// Frequencies and mean quality of a Var block as ONE node: outputs [L × 5] (4 frequencies,
    /// mean quality per position). With S = max(Σ_c n_c, eps), C = max(coverage, eps):
    /// ∂f_c/∂n_k = (δ_ck − f_c)/S when Σ n > eps (else δ_ck/eps); ∂m/∂qsum = 1/C, ∂m/∂cov = −m/C
    /// when coverage > eps (else 0).
    static void normalise_var(const std::vector<ad::Var>& block, PileupResult<ad::Var>& res, double eps) {
        using namespace pileup_detail;
        ad::Tape& tape = ad::Tape::active();
        const std::size_t L = res.region.length();
        auto y = tape.record_node_uninitialised(
            {std::span<const ad::Var>(block)}, 5 * L, [L, eps](const ad::NodeGrad& g) {
                const auto x = g.in_value(0);
                const auto gx = g.in_adjoint(0);
                const auto gy = g.out_adjoint();
                if (gx.empty()) return;
                for (std::size_t p = 0; p < L; ++p) {
                    const double* c = x.data() + p * stride;
                    double* gc = gx.data() + p * stride;
                    const double* gyp = gy.data() + 5 * p;
                    const double total = c[0] + c[1] + c[2] + c[3];
                    if (total > eps) {
                        double dot = 0.0;
                        for (std::size_t k = 0; k < 4; ++k) dot += gyp[k] * c[k];
                        const double inv = 1.0 / total;
                        for (std::size_t k = 0; k < 4; ++k) gc[k] += (gyp[k] - dot * inv) * inv;
                    } else {
                        for (std::size_t k = 0; k < 4; ++k) gc[k] += gyp[k] / eps;
                    }
                    const double cov = c[ch_cov] > eps ? c[ch_cov] : eps;
                    gc[ch_qsum] += gyp[4] / cov;
                    if (c[ch_cov] > eps) gc[ch_cov] -= gyp[4] * (c[ch_qsum] / cov) / cov;
                }
            });
        const auto xv = tape.contiguous_values(std::span<const ad::Var>(block));
        std::vector<double> copy;
        std::span<const double> x = xv;
        if (xv.size() != block.size()) {
            copy.resize(block.size());
            for (std::size_t k = 0; k < block.size(); ++k) copy[k] = tape.value(block[k]);
            x = copy;
        }
        auto yv = tape.values_of(y);
        for (std::size_t p = 0; p < L; ++p) {
            const double* c = x.data() + p * stride;
            const double total = c[0] + c[1] + c[2] + c[3];
            const double denom = total > eps ? total : eps;
            for (std::size_t k = 0; k < 4; ++k) yv[5 * p + k] = c[k] / denom;
            const double cov = c[ch_cov] > eps ? c[ch_cov] : eps;
            yv[5 * p + 4] = c[ch_qsum] / cov;
        }
        for (std::size_t p = 0; p < L; ++p) {
            for (std::size_t k = 0; k < 4; ++k) res.frequencies[4 * p + k] = y[5 * p + k];
            res.mean_quality[p] = y[5 * p + 4];
        }
    }

    PileupConfig cfg_;
    ad::Parameter scale_;
    ad::Parameter offset_;
};

} // namespace diffbio::ops
