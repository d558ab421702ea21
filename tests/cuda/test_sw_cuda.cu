// CPU/GPU parity of the CUDA Smith-Waterman (<diffbio/ops/alignment/cuda/smith_waterman.cuh>):
// scores and every gradient (∂/∂S, open, extend, τ) against SmithWaterman::value_and_grad (Cpu)
// for every model (linear/affine, local/global, soft/hard, compat), float and double, on random
// DNA batches of lengths 1..300 plus a few 1000 × 1000 pairs; the score-only path, chunked
// workspaces, other segment lengths, τ = 1e-4 and 1e4 (finite, parity), and the argument checks.
// Exits 77 (ctest: skipped) when no CUDA device is present.
//
// Tolerances (relative, scale max(1, |reference|)). Double: 1e-9 against the CPU in double.
// Float: 1e-5 against the CPU's float path (3e-5 for batches with 1000 × 1000 pairs), EXCEPT where
// the CPU's float path is itself further than that from its double path (it accumulates the
// open/extend/τ gradients in float lanes and its float DP rounds along 2,000-cell paths: the host
// emulation measured up to 2.9e-5 at lengths ≤ 300 and 2e-4 at 1000 × 1000): there the GPU's float
// result must be at least as close to the double result as the CPU's float result is (and within
// the tolerance of it). So the GPU float path is never allowed to be less accurate than the CPU's.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <diffbio/exec/cuda/buffer.cuh>
#include <diffbio/ops/alignment/cuda/smith_waterman.cuh>

namespace {

namespace exec = diffbio::exec;
namespace ops = diffbio::ops;
namespace cu = diffbio::ops::cuda;

int failures = 0;

bool close(double got, double want, double rel) {
    return std::fabs(got - want) <= rel * std::max(1.0, std::fabs(want));
}

void expect_close(double gpu, double cpu, double rel, const std::string& what) {
    if (!close(gpu, cpu, rel)) {
        std::printf("FAIL %s: gpu %.12g cpu %.12g (tolerance %.3g relative)\n", what.c_str(), gpu, cpu, rel);
        ++failures;
    }
}

/// A float result against the CPU's float (cf) and double (cd) results (see the file comment).
void expect_float(double gpu, double cf, double cd, double rel, const std::string& what) {
    const bool ok = close(gpu, cf, rel) || std::fabs(gpu - cd) <= std::max(rel * std::max(1.0, std::fabs(cd)), std::fabs(cf - cd));
    if (!ok) {
        std::printf("FAIL %s: gpu %.12g, cpu float %.12g, cpu double %.12g (tolerance %.3g relative)\n", what.c_str(), gpu, cf, cd,
                    rel);
        ++failures;
    }
}

void expect(bool ok, const std::string& what) {
    if (!ok) {
        std::printf("FAIL %s\n", what.c_str());
        ++failures;
    }
}

std::string random_dna(std::mt19937& rng, std::size_t n) {
    std::string s(n, 'A');
    for (char& c : s) c = "ACGT"[rng() % 4];
    return s;
}

/// A mutated copy (substitutions and indels) so that pairs are related, as real alignments are.
std::string mutate(std::mt19937& rng, const std::string& s) {
    std::string out;
    for (const char c : s) {
        const unsigned r = rng() % 100;
        if (r < 8) {
            out.push_back("ACGT"[rng() % 4]);
        } else if (r < 11) {
            continue;
        } else if (r < 14) {
            out.push_back(c);
            out.push_back("ACGT"[rng() % 4]);
        } else {
            out.push_back(c);
        }
    }
    return out.empty() ? std::string("A") : out;
}

struct Batch {
    std::vector<std::vector<std::uint8_t>> codes;
    std::vector<ops::CodePair> pairs;
    std::vector<double> w;
};

Batch make_batch(const ops::SmithWaterman& sw, std::mt19937& rng, std::size_t count, std::size_t max_len,
                 std::size_t big) {
    Batch b;
    std::vector<std::pair<std::string, std::string>> strs;
    for (std::size_t k = 0; k < count; ++k) {
        const std::string q = random_dna(rng, 1 + rng() % max_len);
        strs.push_back({q, k % 2 == 0 ? mutate(rng, q) : random_dna(rng, 1 + rng() % max_len)});
    }
    for (std::size_t k = 0; k < big; ++k) {
        const std::string q = random_dna(rng, 1000);
        strs.push_back({q, k % 2 == 0 ? mutate(rng, q).substr(0, 1000) : random_dna(rng, 1000)});
    }
    for (const auto& [q, t] : strs) b.codes.push_back(sw.encode(q)), b.codes.push_back(sw.encode(t));
    for (std::size_t k = 0; k < strs.size(); ++k) b.pairs.push_back({b.codes[2 * k], b.codes[2 * k + 1]});
    for (std::size_t k = 0; k < b.pairs.size(); ++k) b.w.push_back(k % 7 == 3 ? 0.0 : 0.5 + 0.01 * static_cast<double>(k % 50));
    return b;
}

template <class F>
void compare(const ops::SwGradResult<F>& gpu, const ops::SwGradResult<F>& cpu, const ops::SwGradResult<double>* cpu_d,
             double rel, const std::string& tag) {
    expect(gpu.score.size() == cpu.score.size(), tag + ": score count");
    for (std::size_t k = 0; k < std::min(gpu.score.size(), cpu.score.size()); ++k) {
        expect(std::isfinite(static_cast<double>(gpu.score[k])), tag + ": finite score " + std::to_string(k));
        if (cpu_d != nullptr) {
            expect_float(gpu.score[k], cpu.score[k], cpu_d->score[k], rel, tag + " score " + std::to_string(k));
        } else {
            expect_close(gpu.score[k], cpu.score[k], rel, tag + " score " + std::to_string(k));
        }
    }
    for (std::size_t e = 0; e < cpu.substitution.size(); ++e) {
        expect(std::isfinite(static_cast<double>(gpu.substitution[e])), tag + ": finite dS");
        if (cpu_d != nullptr) {
            expect_float(gpu.substitution[e], cpu.substitution[e], cpu_d->substitution[e], rel,
                         tag + " dS[" + std::to_string(e) + "]");
        } else {
            expect_close(gpu.substitution[e], cpu.substitution[e], rel, tag + " dS[" + std::to_string(e) + "]");
        }
    }
    if (cpu_d != nullptr) {
        expect_float(gpu.gap_open, cpu.gap_open, cpu_d->gap_open, rel, tag + " d open");
        expect_float(gpu.gap_extend, cpu.gap_extend, cpu_d->gap_extend, rel, tag + " d extend");
        expect_float(gpu.temperature, cpu.temperature, cpu_d->temperature, rel, tag + " d tau");
    } else {
        expect_close(gpu.gap_open, cpu.gap_open, rel, tag + " d open");
        expect_close(gpu.gap_extend, cpu.gap_extend, rel, tag + " d extend");
        expect_close(gpu.temperature, cpu.temperature, rel, tag + " d tau");
    }
    for (const double v : {double(gpu.gap_open), double(gpu.gap_extend), double(gpu.temperature)}) {
        expect(std::isfinite(v), tag + ": finite scalar gradient");
    }
}

struct Named {
    ops::SmithWatermanConfig cfg;
    std::string name;
};

std::vector<Named> models(double tau) {
    std::vector<Named> out;
    for (const bool hard : {false, true}) {
        for (const auto gaps : {ops::GapModel::Affine, ops::GapModel::Linear}) {
            for (const auto mode : {ops::AlignmentMode::Local, ops::AlignmentMode::Global}) {
                ops::SmithWatermanConfig c;
                c.gaps = gaps;
                c.mode = mode;
                c.hard = hard;
                c.temperature = tau;
                c.gap_open = ops::GapOpen{5.0};
                c.gap_extend = ops::GapExtend{1.0};
                out.push_back({c, std::string(gaps == ops::GapModel::Affine ? "affine" : "linear") +
                                      (mode == ops::AlignmentMode::Local ? " local" : " global") + (hard ? " hard" : " soft")});
            }
        }
        ops::SmithWatermanConfig c;
        c.gaps = ops::GapModel::Linear;
        c.diffbio_compat = true;
        c.hard = hard;
        c.temperature = tau;
        c.gap_open = ops::GapOpen{2.0};
        c.gap_extend = ops::GapExtend{0.5};
        out.push_back({c, std::string("compat") + (hard ? " hard" : " soft")});
    }
    return out;
}

/// The largest relative deviation (scale max(1, |ref|)) of a result from a double reference.
template <class F>
double deviation(const ops::SwGradResult<F>& r, const ops::SwGradResult<double>& ref) {
    auto rel = [](double x, double y) { return std::fabs(x - y) / std::max(1.0, std::fabs(y)); };
    double d = std::max({rel(r.gap_open, ref.gap_open), rel(r.gap_extend, ref.gap_extend), rel(r.temperature, ref.temperature)});
    for (std::size_t k = 0; k < ref.score.size(); ++k) d = std::max(d, rel(r.score[k], ref.score[k]));
    for (std::size_t e = 0; e < ref.substitution.size(); ++e) d = std::max(d, rel(r.substitution[e], ref.substitution[e]));
    return d;
}

/// value_and_grad and scores of one model on one batch, float and double, against the CPU
/// (tolerances: see the file comment; `big`: the batch holds 1000 x 1000 pairs).
void parity(const Named& m, const Batch& b, const std::string& what, bool big = false) {
    const ops::SmithWaterman sw(m.cfg);
    const exec::Cuda gpu{};
    const ops::SwGradOptions with_tau{.temperature_gradient = true}; // the CUDA kernels always give ∂/∂τ
    const auto cpu_d = sw.value_and_grad<double>(b.pairs, b.w, with_tau, exec::CpuParallel{});
    const auto cpu_f = sw.value_and_grad<float>(b.pairs, b.w, with_tau, exec::CpuParallel{});
    const auto gpu_d = cu::smith_waterman_value_and_grad<double>(gpu, sw, b.pairs, b.w);
    const auto gpu_f = cu::smith_waterman_value_and_grad<float>(gpu, sw, b.pairs, b.w);
    compare(gpu_d, cpu_d, nullptr, 1e-9, m.name + " double " + what);
    compare(gpu_f, cpu_f, &cpu_d, big ? 3e-5 : 1e-5, m.name + " float " + what);
    std::printf("%-18s %-18s float deviation from the CPU in double: GPU %.3g, CPU %.3g\n", m.name.c_str(), what.c_str(),
                deviation(gpu_f, cpu_d), deviation(cpu_f, cpu_d));
    const auto s_f = cu::smith_waterman_scores<float>(gpu, sw, std::span<const ops::CodePair>(b.pairs));
    const auto s_d = cu::smith_waterman_scores<double>(gpu, sw, std::span<const ops::CodePair>(b.pairs));
    for (std::size_t k = 0; k < b.pairs.size(); ++k) {
        expect_close(s_f[k], gpu_f.score[k], 0.0, m.name + " float scores() = value_and_grad's " + what + " " + std::to_string(k));
        expect_close(s_d[k], cpu_d.score[k], 1e-9, m.name + " double scores() " + what + " " + std::to_string(k));
    }
}

void options_and_errors(std::mt19937& rng) {
    const exec::Cuda gpu{};
    ops::SmithWatermanConfig cfg;
    cfg.temperature = 0.7;
    const ops::SmithWaterman sw(cfg);
    const Batch b = make_batch(sw, rng, 40, 120, 0);
    const auto ref = cu::smith_waterman_value_and_grad<double>(gpu, sw, b.pairs, b.w);
    // other segment lengths, one warp per block, and a workspace budget that forces many chunks
    for (const cu::SwCudaOptions opt : {cu::SwCudaOptions{7, 4, std::size_t(2) << 30}, cu::SwCudaOptions{1, 1, std::size_t(2) << 30},
                                        cu::SwCudaOptions{32, 3, 100000}}) {
        const auto got = cu::smith_waterman_value_and_grad<double>(gpu, sw, b.pairs, b.w, opt);
        compare(got, ref, nullptr, 1e-12,
                "segment " + std::to_string(opt.segment) + " budget " + std::to_string(opt.max_workspace_bytes));
    }
    // a reused workspace gives the same results
    {
        const cu::SwCudaModel<double> md = cu::sw_cuda_model<double>(sw);
        std::vector<std::uint8_t> codes;
        std::vector<cu::SwCudaPair> table;
        for (const ops::CodePair& pr : b.pairs) {
            cu::SwCudaPair d;
            d.query_offset = codes.size();
            d.query_length = static_cast<std::uint32_t>(pr.query.size());
            codes.insert(codes.end(), pr.query.begin(), pr.query.end());
            d.target_offset = codes.size();
            d.target_length = static_cast<std::uint32_t>(pr.target.size());
            codes.insert(codes.end(), pr.target.begin(), pr.target.end());
            table.push_back(d);
        }
        exec::cuda::DeviceBuffer<std::uint8_t> dcodes{std::span<const std::uint8_t>(codes)};
        exec::cuda::DeviceBuffer<double> dw{std::span<const double>(b.w)}, scores(b.pairs.size()), grads(19);
        cu::SwCudaWorkspace ws;
        for (int rep = 0; rep < 2; ++rep) {
            grads.fill_zero();
            cu::smith_waterman_value_and_grad<double>(gpu, md, dcodes.data(), std::span<const cu::SwCudaPair>(table),
                                                      dw.data(), scores.data(), grads.data(), {}, &ws);
            const std::vector<double> g = grads.to_host(), s = scores.to_host();
            for (std::size_t e = 0; e < 16; ++e) expect_close(g[e], ref.substitution[e], 1e-12, "workspace dS");
            expect_close(g[16], ref.gap_open, 1e-12, "workspace d open");
            expect_close(g[17], ref.gap_extend, 1e-12, "workspace d extend");
            expect_close(g[18], ref.temperature, 1e-12, "workspace d tau");
            for (std::size_t k = 0; k < s.size(); ++k) expect_close(s[k], ref.score[k], 1e-12, "workspace score");
        }
    }
    // argument checks
    const std::vector<std::uint8_t> bad{0, 1, 7}, good{0, 1, 2};
    const std::vector<ops::CodePair> bad_pairs{{good, bad}};
    const std::vector<double> one{1.0};
    try {
        (void)cu::smith_waterman_value_and_grad<float>(gpu, sw, bad_pairs, one);
        expect(false, "a code >= A was not reported");
    } catch (const diffbio::InvalidArgument& e) {
        expect(std::string(e.what()).find("code 7") != std::string::npos, std::string("message names the code: ") + e.what());
    }
    try {
        (void)cu::smith_waterman_value_and_grad<float>(gpu, sw, b.pairs, one);
        expect(false, "a weight count mismatch was not reported");
    } catch (const diffbio::ShapeError&) {
    }
    try {
        (void)cu::smith_waterman_value_and_grad<float>(gpu, sw, b.pairs, b.w, cu::SwCudaOptions{0, 4, 1});
        expect(false, "segment 0 was not reported");
    } catch (const diffbio::InvalidArgument&) {
    }
    try {
        (void)cu::smith_waterman_value_and_grad<float>(gpu, sw, b.pairs, b.w, cu::SwCudaOptions{4000, 4, 1});
        expect(false, "a segment too big for shared memory was not reported");
    } catch (const diffbio::InvalidArgument&) {
    }
    ops::SmithWaterman protein(ops::SmithWatermanConfig{}, ops::SubstitutionMatrix::blosum62());
    const auto pq = protein.encode("ARNDCQEGHILKMFPSTWYV"), pt = protein.encode("WYVARNDKMF");
    const std::vector<ops::CodePair> pp{{pq, pt}};
    const auto pc = protein.value_and_grad<double>(pp, one);
    const auto pg = cu::smith_waterman_value_and_grad<double>(gpu, protein, pp, one);
    compare(pg, pc, nullptr, 1e-9, "blosum62 (A = 20)");
}

} // namespace

int main() {
    if (!exec::cuda::device_available()) {
        std::printf("SKIP: no CUDA device available; CPU/GPU parity not checked\n");
        return 77;
    }
    cudaDeviceProp prop{};
    exec::cuda::check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("device: %s\n", prop.name);
    std::mt19937 rng(2024);
    for (const Named& m : models(0.9)) {
        const ops::SmithWaterman sw(m.cfg);
        parity(m, make_batch(sw, rng, 96, 300, 0), "lengths 1..300");
    }
    // 1000 x 1000 pairs (affine local and linear global soft, affine global hard, compat soft)
    const std::vector<Named> all = models(0.9);
    for (const std::size_t which : {std::size_t(0), std::size_t(3), std::size_t(6), std::size_t(4)}) {
        const ops::SmithWaterman sw(all[which].cfg);
        parity(all[which], make_batch(sw, rng, 2, 50, 3), "with 1000 x 1000", true);
    }
    // extreme temperatures: finite everywhere and the same as the CPU
    for (const double tau : {1e-4, 1e4}) {
        for (const Named& m : models(tau)) {
            if (m.cfg.hard) continue;
            const ops::SmithWaterman sw(m.cfg);
            parity(m, make_batch(sw, rng, 24, 200, 0), "tau " + std::to_string(tau));
        }
    }
    options_and_errors(rng);
    std::printf("%s: %d failures\n", failures == 0 ? "PASS" : "FAIL", failures);
    return failures == 0 ? 0 : 1;
}
