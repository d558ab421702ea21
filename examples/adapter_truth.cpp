// Adapter trimming against a known truth: diffbio's hard decision (AdapterRemoval::trimmed_lengths,
// the T → 0 limit of the soft operator) on simulated reads whose true trimmed length is in the
// read name.
//
// Data: seqprep-data's simSeq_1.fq.gz (100k simulated 100 bp reads, phred+33). A read name is
// "SimSeq_<n>/<insert_len>/<mate>"; the true trimmed length is min(insert_len, read length).
// Output: reads, the share trimmed to exactly the true length, over-trimmed (shorter than the
// truth) and under-trimmed (longer) counts, and throughput (reads/s of the trimming alone and of
// the whole run including FASTQ parsing).
//
// Paired mode (--fastq2 MATE2): the pairs are trimmed by ops::MateOverlap::insert_lengths (the
// mate overlap plus both adapters, the same rule), mate 1 is scored as in single-end mode and the
// share for mate 2 is printed too.
//
// Usage: adapter_truth [--fastq PATH] [--fastq2 PATH] [--adapter SEQ] [--adapter2 SEQ]
//                      [--max-reads N] [--threads N] [--chunk N] [--lengths-out PATH]
//                      [--threshold TAU_M] [--min-score S] [--min-overlap K] [--match M] [--mismatch X]
// The rule defaults to the recommended setting of AdapterRemoval's header (match 1, mismatch −3,
// τ_m 0.3, min_score 3.5, min_overlap 1); the library's defaults (DiffBio's fraction rule) are
//   --threshold 0.5 --min-score -inf --min-overlap 6 --match 2 --mismatch -1
// --lengths-out writes one line per read: name, truth, our length (for per-read comparisons).
// Exit status: 0 on success, 2 on bad arguments, 1 when the file cannot be read.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <optional>
#include <span>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <diffbio/diffbio.hpp>
#include <diffbio/io/fastq.hpp>
#include <diffbio/io/paired.hpp>
#include <diffbio/ops/preprocessing/adapter_removal.hpp>
#include <diffbio/ops/preprocessing/mate_overlap.hpp>

namespace {

struct Options {
    std::string fastq = "/usr/share/doc/seqprep/examples/SimTest/simSeq_1.fq.gz";
    std::string fastq2; // paired mode when set
    std::string adapter = "AGATCGGAAGAGCGGTTCAGCAGGAATGCCGAGA";
    std::string adapter2 = "AGATCGGAAGAGCGTCGTGTAGGGAAAGAGTGTA";
    std::size_t max_reads = 0; // 0 = all
    unsigned threads = 1;
    std::size_t chunk = 10000;
    std::string lengths_out;
    // The trimming rule (AdapterRemovalConfig); the defaults here are the recommended setting.
    double threshold = 0.3;
    double min_score = 3.5;
    std::size_t min_overlap = 1;
    double match = 1.0;
    double mismatch = -3.0;
};

[[noreturn]] void usage(const char* what) {
    std::cerr << "adapter_truth: " << what
              << "\nusage: adapter_truth [--fastq PATH] [--fastq2 PATH] [--adapter SEQ] [--adapter2 SEQ] [--max-reads N]"
                 " [--threads N] [--chunk N]"
                 " [--lengths-out PATH] [--threshold TAU_M] [--min-score S] [--min-overlap K] [--match M]"
                 " [--mismatch X]\n";
    std::exit(2);
}

std::size_t parse_count(const std::string& s, const char* flag) {
    try {
        std::size_t used = 0;
        const unsigned long long v = std::stoull(s, &used);
        if (used != s.size()) throw std::invalid_argument(s);
        return static_cast<std::size_t>(v);
    } catch (const std::exception&) {
        usage((std::string("bad number for ") + flag + ": '" + s + "'").c_str());
    }
}

double parse_real(const std::string& s, const char* flag) {
    try {
        std::size_t used = 0;
        const double v = std::stod(s, &used);
        if (used != s.size()) throw std::invalid_argument(s);
        return v;
    } catch (const std::exception&) {
        usage((std::string("bad number for ") + flag + ": '" + s + "'").c_str());
    }
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--fastq") o.fastq = value();
        else if (a == "--fastq2") o.fastq2 = value();
        else if (a == "--adapter") o.adapter = value();
        else if (a == "--adapter2") o.adapter2 = value();
        else if (a == "--max-reads") o.max_reads = parse_count(value(), "--max-reads");
        else if (a == "--threads") o.threads = static_cast<unsigned>(std::max<std::size_t>(1, parse_count(value(), "--threads")));
        else if (a == "--chunk") o.chunk = std::max<std::size_t>(1, parse_count(value(), "--chunk"));
        else if (a == "--lengths-out") o.lengths_out = value();
        else if (a == "--threshold") o.threshold = parse_real(value(), "--threshold");
        else if (a == "--min-score") o.min_score = parse_real(value(), "--min-score");
        else if (a == "--min-overlap") o.min_overlap = parse_count(value(), "--min-overlap");
        else if (a == "--match") o.match = parse_real(value(), "--match");
        else if (a == "--mismatch") o.mismatch = parse_real(value(), "--mismatch");
        else if (a == "-h" || a == "--help") usage("help");
        else usage(("unknown option " + a).c_str());
    }
    return o;
}

/// True trimmed length from "SimSeq_<n>/<insert_len>/<mate>": min(insert_len, read length).
/// Returns false when the name does not have that form.
bool truth_of(const std::string& name, std::uint32_t read_len, std::uint32_t& truth) {
    const auto a = name.find('/');
    if (a == std::string::npos) return false;
    const auto b = name.find('/', a + 1);
    if (b == std::string::npos || b == a + 1) return false;
    std::uint64_t v = 0;
    for (std::size_t k = a + 1; k < b; ++k) {
        const char c = name[k];
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
        if (v > 1000000000ULL) return false;
    }
    truth = static_cast<std::uint32_t>(std::min<std::uint64_t>(v, read_len));
    return true;
}


/// Runs `work(lo, hi)` on `threads` contiguous slices of [0, n) in parallel.
template <class Work>
void in_slices(std::size_t n, unsigned threads, Work&& work) {
    const std::size_t nt = std::min<std::size_t>(threads, n);
    if (nt <= 1) {
        work(std::size_t{0}, n);
        return;
    }
    std::vector<std::thread> pool;
    for (std::size_t t = 0; t < nt; ++t) pool.emplace_back(work, n * t / nt, n * (t + 1) / nt);
    for (auto& th : pool) th.join();
}

/// Reads [lo, hi) of a batch as a view.
diffbio::ops::ReadsView<float, float> slice(const diffbio::ReadBatch& b, std::size_t lo, std::size_t hi) {
    const std::size_t L = b.length;
    return {std::span<const float>(b.one_hot).subspan(lo * L * 4, (hi - lo) * L * 4),
            std::span<const float>(b.quality).subspan(lo * L, (hi - lo) * L),
            std::span<const std::uint32_t>(b.lengths).subspan(lo, hi - lo), hi - lo, L};
}

struct Score {
    std::size_t reads = 0, exact = 0, over = 0, under = 0;
    std::uint64_t over_bases = 0, under_bases = 0;
    void add(std::uint32_t truth, std::uint32_t cut) {
        ++reads;
        if (cut == truth) ++exact;
        else if (cut < truth) { ++over; over_bases += truth - cut; }
        else { ++under; under_bases += cut - truth; }
    }
    double share() const { return reads ? static_cast<double>(exact) / static_cast<double>(reads) : 0.0; }
};

} // namespace

int main(int argc, char** argv) {
    using namespace diffbio;
    const Options opt = parse(argc, argv);
    const bool paired = !opt.fastq2.empty();
    ops::AdapterRemovalConfig cfg;
    ops::MateOverlapConfig mcfg;
    try {
        cfg.adapter_sequence = opt.adapter;
        cfg.match_threshold = opt.threshold;
        cfg.min_score = opt.min_score;
        cfg.min_overlap = opt.min_overlap;
        cfg.match_score = opt.match;
        cfg.mismatch_score = opt.mismatch;
        cfg.validate();
        mcfg = {.adapter1 = opt.adapter, .adapter2 = opt.adapter2, .match_threshold = opt.threshold,
                .match_score = opt.match, .mismatch_score = opt.mismatch, .min_score = opt.min_score};
        mcfg.validate();
    } catch (const std::exception& e) {
        usage(e.what());
    }
    const ops::AdapterRemoval ar(cfg);
    const ops::MateOverlap mo(mcfg);
    if (paired) {
        std::printf("adapter_truth: %s + %s (paired: mate overlap)\n  adapters %s / %s, tau_m %.3g, min_score %.3g, "
                    "match %.3g, mismatch %.3g, threads %u, chunk %zu\n",
                    opt.fastq.c_str(), opt.fastq2.c_str(), opt.adapter.c_str(), opt.adapter2.c_str(), opt.threshold,
                    opt.min_score, opt.match, opt.mismatch, opt.threads, opt.chunk);
    } else {
        std::printf("adapter_truth: %s\n  adapter %s (%zu bp), tau_m %.3g, min_score %.3g, min_overlap %zu, match %.3g, "
                    "mismatch %.3g, threads %u, chunk %zu\n",
                    opt.fastq.c_str(), cfg.adapter_sequence.c_str(), cfg.adapter_sequence.size(), cfg.match_threshold,
                    cfg.min_score, cfg.min_overlap, cfg.match_score, cfg.mismatch_score, opt.threads, opt.chunk);
    }

    std::ofstream lengths_out;
    if (!opt.lengths_out.empty()) {
        lengths_out.open(opt.lengths_out);
        if (!lengths_out) {
            std::cerr << "adapter_truth: cannot write " << opt.lengths_out << "\n";
            return 1;
        }
    }

    Score s1, s2;
    std::size_t no_truth = 0;
    double trim_seconds = 0.0;
    const auto t0 = std::chrono::steady_clock::now();
    try {
        std::optional<io::FastqReader> single;
        std::optional<io::PairedFastqReader> pair;
        if (paired) pair.emplace(opt.fastq, opt.fastq2);
        else single.emplace(opt.fastq);
        std::vector<std::uint32_t> cut;
        std::size_t seen = 0;
        while (opt.max_reads == 0 || seen < opt.max_reads) {
            std::size_t want = opt.chunk;
            if (opt.max_reads != 0) want = std::min(want, opt.max_reads - seen);
            ReadBatch b1, b2;
            const std::size_t got = paired ? pair->read_batch(b1, b2, want) : single->read_batch(b1, want);
            if (got == 0) break;
            seen += got;
            cut.assign(got, 0);
            const auto ts = std::chrono::steady_clock::now();
            in_slices(got, opt.threads, [&](std::size_t lo, std::size_t hi) {
                if (lo >= hi) return;
                const auto c = paired ? mo.insert_lengths(slice(b1, lo, hi), slice(b2, lo, hi))
                                      : ar.trimmed_lengths(slice(b1, lo, hi));
                std::copy(c.begin(), c.end(), cut.begin() + static_cast<std::ptrdiff_t>(lo));
            });
            trim_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
            for (std::size_t i = 0; i < got; ++i) {
                std::uint32_t truth = 0;
                if (!truth_of(b1.names[i], b1.lengths[i], truth)) {
                    ++no_truth;
                    continue;
                }
                const std::uint32_t c1 = std::min(cut[i], b1.lengths[i]);
                s1.add(truth, c1);
                if (paired) {
                    std::uint32_t truth2 = 0;
                    if (truth_of(b2.names[i], b2.lengths[i], truth2)) s2.add(truth2, std::min(cut[i], b2.lengths[i]));
                }
                if (lengths_out) lengths_out << b1.names[i] << '\t' << truth << '\t' << c1 << '\n';
            }
            if (no_truth > 0 && s1.reads == 0) {
                std::cerr << "adapter_truth: read names are not SimSeq_<n>/<insert_len>/<mate> (e.g. '" << b1.names[0]
                          << "')\n";
                return 1;
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "adapter_truth: " << e.what() << "\n";
        return 1;
    }
    const double total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s1.reads == 0) {
        std::cerr << "adapter_truth: no reads\n";
        return 1;
    }
    const std::size_t units = s1.reads; // reads (single end) or pairs
    const char* unit = paired ? "pairs" : "reads";
    std::printf("  %-16s %zu%s\n", unit, units,
                no_truth ? (" (" + std::to_string(no_truth) + " without truth skipped)").c_str() : "");
    std::printf("  exact            %zu  share %.4f%s\n", s1.exact, s1.share(), paired ? " (mate 1)" : "");
    if (paired) std::printf("  exact mate 2     %zu  share %.4f\n", s2.exact, s2.share());
    std::printf("  over-trimmed     %zu  (%llu bases)\n", s1.over, static_cast<unsigned long long>(s1.over_bases));
    std::printf("  under-trimmed    %zu  (%llu bases)\n", s1.under, static_cast<unsigned long long>(s1.under_bases));
    std::printf("  trimming         %.3f s  %.0f %s/s\n", trim_seconds, static_cast<double>(units) / trim_seconds, unit);
    std::printf("  total (with I/O) %.3f s  %.0f %s/s\n", total_seconds, static_cast<double>(units) / total_seconds, unit);
    // Machine-readable last line for scripts.
    std::printf("RESULT\tdiffbio\t%.4f\t%zu\t%zu\t%.3f\n", s1.share(), s1.over, s1.under, total_seconds);
    return 0;
}
