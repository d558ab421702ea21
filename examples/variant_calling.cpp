// variant_calling: trains the whole VariantCallingPipeline (quality threshold θ, the pileup's
// quality transform a, b, the classifier) on simulated reads with a truth VCF, then calls SNVs on
// a held-out simulation and scores them (precision, recall, F1), next to bcftools' calls on the
// same BAM when given.
//
//   variant_calling --ref lambda.fa --bam train.bam --truth train.mutations.vcf
//                   --test-bam test.bam --test-truth test.mutations.vcf [--bcftools test.calls.vcf.gz]
//                   [--steps 200] [--lr 0.01] [--out DIR] [--variant-weight 20]
//
// benchmarks/peers/variant_calling.sh makes the data (dwgsim on the lambda phage, bwa mem,
// samtools) and bcftools' calls, then runs this program and plots the training curve.
// Truth labels per position: a SNV with AF 0.5 (or GT 0/1) is het, AF 1 (1/1) hom-alt; the
// reference positions of indels are left out of the loss and of the scoring; every other
// position is ref. The loss is the class-weighted cross entropy (variant classes weighted by
// --variant-weight). Outputs in --out: training.csv (step, loss, θ, a, b, step seconds),
// calls.vcf (the held-out calls, written with io::VcfWriter) and summary.txt.
// A SNV call is a true positive when the truth has a SNV at that position with the same ALT base.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <diffbio/ad/binder.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/io/alignment.hpp>
#include <diffbio/io/reference.hpp>
#include <diffbio/io/vcf_reader.hpp>
#include <diffbio/io/vcf_writer.hpp>
#include <diffbio/nn/adam.hpp>
#include <diffbio/nn/loss.hpp>
#include <diffbio/pipelines/variant_calling.hpp>

#include "example_args.hpp"

namespace io = diffbio::io;
namespace ad = diffbio::ad;
using diffbio::pipelines::VariantCallingPipeline;
using diffbio::pipelines::VariantCallingPipelineConfig;

namespace {

struct Args {
    std::string ref, bam, truth, test_bam, test_truth, bcftools, out = "variant_calling_out";
    int steps = 200;
    double lr = 0.01, param_lr = 0.05, variant_weight = 20.0;
    std::size_t hidden = 64, window = 11;
    bool quality_weights = true;
};

Args parse(int argc, char** argv) {
    Args a;
    example_args::for_each_arg(argc, argv, [&](const std::string& k, auto& val) {
        if (k == "--ref") a.ref = val();
        else if (k == "--bam") a.bam = val();
        else if (k == "--truth") a.truth = val();
        else if (k == "--test-bam") a.test_bam = val();
        else if (k == "--test-truth") a.test_truth = val();
        else if (k == "--bcftools") a.bcftools = val();
        else if (k == "--out") a.out = val();
        else if (k == "--steps") a.steps = std::stoi(val());
        else if (k == "--lr") a.lr = std::stod(val());
        else if (k == "--param-lr") a.param_lr = std::stod(val());
        else if (k == "--variant-weight") a.variant_weight = std::stod(val());
        else if (k == "--hidden") a.hidden = static_cast<std::size_t>(std::stoul(val()));
        else if (k == "--window") a.window = static_cast<std::size_t>(std::stoul(val()));
        else if (k == "--no-quality-weights") a.quality_weights = false;
        else return false;
        return true;
    });
    if (a.ref.empty() || a.bam.empty() || a.truth.empty()) {
        throw diffbio::InvalidArgument("usage: variant_calling --ref FA --bam BAM --truth VCF [--test-bam BAM --test-truth VCF] "
                                       "[--bcftools VCF] [--steps N] [--out DIR]");
    }
    return a;
}

struct Dataset {
    diffbio::AlignedBatch batch;
    std::vector<std::uint32_t> labels; ///< per position: 0 ref, 1 het, 2 hom
    std::vector<std::uint8_t> mask;    ///< 1: position scored (0 under indels)
    std::map<std::int64_t, char> snv_alt; ///< truth SNVs: position → ALT base
};

/// Reads the BAM with bcftools mpileup's default filters (unmapped, secondary, QC-fail and
/// duplicate records dropped) and labels positions from the truth VCF.
Dataset load(const std::string& bam, const std::string& truth, const std::string& contig, std::size_t L) {
    Dataset d;
    io::AlignmentReaderOptions opt;
    opt.keep_names = false;
    opt.exclude_flags = 0x4 | 0x100 | 0x200 | 0x400;
    io::AlignmentReader in(bam, opt);
    in.read_all(d.batch);
    d.labels.assign(L, 0);
    d.mask.assign(L, 1);
    io::VcfReader tv(truth);
    io::VcfSite s;
    while (tv.next(s)) {
        if (s.contig != contig) continue;
        if (s.is_snv()) {
            int n_alt = s.alt_allele_count();
            if (n_alt < 0) n_alt = s.af >= 0.75 ? 2 : 1;
            d.labels[static_cast<std::size_t>(s.pos)] = static_cast<std::uint32_t>(n_alt);
            d.snv_alt[s.pos] = s.alts[0][0];
        } else {
            // indel: leave the reference positions it touches (and the next one) out
            const std::size_t span = std::max<std::size_t>(s.ref.size(), 1) + 1;
            for (std::size_t k = 0; k < span && static_cast<std::size_t>(s.pos) + k < L; ++k) {
                d.mask[static_cast<std::size_t>(s.pos) + k] = 0;
            }
        }
    }
    return d;
}

struct Score {
    int tp = 0, fp = 0, fn = 0, gt_match = 0;
    double precision() const { return tp + fp > 0 ? double(tp) / (tp + fp) : 0.0; }
    double recall() const { return tp + fn > 0 ? double(tp) / (tp + fn) : 0.0; }
    double f1() const {
        const double p = precision(), r = recall();
        return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
    }
};

/// SNV calls (position → ALT, genotype alt count) against the truth; indel-masked positions are ignored.
Score score(const std::map<std::int64_t, std::pair<char, int>>& calls, const Dataset& d) {
    Score s;
    for (const auto& [pos, c] : calls) {
        if (d.mask[static_cast<std::size_t>(pos)] == 0) continue;
        const auto it = d.snv_alt.find(pos);
        if (it != d.snv_alt.end() && it->second == c.first) {
            ++s.tp;
            if (static_cast<std::uint32_t>(c.second) == d.labels[static_cast<std::size_t>(pos)]) ++s.gt_match;
        } else {
            ++s.fp;
        }
    }
    for (const auto& [pos, alt] : d.snv_alt) {
        const auto it = calls.find(pos);
        if (it == calls.end() || it->second.first != alt) ++s.fn;
    }
    return s;
}

std::map<std::int64_t, std::pair<char, int>> read_calls(const std::string& path, const std::string& contig) {
    std::map<std::int64_t, std::pair<char, int>> calls;
    io::VcfReader in(path);
    io::VcfSite s;
    while (in.next(s)) {
        if (s.contig != contig || !s.is_snv()) continue;
        calls[s.pos] = {s.alts[0][0], s.alt_allele_count()};
    }
    return calls;
}

double median(std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

} // namespace

int main(int argc, char** argv) try {
    const Args args = parse(argc, argv);
    std::filesystem::create_directories(args.out);
    io::ReferenceFasta ref(args.ref);
    const diffbio::ContigInfo contig = ref.contigs().at(0);
    const auto L = static_cast<std::size_t>(contig.length);
    const std::string ref_seq = ref.fetch(contig.name, 0, contig.length);
    std::vector<std::uint8_t> ref_codes(L);
    for (std::size_t p = 0; p < L; ++p) ref_codes[p] = diffbio::base_code(ref_seq[p]);

    const Dataset train = load(args.bam, args.truth, contig.name, L);
    const std::int32_t cid = train.batch.contig_index(contig.name);
    if (cid < 0) throw diffbio::InvalidArgument("contig '" + contig.name + "' is not in " + args.bam);
    std::cout << "training: " << train.batch.num_reads() << " reads, " << L << " positions, " << train.snv_alt.size()
              << " truth SNVs\n";

    VariantCallingPipelineConfig cfg;
    cfg.region = {cid, 0, contig.length};
    cfg.window = args.window;
    cfg.hidden_dim = args.hidden;
    cfg.use_quality_weights = args.quality_weights;
    cfg.seed = 42;
    VariantCallingPipeline pipe(cfg);

    // Targets: class-weighted one-hot rows (0 on indel-masked positions).
    std::vector<double> target(3 * L, 0.0);
    double total_w = 0.0;
    for (std::size_t p = 0; p < L; ++p) {
        if (train.mask[p] == 0) continue;
        const double w = train.labels[p] == 0 ? 1.0 : args.variant_weight;
        target[3 * p + train.labels[p]] = w;
        total_w += w;
    }
    // rescale so that the loss is a weighted mean over the scored positions
    for (double& t : target) t *= static_cast<double>(L) / total_w;

    // Two optimizers: the classifier's weights, and the three scalar parameters (θ, a, b) that
    // live on other scales.
    std::vector<ad::Parameter*> scalars{&pipe.quality_threshold()};
    for (auto* p : pipe.pileup().parameters()) scalars.push_back(p);
    diffbio::nn::Adam adam_net(pipe.classifier().parameters(), {.learning_rate = args.lr});
    diffbio::nn::Adam adam_scalar(scalars, {.learning_rate = args.param_lr});

    std::ofstream csv(args.out + "/training.csv");
    csv << "step,loss,theta,a,b,seconds\n";
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    std::vector<double> step_s;
    pipe.train();
    for (int step = 0; step < args.steps; ++step) {
        const auto t0 = std::chrono::steady_clock::now();
        tape.rewind(start);
        adam_net.zero_grad();
        adam_scalar.zero_grad();
        pipe.set_dropout_seed(static_cast<std::uint64_t>(step) + 1);
        ad::Binder<ad::Var> bind(tape);
        const auto r = pipe.apply(bind, train.batch, std::span<const std::uint8_t>(ref_codes));
        const ad::Var loss = diffbio::nn::cross_entropy_with_logits(std::span<const ad::Var>(r.calls.logits),
                                                                    std::span<const double>(target), L, 3);
        tape.backward(loss);
        bind.accumulate_grad();
        adam_net.step();
        adam_scalar.step();
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        step_s.push_back(secs);
        const double a = cfg.use_quality_weights ? pipe.pileup().quality_scale().values()[0] : 1.0;
        const double b = cfg.use_quality_weights ? pipe.pileup().quality_offset().values()[0] : 0.0;
        csv << step << ',' << loss.value() << ',' << pipe.quality_threshold().values()[0] << ',' << a << ',' << b << ','
            << secs << '\n';
        if (step % 20 == 0 || step + 1 == args.steps) {
            std::cout << "step " << step << "  loss " << loss.value() << "  theta " << pipe.quality_threshold().values()[0]
                      << "  a " << a << "  b " << b << "  (" << secs << " s)" << std::endl;
        }
    }
    const double med = median(step_s);
    std::cout << "training step: median " << med << " s for " << train.batch.num_reads() << " reads = "
              << med * 1e4 / static_cast<double>(train.batch.num_reads()) << " s per 10k reads\n";

    std::ostringstream summary;
    summary << "train_reads " << train.batch.num_reads() << "\nstep_seconds_median " << med << "\nstep_seconds_per_10k_reads "
            << med * 1e4 / static_cast<double>(train.batch.num_reads()) << "\ntheta " << pipe.quality_threshold().values()[0]
            << '\n';
    auto evaluate = [&](const Dataset& d, const std::string& name, const std::string& vcf_path) {
        const auto calls = pipe.call_variants(d.batch, std::span<const std::uint8_t>(ref_codes));
        std::map<std::int64_t, std::pair<char, int>> ours;
        const char* letters = "ACGT";
        io::VcfWriter out(vcf_path, {.contigs = {contig}, .samples = {"sim"}, .extra_lines = {"##source=diffbio variant_calling"}});
        for (const auto& c : calls) {
            ours[c.pos] = {letters[c.alt], c.genotype};
            io::VcfRecord rec;
            rec.contig = contig.name;
            rec.pos = c.pos;
            rec.ref = std::string(1, letters[c.ref]);
            rec.alts = {std::string(1, letters[c.alt])};
            rec.qual = c.quality;
            rec.depth = static_cast<std::int32_t>(std::lround(c.depth));
            rec.genotype = c.genotype == 2 ? std::vector<std::int32_t>{1, 1} : std::vector<std::int32_t>{0, 1};
            const double pw = std::max(1e-300, 1.0 - c.probabilities[static_cast<std::size_t>(c.genotype)]);
            rec.genotype_quality = static_cast<std::int32_t>(std::min(99.0, -10.0 * std::log10(pw)));
            rec.genotype_probs = {static_cast<float>(c.probabilities[0]), static_cast<float>(c.probabilities[1]),
                                  static_cast<float>(c.probabilities[2])};
            out.write(rec);
        }
        out.close();
        const Score s = score(ours, d);
        std::printf("%-28s SNVs: TP %3d FP %3d FN %3d  precision %.4f recall %.4f F1 %.4f  (genotype right for %d of %d TP)\n",
                    name.c_str(), s.tp, s.fp, s.fn, s.precision(), s.recall(), s.f1(), s.gt_match, s.tp);
        summary << name << " tp " << s.tp << " fp " << s.fp << " fn " << s.fn << " precision " << s.precision() << " recall "
                << s.recall() << " f1 " << s.f1() << " genotype_match " << s.gt_match << '\n';
    };
    evaluate(train, "diffbio (training genome)", args.out + "/train_calls.vcf");
    if (!args.test_bam.empty()) {
        const Dataset test = load(args.test_bam, args.test_truth, contig.name, L);
        std::cout << "held-out: " << test.batch.num_reads() << " reads, " << test.snv_alt.size() << " truth SNVs\n";
        evaluate(test, "diffbio (held-out genome)", args.out + "/calls.vcf");
        if (!args.bcftools.empty()) {
            const Score s = score(read_calls(args.bcftools, contig.name), test);
            std::printf("%-28s SNVs: TP %3d FP %3d FN %3d  precision %.4f recall %.4f F1 %.4f  (genotype right for %d of %d TP)\n",
                        "bcftools call (held-out)", s.tp, s.fp, s.fn, s.precision(), s.recall(), s.f1(), s.gt_match, s.tp);
            summary << "bcftools tp " << s.tp << " fp " << s.fp << " fn " << s.fn << " precision " << s.precision() << " recall "
                    << s.recall() << " f1 " << s.f1() << " genotype_match " << s.gt_match << '\n';
        }
    }
    std::ofstream(args.out + "/summary.txt") << summary.str();
    return 0;
} catch (const std::exception& e) {
    std::cerr << "variant_calling: " << e.what() << '\n';
    return 1;
}
