// hmm_globins: diffbio's ProfileHmm against HMMER on the tutorial globins (Debian: hmmer-examples).
//
// Builds a profile from an alignment (default: HMMER's tutorial globins4.sto, 4 globins) with
// ProfileHmm::from_msa, scores every sequence of a FASTA file (default: globins45.fa) with the
// tempered forward log-odds at τ = 1 (bits), and, given hmmsearch's --tblout table of the same
// search, prints both scores side by side with their Spearman and Pearson correlations.
// With --hmm (hmmbuild's model of the same alignment) it also scores the sequences with HMMER's
// own parameters in diffbio's forward (inserts emitting the background, as in HMMER's search
// profiles), which separates model estimation from the algorithm.
//
//   hmm_globins [--msa FILE] [--fasta FILE] [--tblout FILE] [--hmm FILE] [--tau T] [--threads N]
//               [--neff X] [--pseudocount A]
//
// --neff and --pseudocount set MsaProfileOptions::effective_sequences (default: the number of
// sequences) and emission_pseudocount (default 1): the weight of the alignment's counts against
// the background prior.
//
// benchmarks/peers/hmm_globins.sh runs hmmbuild and hmmsearch and then this program.
// Sequences missing from the table are listed and left out of the correlations.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/exec/policy.hpp>
#include <diffbio/ops/alignment/msa.hpp>
#include <diffbio/ops/alignment/profile_hmm.hpp>

namespace ops = diffbio::ops;

namespace {

const std::string tutorial = "/usr/share/doc/hmmer/examples/tutorial/";

struct Hit {
    double score = 0.0; // full-sequence bit score (after HMMER's null2 bias correction)
    double bias = 0.0;  // that correction, bits
};

/// hmmsearch --tblout: target name (column 1), full-sequence score (6) and bias (7).
std::map<std::string, Hit> read_tblout(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw diffbio::Error("cannot open '" + path + "'");
    std::map<std::string, Hit> hits;
    std::string line;
    long n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.empty() || line[0] == '#') continue;
        std::istringstream f(line);
        std::string target, acc, query, qacc, evalue;
        Hit h;
        if (!(f >> target >> acc >> query >> qacc >> evalue >> h.score >> h.bias)) {
            throw diffbio::ParseError(path, n, "not an hmmsearch --tblout line");
        }
        hits.emplace(target, h);
    }
    return hits;
}

/// HMMER3 text model (protein) → ProfileHmm with HMMER's match emissions and core transitions
/// (probabilities stored as −ln p; '*' is p = 0, mapped to a logit of −1000). Entry stays uniform,
/// inserts emit the background. Nodes 1..M are diffbio's 0..M−1.
ops::ProfileHmm read_hmmer3(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw diffbio::Error("cannot open '" + path + "'");
    std::string line;
    long n = 0;
    std::size_t M = 0;
    auto next = [&]() -> std::vector<std::string> {
        if (!std::getline(in, line)) throw diffbio::ParseError(path, n, "unexpected end of the HMMER3 file");
        ++n;
        std::istringstream f(line);
        std::vector<std::string> t;
        for (std::string w; f >> w;) t.push_back(w);
        return t;
    };
    auto value = [&](const std::string& w) {
        if (w == "*") return -1000.0;
        return -std::stod(w);
    };
    std::vector<std::string> t;
    for (t = next(); t.empty() || t[0] != "HMM"; t = next()) {
        if (!t.empty() && t[0] == "LENG") M = std::stoul(t.at(1));
        if (!t.empty() && t[0] == "ALPH" && t.at(1) != "amino")
            throw diffbio::ParseError(path, n, "not a protein model");
    }
    if (M == 0) throw diffbio::ParseError(path, n, "no LENG line before the HMM block");
    next(); // transition labels
    t = next();
    if (!t.empty() && t[0] == "COMPO") t = next(); // node 0 insert emissions
    next();                                        // node 0 transitions
    ops::ProfileHmm hmm({.length = M, .tie_insert_emissions = true});
    const std::size_t K = 20;
    for (std::size_t k = 0; k < M; ++k) {
        t = next();
        if (t.size() < K + 1 || std::stoul(t[0]) != k + 1)
            throw diffbio::ParseError(path, n, "expected match line of node " + std::to_string(k + 1));
        for (std::size_t a = 0; a < K; ++a) hmm.match_logits().values()[k * K + a] = value(t[1 + a]);
        next(); // insert emissions (HMMER scores inserts as background)
        t = next();
        if (t.size() != 7) throw diffbio::ParseError(path, n, "expected 7 transitions");
        if (k + 1 < M) {
            for (std::size_t j = 0; j < 7; ++j) hmm.transition_logits().values()[k * 7 + j] = value(t[j]);
        }
    }
    return hmm;
}

std::vector<double> ranks(const std::vector<double>& x) {
    std::vector<std::size_t> idx(x.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
    std::vector<double> r(x.size());
    for (std::size_t i = 0; i < idx.size();) {
        std::size_t j = i;
        while (j + 1 < idx.size() && x[idx[j + 1]] == x[idx[i]]) ++j;
        for (std::size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * static_cast<double>(i + j) + 1.0; // average rank of ties
        i = j + 1;
    }
    return r;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
    const double n = static_cast<double>(x.size());
    const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
    double sxy = 0.0, sxx = 0.0, syy = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxy / std::sqrt(sxx * syy);
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) { return pearson(ranks(x), ranks(y)); }

std::vector<double> bits_of(const ops::ProfileHmm& hmm, const ops::SequenceBatch& b, int threads, double& ms) {
    diffbio::ad::Binder<double> bind;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<double> bits = hmm.apply(bind, b, diffbio::exec::CpuParallel{threads}).bits;
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return bits;
}

} // namespace

int main(int argc, char** argv) {
    std::string msa_path = tutorial + "globins4.sto", fasta_path = tutorial + "globins45.fa", tbl_path, hmm_path;
    double tau = 1.0;
    int threads = 2;
    ops::MsaProfileOptions options;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto arg = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "hmm_globins: " << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--msa") msa_path = arg();
        else if (a == "--fasta") fasta_path = arg();
        else if (a == "--tblout") tbl_path = arg();
        else if (a == "--hmm") hmm_path = arg();
        else if (a == "--tau") tau = std::stod(arg());
        else if (a == "--threads") threads = std::stoi(arg());
        else if (a == "--neff") options.effective_sequences = std::stod(arg());
        else if (a == "--pseudocount") options.emission_pseudocount = std::stod(arg());
        else {
            std::cerr << "usage: hmm_globins [--msa FILE] [--fasta FILE] [--tblout FILE] [--hmm FILE] [--tau T] "
                         "[--threads N] [--neff X] [--pseudocount A]\n";
            return 2;
        }
    }
    try {
        const ops::Msa msa = ops::read_msa(msa_path, ops::SequenceAlphabet::protein);
        ops::ProfileHmm hmm = ops::ProfileHmm::from_msa(msa, {}, options);
        hmm.set_temperature(tau);
        const auto recs = ops::read_fasta(fasta_path, ops::SequenceAlphabet::protein);
        ops::SequenceBatch batch;
        for (const auto& r : recs) batch.add(ops::SequenceAlphabet::protein, r.sequence);
        double ms = 0.0, ms_h = 0.0;
        const std::vector<double> ours = bits_of(hmm, batch, threads, ms);
        std::vector<double> theirs_params;
        if (!hmm_path.empty()) {
            ops::ProfileHmm h = read_hmmer3(hmm_path);
            h.set_temperature(tau);
            theirs_params = bits_of(h, batch, threads, ms_h);
        }
        std::map<std::string, Hit> hits;
        if (!tbl_path.empty()) hits = read_tblout(tbl_path);

        std::printf("profile: %s (%zu sequences, %zu columns) -> %zu match states; tau = %g\n", msa_path.c_str(),
                    msa.size(), msa.columns(), hmm.length(), tau);
        std::printf("targets: %s (%zu sequences), scored in %.2f ms (%d threads)\n\n", fasta_path.c_str(), recs.size(),
                    ms, threads);
        std::printf("%-12s %5s %12s", "sequence", "L", "diffbio_bits");
        if (!theirs_params.empty()) std::printf(" %14s", "diffbio_hmmer");
        if (!tbl_path.empty()) std::printf(" %14s %10s", "hmmsearch_bits", "bias");
        std::printf("\n");
        std::vector<double> x, xh, y, yb;
        std::vector<std::string> missing;
        for (std::size_t n = 0; n < recs.size(); ++n) {
            std::printf("%-12s %5zu %12.2f", recs[n].name.c_str(), recs[n].sequence.size(), ours[n]);
            if (!theirs_params.empty()) std::printf(" %14.2f", theirs_params[n]);
            if (!tbl_path.empty()) {
                const auto it = hits.find(recs[n].name);
                if (it == hits.end()) {
                    std::printf(" %14s %10s", "-", "-");
                    missing.push_back(recs[n].name);
                } else {
                    std::printf(" %14.1f %10.1f", it->second.score, it->second.bias);
                    x.push_back(ours[n]);
                    if (!theirs_params.empty()) xh.push_back(theirs_params[n]);
                    y.push_back(it->second.score);
                    yb.push_back(it->second.score + it->second.bias);
                }
            }
            std::printf("\n");
        }
        if (!tbl_path.empty()) {
            std::printf("\n%zu of %zu sequences in hmmsearch's table", y.size(), recs.size());
            if (!missing.empty()) {
                std::printf(" (left out:");
                for (const auto& m : missing) std::printf(" %s", m.c_str());
                std::printf(")");
            }
            std::printf("\n");
            if (y.size() >= 3) {
                std::printf("%-50s %9s %9s\n", "correlation with hmmsearch", "Spearman", "Pearson");
                std::printf("%-50s %9.4f %9.4f\n", "diffbio profile from the MSA vs bit score", spearman(x, y),
                            pearson(x, y));
                std::printf("%-50s %9.4f %9.4f\n", "diffbio profile from the MSA vs score + bias", spearman(x, yb),
                            pearson(x, yb));
                if (!xh.empty()) {
                    std::printf("%-50s %9.4f %9.4f\n", "diffbio with hmmbuild's parameters vs bit score",
                                spearman(xh, y), pearson(xh, y));
                    std::printf("%-50s %9.4f %9.4f\n", "diffbio with hmmbuild's parameters vs score + bias",
                                spearman(xh, yb), pearson(xh, yb));
                }
                std::printf("RESULT\tspearman\t%.4f\tpearson\t%.4f\n", spearman(x, y), pearson(x, y));
            }
        }
    } catch (const std::exception& e) { // diffbio::Error, and std::stod's errors
        std::cerr << "hmm_globins: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
