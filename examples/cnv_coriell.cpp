// cnv_coriell: CNVSegmentation on DNAcopy's coriell array-CGH data next to DNAcopy's CBS
// segments of the same probes; benchmarks/peers/cnv_coriell.sh exports both (Rscript) and runs it.
//
//   cnv_coriell --probes probes.tsv --cbs cbs.tsv [--input smoothed|raw] [--steps 300] [--lr 0.02]
//               [--tolerance 2] [--threshold 0.2]
//
// probes.tsv: sample chrom pos raw smoothed (header line; per sample in CNA()'s order, NA removed)
// cbs.tsv:    ID chrom loc.start loc.end num.mark seg.mean (DNAcopy's segment()$output, whose
//             num.mark runs tile each sample's probes in the same order)
//
// Per sample, each chromosome is one chain; two models are hardened with viterbi():
//   default  CNVSegmentationConfig's defaults, nothing fitted: states μ = (−1, 0, 0.585)
//            (one-copy loss / neutral / one-copy gain of a diploid), σ = 0.2, λ = 10
//   fitted   starting from the defaults, μ (3 states), log σ and λ are fitted by Adam (--steps,
//            --lr) on the HMM log-likelihood of the sample (all chromosomes, τ = 1):
//              ℓ = Σ_chrom [ F − n·log σ − (n/2)·log 2π − (n − 1)·log(1 + (K − 1)e^{−λ}) − log K ],
//            F = CNVSegmentation's log-partition at τ = 1 (its fused tape node), the other terms
//            the normalisers of Gaussian emissions and of stay/switch transition probabilities
//            (P(stay) = 1/(1 + (K − 1)e^{−λ})) with a uniform start; K = 3 and τ stay fixed.
// Calls: ours, per probe, the state's direction (neutral = the state whose mean is closest to 0,
// gain above it, loss below); CBS, a segment with mean > +threshold is a gain, < −threshold a loss
// (--threshold, default 0.2).
// Table per sample and model: the gains/losses (runs of non-neutral calls) of each side, whether
// every CBS aberration is found (≥ 50% of its probes called the same way by us) and every one of
// ours is confirmed by CBS (≥ 50% of its probes), breakpoint precision/recall within ±tolerance
// probes (one-to-one, same chromosome) for all CBS breakpoints and for CBS's call-change
// breakpoints (where the thresholded call changes), and the share of probes with the same call.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <numbers>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/nn/adam.hpp>
#include <diffbio/ops/variant/cnv.hpp>

#include "example_args.hpp"

namespace ad = diffbio::ad;
using diffbio::ops::CNVSegmentation;
using diffbio::ops::CNVSegmentationConfig;

namespace {

struct Args {
    std::string probes, cbs, input = "smoothed";
    int steps = 300;
    double lr = 0.02, threshold = 0.2;
    long tolerance = 2;
};

Args parse(int argc, char** argv) {
    Args a;
    example_args::for_each_arg(argc, argv, [&](const std::string& k, auto& val) {
        if (k == "--probes") a.probes = val();
        else if (k == "--cbs") a.cbs = val();
        else if (k == "--input") a.input = val();
        else if (k == "--steps") a.steps = std::stoi(val());
        else if (k == "--lr") a.lr = std::stod(val());
        else if (k == "--tolerance") a.tolerance = std::stol(val());
        else if (k == "--threshold") a.threshold = std::stod(val());
        else return false;
        return true;
    });
    if (a.probes.empty() || a.cbs.empty()) {
        throw diffbio::InvalidArgument("usage: cnv_coriell --probes TSV --cbs TSV [--input smoothed|raw] [--steps N] "
                                       "[--lr X] [--tolerance K] [--threshold T]");
    }
    if (a.input != "smoothed" && a.input != "raw") throw diffbio::InvalidArgument("--input must be smoothed or raw");
    if (a.steps < 0 || a.tolerance < 0 || !(a.threshold > 0.0)) {
        throw diffbio::InvalidArgument("--steps and --tolerance must be >= 0, --threshold > 0");
    }
    return a;
}

/// Tab-separated rows after a header line with at least `fields` columns.
std::vector<std::vector<std::string>> read_tsv(const std::string& path, std::size_t fields) {
    std::ifstream in(path);
    if (!in) throw diffbio::InvalidArgument("cannot open '" + path + "'");
    std::vector<std::vector<std::string>> rows;
    std::string line;
    long no = 0;
    while (std::getline(in, line)) {
        ++no;
        if (no == 1 || line.empty()) continue;
        std::vector<std::string> f;
        std::stringstream ss(line);
        std::string x;
        while (std::getline(ss, x, '\t')) f.push_back(x);
        if (f.size() < fields) {
            throw diffbio::ParseError(path, no, "expected " + std::to_string(fields) + " tab-separated fields, got " +
                                                    std::to_string(f.size()));
        }
        rows.push_back(std::move(f));
    }
    return rows;
}

double number(const std::string& s, const std::string& path, std::size_t row) {
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || *end != '\0' || !std::isfinite(v)) {
        throw diffbio::ParseError(path, static_cast<long>(row) + 2, "'" + s + "' is not a finite number");
    }
    return v;
}

struct Sample {
    std::string name;
    std::vector<int> chrom;
    std::vector<double> pos, y;
    std::vector<std::size_t> chrom_start; ///< first probe of each chromosome run, + size at the end
    std::vector<int> cbs_call;            ///< per probe: −1, 0, +1
    std::vector<std::size_t> cbs_breaks;  ///< probe index starting a CBS segment (not a chromosome)
    std::vector<std::size_t> cbs_call_breaks;
};

struct Run {
    std::size_t start, end; ///< [start, end) probes
    int call;
    double mean;
};

/// Runs of equal non-zero calls within chromosomes.
std::vector<Run> aberrations(const Sample& s, const std::vector<int>& call) {
    std::vector<Run> out;
    for (std::size_t c = 0; c + 1 < s.chrom_start.size(); ++c) {
        for (std::size_t i = s.chrom_start[c]; i < s.chrom_start[c + 1];) {
            std::size_t j = i;
            double sum = 0.0;
            while (j < s.chrom_start[c + 1] && call[j] == call[i]) sum += s.y[j++];
            if (call[i] != 0) out.push_back({i, j, call[i], sum / static_cast<double>(j - i)});
            i = j;
        }
    }
    return out;
}

/// Matched breakpoints (one-to-one, |i − j| ≤ tol, same chromosome), greedy by distance.
std::size_t matched(const Sample& s, const std::vector<std::size_t>& a, const std::vector<std::size_t>& b, long tol) {
    struct Cand {
        long d;
        std::size_t i, j;
    };
    std::vector<Cand> c;
    for (std::size_t i = 0; i < a.size(); ++i) {
        for (std::size_t j = 0; j < b.size(); ++j) {
            const long d = std::labs(static_cast<long>(a[i]) - static_cast<long>(b[j]));
            if (d <= tol && s.chrom[a[i]] == s.chrom[b[j]]) c.push_back({d, i, j});
        }
    }
    std::sort(c.begin(), c.end(), [](const Cand& x, const Cand& y) { return x.d < y.d; });
    std::vector<char> ua(a.size(), 0), ub(b.size(), 0);
    std::size_t m = 0;
    for (const Cand& x : c) {
        if (ua[x.i] || ub[x.j]) continue;
        ua[x.i] = ub[x.j] = 1;
        ++m;
    }
    return m;
}

std::map<std::string, Sample> load(const Args& a) {
    std::map<std::string, Sample> samples;
    const auto rows = read_tsv(a.probes, 5);
    for (std::size_t r = 0; r < rows.size(); ++r) {
        Sample& s = samples[rows[r][0]];
        s.name = rows[r][0];
        const int chrom = static_cast<int>(number(rows[r][1], a.probes, r));
        if (s.chrom.empty() || s.chrom.back() != chrom) s.chrom_start.push_back(s.chrom.size());
        s.chrom.push_back(chrom);
        s.pos.push_back(number(rows[r][2], a.probes, r));
        s.y.push_back(number(rows[r][a.input == "raw" ? 3 : 4], a.probes, r));
    }
    for (auto& [name, s] : samples) {
        s.chrom_start.push_back(s.chrom.size());
        s.cbs_call.assign(s.chrom.size(), 0);
    }
    const auto segs = read_tsv(a.cbs, 6);
    std::map<std::string, std::size_t> next;
    std::map<std::string, int> last_call;
    for (std::size_t r = 0; r < segs.size(); ++r) {
        const auto it = samples.find(segs[r][0]);
        if (it == samples.end()) throw diffbio::ParseError(a.cbs, static_cast<long>(r) + 2, "unknown sample '" + segs[r][0] + "'");
        Sample& s = it->second;
        const int chrom = static_cast<int>(number(segs[r][1], a.cbs, r));
        const double lo = number(segs[r][2], a.cbs, r), hi = number(segs[r][3], a.cbs, r);
        const auto marks = static_cast<std::size_t>(number(segs[r][4], a.cbs, r));
        const double mean = number(segs[r][5], a.cbs, r);
        std::size_t& first = next[s.name];
        const std::size_t end = first + marks;
        if (marks == 0 || end > s.chrom.size() || s.chrom[first] != chrom || s.chrom[end - 1] != chrom ||
            s.pos[first] != lo || s.pos[end - 1] != hi) {
            throw diffbio::ParseError(a.cbs, static_cast<long>(r) + 2,
                                      "segment does not tile the probes of " + s.name + " (CNA order, NA removed)");
        }
        const int call = mean > a.threshold ? 1 : mean < -a.threshold ? -1 : 0;
        for (std::size_t i = first; i < end; ++i) s.cbs_call[i] = call;
        if (first > 0 && s.chrom[first - 1] == chrom) {
            s.cbs_breaks.push_back(first);
            if (last_call[s.name] != call) s.cbs_call_breaks.push_back(first);
        }
        last_call[s.name] = call;
        first = end;
    }
    for (const auto& [name, s] : samples) {
        if (next[name] != s.chrom.size()) {
            throw diffbio::ParseError(a.cbs, 0, "CBS segments of " + name + " cover " + std::to_string(next[name]) +
                                                    " of its " + std::to_string(s.chrom.size()) + " probes");
        }
    }
    return samples;
}

std::span<const double> chrom_span(const Sample& s, std::size_t c) {
    return std::span<const double>(s.y).subspan(s.chrom_start[c], s.chrom_start[c + 1] - s.chrom_start[c]);
}

/// Fits μ, log σ, λ on the sample's HMM log-likelihood (see the header comment); returns the
/// final ℓ and the seconds per step.
std::pair<double, double> fit(CNVSegmentation& cnv, const Sample& s, int steps, double lr) {
    diffbio::nn::Adam adam(cnv.parameters(), {.learning_rate = lr});
    const double K = static_cast<double>(cnv.num_states());
    const double half_log_2pi = 0.5 * std::log(2.0 * std::numbers::pi);
    double ll = 0.0;
    const auto t0 = std::chrono::steady_clock::now();
    ad::Tape tape;
    for (int step = 0; step <= steps; ++step) {
        adam.zero_grad();
        tape.clear();
        ad::ScopedTape scope(tape);
        ad::Binder<ad::Var> bind(tape);
        const ad::Var lsd = bind(cnv.log_noise_sd())[0], lam = bind(cnv.switch_penalty())[0];
        const ad::Var log_norm = log(1.0 + (K - 1.0) * exp(-lam));
        ad::Var total = 0.0;
        for (std::size_t c = 0; c + 1 < s.chrom_start.size(); ++c) {
            const auto y = chrom_span(s, c);
            const auto r = cnv.apply(bind, y, 1.0);
            const double n = static_cast<double>(y.size());
            total = total + r.log_partition - n * lsd - n * half_log_2pi - (n - 1.0) * log_norm - std::log(K);
        }
        ll = tape.value(total);
        if (step == steps) break;
        tape.backward(-total);
        bind.accumulate_grad();
        adam.step();
    }
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return {ll, steps > 0 ? sec / steps : 0.0};
}

std::vector<int> our_calls(const CNVSegmentation& cnv, const Sample& s, std::vector<std::size_t>& breaks) {
    auto mu = cnv.state_means().values();
    std::vector<double> means(mu.begin(), mu.end());
    std::size_t neutral = 0;
    for (std::size_t k = 1; k < means.size(); ++k) {
        if (std::fabs(means[k]) < std::fabs(means[neutral])) neutral = k;
    }
    std::vector<int> call(s.y.size());
    breaks.clear();
    for (std::size_t c = 0; c + 1 < s.chrom_start.size(); ++c) {
        const auto path = cnv.viterbi(chrom_span(s, c));
        for (std::size_t i = 0; i < path.size(); ++i) {
            const std::size_t g = s.chrom_start[c] + i;
            call[g] = path[i] == neutral ? 0 : means[path[i]] > means[neutral] ? 1 : -1;
            if (i > 0 && path[i] != path[i - 1]) breaks.push_back(g);
        }
    }
    return call;
}

/// Share of the probes of `run` whose call in `other` equals the run's.
double covered(const Run& run, const std::vector<int>& other) {
    std::size_t same = 0;
    for (std::size_t i = run.start; i < run.end; ++i) same += other[i] == run.call;
    return static_cast<double>(same) / static_cast<double>(run.end - run.start);
}

void print_runs(const char* who, const Sample& s, const std::vector<Run>& runs, const std::vector<int>& other) {
    for (const Run& r : runs) {
        std::printf("  %-6s %-4s chr%-2d %7.0f-%-7.0f kb %4zu probes  mean %+.3f  same call in the other: %3.0f%%\n",
                    who, r.call > 0 ? "gain" : "loss", s.chrom[r.start], s.pos[r.start], s.pos[r.end - 1],
                    r.end - r.start, r.mean, 100.0 * covered(r, other));
    }
}

void report(const char* model, const CNVSegmentation& cnv, const Sample& s, long tol, double ll, double step_s) {
    std::vector<std::size_t> breaks;
    const std::vector<int> call = our_calls(cnv, s, breaks);
    const auto mu = cnv.state_means().values();
    std::printf("\n%s, %s: mu = (%.3f, %.3f, %.3f), sigma = %.4f, lambda = %.3f", s.name.c_str(), model, mu[0], mu[1],
                mu[2], std::exp(cnv.log_noise_sd().values()[0]), cnv.switch_penalty().values()[0]);
    if (step_s > 0.0) std::printf(", log-likelihood %.2f (%.2f ms per Adam step)", ll, step_s * 1e3);
    std::printf("\n");
    const auto ours = aberrations(s, call), theirs = aberrations(s, s.cbs_call);
    print_runs("ours", s, ours, s.cbs_call);
    print_runs("CBS", s, theirs, call);
    std::size_t found = 0, confirmed = 0, same = 0;
    for (const Run& r : theirs) found += covered(r, call) >= 0.5;
    for (const Run& r : ours) confirmed += covered(r, s.cbs_call) >= 0.5;
    for (std::size_t i = 0; i < call.size(); ++i) same += call[i] == s.cbs_call[i];
    auto pr = [&](const std::vector<std::size_t>& ref) {
        const std::size_t m = matched(s, breaks, ref, tol);
        return std::pair<double, double>{breaks.empty() ? 0.0 : double(m) / double(breaks.size()),
                                         ref.empty() ? 0.0 : double(m) / double(ref.size())};
    };
    const auto [p_all, r_all] = pr(s.cbs_breaks);
    const auto [p_call, r_call] = pr(s.cbs_call_breaks);
    std::printf("TABLE %-6s %-7s CBS_aberrations_found=%zu/%zu ours_confirmed=%zu/%zu breakpoints_ours=%zu "
                "cbs_all=%zu P=%.2f R=%.2f cbs_call_changes=%zu P=%.2f R=%.2f (+-%ld probes) same_call=%.4f (%zu/%zu)\n",
                s.name.c_str(), model, found, theirs.size(), confirmed, ours.size(), breaks.size(), s.cbs_breaks.size(),
                p_all, r_all, s.cbs_call_breaks.size(), p_call, r_call, tol, double(same) / double(call.size()), same,
                call.size());
}

} // namespace

int main(int argc, char** argv) {
    try {
        const Args a = parse(argc, argv);
        const auto samples = load(a);
        std::printf("cnv_coriell: input %s log2 ratios, CBS calls |mean| > %.2f, breakpoints within +-%ld probes\n",
                    a.input.c_str(), a.threshold, a.tolerance);
        for (const auto& [name, s] : samples) {
            std::printf("\n== %s: %zu probes on %zu chromosomes; CBS %zu breakpoints (%zu change the call)\n",
                        name.c_str(), s.y.size(), s.chrom_start.size() - 1, s.cbs_breaks.size(),
                        s.cbs_call_breaks.size());
            CNVSegmentation plain;
            report("default", plain, s, a.tolerance, 0.0, 0.0);
            CNVSegmentation fitted;
            const auto [ll, step_s] = fit(fitted, s, a.steps, a.lr);
            report("fitted", fitted, s, a.tolerance, ll, step_s);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cnv_coriell: %s\n", e.what());
        return 1;
    }
    return 0;
}
