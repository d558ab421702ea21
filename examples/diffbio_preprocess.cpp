// diffbio_preprocess: learn the preprocessing pipeline's parameters on a sample of reads, then
// apply them (hardened: adapter cut, 3' quality trim, low-quality masking, length filter) to a
// whole FASTQ file or pair of files, streaming in chunks.
//
//   diffbio_preprocess learn --in R1.fq.gz [--in2 R2.fq.gz] --out params.json [options]
//   diffbio_preprocess apply --in R1.fq.gz [--in2 R2.fq.gz] --params params.json
//                            --out trimmed.fq.gz [--out2 trimmed2.fq.gz] [--report report.json]
//
// Exit codes: 0 ok, 1 runtime error (unreadable or malformed input, unwritable output),
// 2 usage error (bad arguments), 3 parameter file error (missing, not JSON, wrong format
// version, a missing or ill-typed key, a missing or size-mismatched parameter).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <diffbio/diffbio.hpp>
#include <diffbio/io/fastq.hpp>
#include <diffbio/io/fastq_writer.hpp>
#include <diffbio/io/paired.hpp>
#include <diffbio/pipelines/preprocessing.hpp>

namespace ad = diffbio::ad;
namespace io = diffbio::io;
using diffbio::ReadBatch;
using diffbio::pipelines::HardenedReads;
using diffbio::pipelines::PreprocessingPipeline;
using diffbio::pipelines::PreprocessingPipelineConfig;
using json = nlohmann::json;

namespace {

constexpr const char* program = "diffbio_preprocess";
constexpr int params_format_version = 1;
constexpr const char* params_format_name = "diffbio_preprocess.params";
constexpr const char* objective_name = "retained-signal";

enum ExitCode : int { exit_ok = 0, exit_runtime = 1, exit_usage = 2, exit_params = 3 };

/// A problem with the parameter file (exit code 3).
class ParamsError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A problem with the arguments found after parsing (exit code 2).
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

std::string version_string() {
    return std::to_string(DIFFBIO_VERSION_MAJOR) + "." + std::to_string(DIFFBIO_VERSION_MINOR) + "." +
           std::to_string(DIFFBIO_VERSION_PATCH);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// A line on stderr about every second, only when stderr is a terminal.
class Progress {
public:
    explicit Progress(std::string what) : what_(std::move(what)), enabled_(isatty(2) == 1) {}
    void update(const std::string& text) {
        if (!enabled_) return;
        const auto now = std::chrono::steady_clock::now();
        if (std::chrono::duration<double>(now - last_).count() < 1.0) return;
        last_ = now;
        std::fprintf(stderr, "\r%s: %s: %s\033[K", program, what_.c_str(), text.c_str());
        std::fflush(stderr);
        shown_ = true;
    }
    void finish() {
        if (shown_) std::fputc('\n', stderr);
        shown_ = false;
    }
    ~Progress() { finish(); }

private:
    std::string what_;
    bool enabled_;
    bool shown_ = false;
    std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

struct LearnOptions {
    std::string in, in2, out;
    std::size_t sample = 20000;
    int steps = 100;
    double lr = 0.5;
    double adapter_lr = 0.01;
    int threads = 1;
    std::string adapter = "AGATCGGAAGAG";
    std::string adapter2; ///< mate 2's adapter ("" = the same as --adapter)
    double quality_threshold = 20.0;
    double q_high = 30.0;
    double q_low = 15.0;
    std::string objective = objective_name;
    std::size_t min_length = 15;
    bool no_adapter = false;
    bool train_adapter = false;
    bool duplicates = false;
    bool error_correction = false;
    std::uint64_t seed = 0;
};

struct ApplyOptions {
    std::string in, in2, params, out, out2, report;
    int threads = 1;
    std::size_t chunk = 10000;
    bool no_mask = false;
    bool drop_duplicates = false;
    int compression_level = 4; ///< gzip level of .gz outputs (fastp's default is 4 too)
    std::optional<std::size_t> min_length;
};

// ---------------------------------------------------------------------------------------------
// learn
// ---------------------------------------------------------------------------------------------

/// The first `max_reads` reads (pairs: both mates of the first max_reads/2 pairs, rounded up).
ReadBatch read_sample(const LearnOptions& o) {
    ReadBatch batch;
    if (o.in2.empty()) {
        io::FastqReader reader(o.in);
        reader.read_batch(batch, o.sample);
        return batch;
    }
    io::PairedFastqReader reader(o.in, o.in2);
    ReadBatch b2;
    reader.read_batch(batch, b2, (o.sample + 1) / 2);
    for (std::size_t i = 0; i < b2.num_reads; ++i) {
        batch.add(b2.names[i], b2.sequence(i), b2.read_quality(i).first(b2.lengths[i]), b2.comments[i]);
    }
    return batch;
}

/// The retained-signal objective as constant coefficients on the per-base retention:
///   loss = mean_bases((1 − r)·[q > q_high] + r·[q < q_low]) = (C + Σ c_k r_k) / n
/// with c_k = −1 for q > q_high, +1 for q < q_low, 0 otherwise, C = #(q > q_high).
struct RetainedSignal {
    std::vector<double> coef; ///< [N × L], 0 in padding
    double constant = 0.0;
    double scale = 1.0;       ///< 1 / number of real bases

    RetainedSignal(const ReadBatch& b, double q_high, double q_low) : coef(b.num_reads * b.length, 0.0) {
        std::size_t count = 0;
        for (std::size_t i = 0; i < b.num_reads; ++i) {
            for (std::size_t l = 0; l < b.lengths[i]; ++l) {
                const double q = b.quality[i * b.length + l];
                double& c = coef[i * b.length + l];
                if (q > q_high) {
                    c = -1.0;
                    constant += 1.0;
                } else if (q < q_low) {
                    c = 1.0;
                }
                ++count;
            }
        }
        scale = count > 0 ? 1.0 / static_cast<double>(count) : 0.0;
    }

    /// The loss as one node on the tape (retention: the pipeline's per-base retention Vars).
    ad::Var operator()(ad::Tape& tape, std::span<const ad::Var> retention) const {
        double v = constant;
        for (std::size_t k = 0; k < retention.size(); ++k) {
            if (coef[k] != 0.0) v += coef[k] * tape.value(retention[k]);
        }
        v *= scale;
        const std::vector<double>* c = &coef;
        const double s = scale;
        const auto out = tape.record_node({retention}, std::span<const double>(&v, 1), [c, s](const ad::NodeGrad& g) {
            const auto adj = g.in_adjoint(0);
            const double a = g.out_adjoint()[0] * s;
            for (std::size_t k = 0; k < adj.size(); ++k) adj[k] += (*c)[k] * a;
        });
        return out[0];
    }
};

json config_to_json(const PreprocessingPipelineConfig& c) {
    return json{{"read_length", c.read_length},
                {"quality_threshold", c.quality_threshold},
                {"adapter_sequence", c.adapter_sequence},
                {"adapter_sequence2", c.adapter_sequence2},
                {"adapter_match_score", c.adapter_match_score},
                {"adapter_mismatch_score", c.adapter_mismatch_score},
                // JSON has no infinity: the default "no floor" (−∞) is written as null
                {"adapter_min_score", std::isfinite(c.adapter_min_score) ? json(c.adapter_min_score) : json(nullptr)},
                {"adapter_match_threshold", c.adapter_match_threshold},
                {"adapter_temperature", c.adapter_temperature},
                {"duplicate_similarity_threshold", c.duplicate_similarity_threshold},
                {"error_correction_window", c.error_correction_window},
                {"error_correction_hidden_dim", c.error_correction_hidden_dim},
                {"enable_adapter_removal", c.enable_adapter_removal},
                {"enable_duplicate_weighting", c.enable_duplicate_weighting},
                {"enable_error_correction", c.enable_error_correction},
                {"quality_softness", c.quality_softness},
                {"adapter_min_overlap", c.adapter_min_overlap},
                {"min_length", c.min_length},
                {"mask_low_quality", c.mask_low_quality},
                {"seed", c.seed}};
}

PreprocessingPipelineConfig learn_config(const LearnOptions& o, std::size_t read_length) {
    PreprocessingPipelineConfig cfg;
    cfg.read_length = std::max<std::size_t>(read_length, 1);
    cfg.quality_threshold = o.quality_threshold;
    cfg.adapter_sequence = o.adapter;
    cfg.adapter_sequence2 = o.adapter2;
    cfg.enable_adapter_removal = !o.no_adapter;
    cfg.enable_duplicate_weighting = o.duplicates;
    cfg.enable_error_correction = o.error_correction;
    cfg.min_length = o.min_length;
    cfg.seed = o.seed;
    return cfg;
}

int run_learn(const LearnOptions& o) {
    if (o.q_low > o.q_high) throw UsageError("--q-low (" + std::to_string(o.q_low) + ") is above --q-high (" +
                                             std::to_string(o.q_high) + ")");
    // Validate the configuration before reading anything (a bad adapter is a usage error).
    try {
        PreprocessingPipeline check(learn_config(o, 150));
    } catch (const diffbio::InvalidArgument& e) {
        throw UsageError(e.what());
    }
    const auto t0 = std::chrono::steady_clock::now();
    const ReadBatch batch = read_sample(o);
    const PreprocessingPipelineConfig cfg = learn_config(o, batch.length);
    PreprocessingPipeline pipeline(cfg);
    std::fprintf(stderr, "%s: learn: %zu reads (padded length %zu) from %s%s%s\n", program, batch.num_reads, batch.length,
                 o.in.c_str(), o.in2.empty() ? "" : " + ", o.in2.c_str());

    // Quality threshold (and the other enabled stages' parameters) at --lr; the adapter stage only
    // with --train-adapter, at --adapter-lr (its entries are one-hot rows and scores of order 1).
    std::vector<ad::Parameter*> main_params, adapter_params;
    std::vector<ad::Parameter*> adapter_own;
    if (cfg.enable_adapter_removal) adapter_own = pipeline.adapter_removal().parameters();
    for (ad::Parameter* p : pipeline.parameters()) {
        const bool is_adapter = std::find(adapter_own.begin(), adapter_own.end(), p) != adapter_own.end();
        if (!is_adapter) main_params.push_back(p);
        else if (o.train_adapter) adapter_params.push_back(p);
    }
    diffbio::nn::Adam adam_main(main_params, {.learning_rate = o.lr});
    std::unique_ptr<diffbio::nn::Adam> adam_adapter;
    if (!adapter_params.empty()) adam_adapter = std::make_unique<diffbio::nn::Adam>(adapter_params, diffbio::nn::AdamConfig{.learning_rate = o.adapter_lr});

    const RetainedSignal objective(batch, o.q_high, o.q_low);
    const diffbio::exec::CpuParallel policy{o.threads};
    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    std::vector<double> losses;
    Progress progress("learn");
    for (int step = 0; step <= o.steps; ++step) {
        tape.rewind(start);
        for (ad::Parameter* p : pipeline.parameters()) p->zero_grad();
        ad::Binder<ad::Var> bind(tape);
        const auto r = pipeline.apply(bind, batch, policy);
        const ad::Var loss = objective(tape, r.retention);
        losses.push_back(tape.value(loss));
        progress.update("step " + std::to_string(step) + "/" + std::to_string(o.steps) + ", loss " +
                        std::to_string(losses.back()));
        if (step == o.steps) break;
        tape.backward(loss);
        bind.accumulate_grad();
        adam_main.step();
        if (adam_adapter) adam_adapter->step();
    }
    progress.finish();
    const double seconds = seconds_since(t0);

    json parameters = json::object();
    for (const ad::Parameter* p : pipeline.parameters()) {
        parameters[p->name()] = std::vector<double>(p->values().begin(), p->values().end());
    }
    json trained = json::array();
    for (const ad::Parameter* p : main_params) trained.push_back(p->name());
    for (const ad::Parameter* p : adapter_params) trained.push_back(p->name());
    json inputs = json::array({o.in});
    if (!o.in2.empty()) inputs.push_back(o.in2);

    const json doc{
        {"format", params_format_name},
        {"format_version", params_format_version},
        {"diffbio_version", version_string()},
        {"config", config_to_json(cfg)},
        {"parameters", parameters},
        {"objective",
         {{"name", o.objective},
          {"formula", "mean over bases of (1 - retention)*[q > q_high] + retention*[q < q_low], "
                      "retention = quality weight * adapter retention"},
          {"q_high", o.q_high},
          {"q_low", o.q_low}}},
        {"training",
         {{"optimizer", "adam"},
          {"steps", o.steps},
          {"learning_rate", o.lr},
          {"adapter_learning_rate", o.adapter_lr},
          {"trained_parameters", trained},
          {"initial_loss", losses.front()},
          {"final_loss", losses.back()},
          {"loss_trace", losses},
          {"sample_size", batch.num_reads},
          {"seconds", seconds}}},
        {"inputs", inputs}};

    std::ofstream f(o.out);
    if (!f) throw diffbio::Error(o.out + ": cannot create the parameter file");
    f << doc.dump(2) << '\n';
    f.close();
    if (!f) throw diffbio::Error(o.out + ": cannot write the parameter file");
    std::fprintf(stderr, "%s: learn: %d steps in %.2f s, loss %.5f -> %.5f, quality threshold %.3f; wrote %s\n", program,
                 o.steps, seconds, losses.front(), losses.back(), pipeline.quality_filter().threshold()[0], o.out.c_str());
    return exit_ok;
}

// ---------------------------------------------------------------------------------------------
// apply
// ---------------------------------------------------------------------------------------------

/// Reads doc[key] as T, or throws ParamsError naming the file and the key.
template <class T>
T get_key(const json& obj, const std::string& key, const std::string& where, const std::string& file) {
    if (!obj.is_object() || !obj.contains(key)) throw ParamsError(file + ": missing key '" + where + key + "'");
    const json& v = obj.at(key);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        // nlohmann's get<T> would wrap −1 into SIZE_MAX and cast 1e308 or 2.5 with undefined
        // behaviour: an integer key must hold an integer JSON number within T's range.
        // (the parser stores non-negative integers as unsigned, negative ones as signed)
        constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<T>::max());
        const bool in_range =
            v.is_number_unsigned()
                ? v.get<std::uint64_t>() <= max
                : !std::is_unsigned_v<T> && v.is_number_integer() &&
                      v.get<std::int64_t>() >= static_cast<std::int64_t>(std::numeric_limits<T>::min());
        if (!in_range) {
            throw ParamsError(file + ": key '" + where + key + "' must be " +
                              (std::is_unsigned_v<T> ? "a non-negative integer" : "an integer") + " in range, not " +
                              v.dump());
        }
    }
    try {
        return v.get<T>();
    } catch (const json::exception&) {
        throw ParamsError(file + ": key '" + where + key + "' has the wrong type (" + v.type_name() + ")");
    }
}

/// doc[key] as T when present, else `fallback` (keys added after format_version 1 was fixed).
template <class T>
T get_key_or(const json& obj, const std::string& key, const std::string& where, const std::string& file, T fallback) {
    if (!obj.contains(key)) return fallback;
    return get_key<T>(obj, key, where, file);
}

/// Builds the pipeline from a parameter file written by `learn`.
PreprocessingPipeline load_pipeline(const std::string& file, json& doc) {
    std::ifstream f(file);
    if (!f) throw ParamsError(file + ": cannot open the parameter file");
    try {
        doc = json::parse(f);
    } catch (const json::parse_error& e) {
        throw ParamsError(file + ": not valid JSON: " + e.what());
    }
    if (!doc.is_object()) throw ParamsError(file + ": the parameter file must hold a JSON object");
    const auto format = get_key<std::string>(doc, "format", "", file);
    if (format != params_format_name) {
        throw ParamsError(file + ": key 'format' is '" + format + "', expected '" + params_format_name + "'");
    }
    const auto version = get_key<int>(doc, "format_version", "", file);
    if (version != params_format_version) {
        throw ParamsError(file + ": format_version " + std::to_string(version) + " is not supported (this program reads " +
                          std::to_string(params_format_version) + ")");
    }
    if (!doc.contains("config") || !doc["config"].is_object()) throw ParamsError(file + ": missing key 'config'");
    const json& c = doc["config"];
    PreprocessingPipelineConfig cfg;
    cfg.read_length = get_key<std::size_t>(c, "read_length", "config.", file);
    cfg.quality_threshold = get_key<double>(c, "quality_threshold", "config.", file);
    cfg.adapter_sequence = get_key<std::string>(c, "adapter_sequence", "config.", file);
    cfg.adapter_sequence2 = get_key_or<std::string>(c, "adapter_sequence2", "config.", file, "");
    cfg.adapter_match_score = get_key_or<double>(c, "adapter_match_score", "config.", file, cfg.adapter_match_score);
    cfg.adapter_mismatch_score = get_key_or<double>(c, "adapter_mismatch_score", "config.", file, cfg.adapter_mismatch_score);
    if (c.contains("adapter_min_score") && !c["adapter_min_score"].is_null()) {
        cfg.adapter_min_score = get_key<double>(c, "adapter_min_score", "config.", file);
    }
    cfg.adapter_match_threshold = get_key<double>(c, "adapter_match_threshold", "config.", file);
    cfg.adapter_temperature = get_key<double>(c, "adapter_temperature", "config.", file);
    cfg.duplicate_similarity_threshold = get_key<double>(c, "duplicate_similarity_threshold", "config.", file);
    cfg.error_correction_window = get_key<std::size_t>(c, "error_correction_window", "config.", file);
    cfg.error_correction_hidden_dim = get_key<std::size_t>(c, "error_correction_hidden_dim", "config.", file);
    cfg.enable_adapter_removal = get_key<bool>(c, "enable_adapter_removal", "config.", file);
    cfg.enable_duplicate_weighting = get_key<bool>(c, "enable_duplicate_weighting", "config.", file);
    cfg.enable_error_correction = get_key<bool>(c, "enable_error_correction", "config.", file);
    cfg.quality_softness = get_key<double>(c, "quality_softness", "config.", file);
    cfg.adapter_min_overlap = get_key<std::size_t>(c, "adapter_min_overlap", "config.", file);
    cfg.min_length = get_key<std::size_t>(c, "min_length", "config.", file);
    cfg.mask_low_quality = get_key<bool>(c, "mask_low_quality", "config.", file);
    cfg.seed = get_key<std::uint64_t>(c, "seed", "config.", file);

    std::optional<PreprocessingPipeline> pipeline;
    try {
        pipeline.emplace(cfg);
    } catch (const diffbio::InvalidArgument& e) {
        throw ParamsError(file + ": invalid config: " + e.what());
    }
    if (!doc.contains("parameters") || !doc["parameters"].is_object()) throw ParamsError(file + ": missing key 'parameters'");
    const json& params = doc["parameters"];
    std::map<std::string, bool> used;
    for (ad::Parameter* p : pipeline->parameters()) {
        const std::string key = "parameters." + p->name();
        if (!params.contains(p->name())) throw ParamsError(file + ": missing key '" + key + "'");
        const json& v = params[p->name()];
        if (!v.is_array()) throw ParamsError(file + ": key '" + key + "' must be an array of numbers");
        if (v.size() != p->size()) {
            throw ParamsError(file + ": key '" + key + "' has " + std::to_string(v.size()) + " values, the pipeline expects " +
                              std::to_string(p->size()));
        }
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (!v[i].is_number() || !std::isfinite(v[i].get<double>())) {
                throw ParamsError(file + ": key '" + key + "[" + std::to_string(i) + "]' is not a finite number");
            }
            p->values()[i] = v[i].get<double>();
        }
        used[p->name()] = true;
    }
    for (const auto& [name, value] : params.items()) {
        (void)value;
        if (!used.count(name)) {
            throw ParamsError(file + ": key 'parameters." + name + "' names no parameter of the configured pipeline");
        }
    }
    return std::move(*pipeline);
}

struct ApplyStats {
    std::uint64_t reads_in = 0, reads_out = 0, dropped = 0, bases_in = 0, bases_out = 0, adapter_trimmed = 0,
                  masked_bases = 0, duplicates = 0;
};

/// Runs job(t) for t < used, one thread per part; rethrows the first error.
template <class Job>
void for_parts(std::size_t used, Job&& job) {
    if (used == 1) {
        job(0);
        return;
    }
    std::vector<std::exception_ptr> errors(used);
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < used; ++t) {
        workers.emplace_back([&, t] {
            try {
                job(t);
            } catch (...) {
                errors[t] = std::current_exception();
            }
        });
    }
    for (auto& w : workers) w.join();
    for (const auto& e : errors) {
        if (e) std::rethrow_exception(e);
    }
}

/// The kept part of read i (masked bases as 'N' unless mask is false).
void kept_read(const ReadBatch& b, const HardenedReads& h, std::size_t i, bool mask, std::string& seq,
               std::vector<float>& qual, ApplyStats& s) {
    const std::uint32_t keep = h.kept_length[i];
    seq = b.sequence(i);
    seq.resize(keep);
    if (mask) {
        for (std::uint32_t l = 0; l < keep; ++l) {
            if (h.masked[i * h.length + l]) {
                seq[l] = 'N';
                ++s.masked_bases;
            }
        }
    }
    const auto q = b.read_quality(i);
    qual.assign(q.begin(), q.begin() + keep);
}

void count_in(const ReadBatch& b, const HardenedReads& h, ApplyStats& s) {
    for (std::size_t i = 0; i < b.num_reads; ++i) {
        ++s.reads_in;
        s.bases_in += b.lengths[i];
        if (h.adapter_cut[i] < b.lengths[i]) ++s.adapter_trimmed;
        if (h.duplicate[i]) ++s.duplicates;
    }
}

int run_apply(const ApplyOptions& o) {
    if (!o.in2.empty() && o.out2.empty()) throw UsageError("--in2 needs --out2 (the trimmed mate-2 file)");
    if (o.in2.empty() && !o.out2.empty()) throw UsageError("--out2 needs --in2");
    json params_doc;
    PreprocessingPipeline pipeline = [&] {
        PreprocessingPipeline p = load_pipeline(o.params, params_doc);
        if (!o.no_mask && !o.min_length) return p;
        PreprocessingPipelineConfig cfg = p.config();
        if (o.no_mask) cfg.mask_low_quality = false;
        if (o.min_length) cfg.min_length = *o.min_length;
        PreprocessingPipeline q(cfg);
        auto src = p.parameters();
        auto dst = q.parameters();
        for (std::size_t k = 0; k < src.size(); ++k) std::copy(src[k]->values().begin(), src[k]->values().end(), dst[k]->values().begin());
        return q;
    }();
    if (o.drop_duplicates && !pipeline.config().enable_duplicate_weighting) {
        throw UsageError("--drop-duplicates: " + o.params +
                         " was learned without duplicate weighting (run 'learn' with --duplicates)");
    }
    const bool mask = pipeline.config().mask_low_quality;
    const bool paired = !o.in2.empty();
    const auto t0 = std::chrono::steady_clock::now();

    std::optional<io::FastqReader> single;
    std::optional<io::PairedFastqReader> pair;
    if (paired) pair.emplace(o.in, o.in2);
    else single.emplace(o.in);
    const io::PhredEncoding enc1 = paired ? pair->first().encoding() : single->encoding();
    const io::PhredEncoding enc2 = paired ? pair->second().encoding() : enc1;
    io::FastqWriter w1(o.out, io::has_gz_suffix(o.out), o.compression_level);
    std::optional<io::FastqWriter> w2;
    if (paired) w2.emplace(o.out2, io::has_gz_suffix(o.out2), o.compression_level);

    const std::size_t threads = static_cast<std::size_t>(std::max(1, o.threads));
    const std::size_t per_part = std::max<std::size_t>(1, (o.chunk + threads - 1) / threads);
    std::vector<ReadBatch> parts1(threads), parts2(paired ? threads : 0);
    ApplyStats stats;
    std::uint64_t pairs_in = 0, pairs_out = 0;
    std::string seq1, seq2;
    std::vector<float> q1, q2;
    Progress progress("apply");
    for (;;) {
        std::size_t used = 0;
        for (std::size_t t = 0; t < threads; ++t) {
            parts1[t] = ReadBatch{};
            std::size_t got = 0;
            if (paired) {
                parts2[t] = ReadBatch{};
                got = pair->read_batch(parts1[t], parts2[t], per_part);
            } else {
                got = single->read_batch(parts1[t], per_part);
            }
            if (got == 0) break;
            ++used;
            if (got < per_part) break;
        }
        if (used == 0) break;
        std::vector<HardenedReads> h1(used), h2(paired ? used : 0);
        for_parts(used, [&](std::size_t t) {
            if (paired) std::tie(h1[t], h2[t]) = pipeline.harden_pair(parts1[t], parts2[t]);
            else h1[t] = pipeline.harden(parts1[t]);
        });
        for (std::size_t t = 0; t < used; ++t) {
            const ReadBatch& b1 = parts1[t];
            count_in(b1, h1[t], stats);
            if (paired) count_in(parts2[t], h2[t], stats);
            for (std::size_t i = 0; i < b1.num_reads; ++i) {
                if (!paired) {
                    if (h1[t].dropped[i] || (o.drop_duplicates && h1[t].duplicate[i])) {
                        ++stats.dropped;
                        continue;
                    }
                    kept_read(b1, h1[t], i, mask, seq1, q1, stats);
                    w1.write(b1.names[i], b1.comments[i], seq1, q1, enc1);
                    ++stats.reads_out;
                    stats.bases_out += seq1.size();
                    continue;
                }
                ++pairs_in;
                const ReadBatch& b2 = parts2[t];
                if (h1[t].dropped[i] || h2[t].dropped[i] ||
                    (o.drop_duplicates && h1[t].duplicate[i] && h2[t].duplicate[i])) {
                    stats.dropped += 2;
                    continue;
                }
                kept_read(b1, h1[t], i, mask, seq1, q1, stats);
                kept_read(b2, h2[t], i, mask, seq2, q2, stats);
                w1.write(b1.names[i], b1.comments[i], seq1, q1, enc1);
                w2->write(b2.names[i], b2.comments[i], seq2, q2, enc2);
                ++pairs_out;
                stats.reads_out += 2;
                stats.bases_out += seq1.size() + seq2.size();
            }
        }
        const double el = seconds_since(t0);
        progress.update(std::to_string(stats.reads_in) + " reads processed (" +
                        std::to_string(static_cast<long long>(el > 0 ? static_cast<double>(stats.reads_in) / el : 0.0)) +
                        " reads/s)");
    }
    w1.close();
    if (w2) w2->close();
    progress.finish();
    const double seconds = seconds_since(t0);

    json inputs = json::array({o.in});
    json outputs = json::array({o.out});
    if (paired) {
        inputs.push_back(o.in2);
        outputs.push_back(o.out2);
    }
    json report{{"diffbio_version", version_string()},
                {"params", o.params},
                {"inputs", inputs},
                {"outputs", outputs},
                {"paired", paired},
                {"reads_in", stats.reads_in},
                {"reads_out", stats.reads_out},
                {"reads_dropped", stats.dropped},
                {"bases_in", stats.bases_in},
                {"bases_out", stats.bases_out},
                {"mean_kept_length", stats.reads_out ? static_cast<double>(stats.bases_out) / static_cast<double>(stats.reads_out) : 0.0},
                {"adapter_trimmed_reads", stats.adapter_trimmed},
                {"masked_bases", stats.masked_bases},
                {"duplicate_flagged_reads", stats.duplicates},
                {"quality_threshold", pipeline.quality_filter().threshold()[0]},
                {"min_length", pipeline.config().min_length},
                {"mask_low_quality", mask},
                {"adapter_trimming", !pipeline.config().enable_adapter_removal ? "off" : paired ? "mate overlap" : "single end"},
                {"drop_duplicates", o.drop_duplicates},
                {"threads", threads},
                {"chunk", o.chunk},
                {"seconds", seconds},
                {"reads_per_second", seconds > 0 ? static_cast<double>(stats.reads_in) / seconds : 0.0}};
    if (paired) {
        report["pairs_in"] = pairs_in;
        report["pairs_out"] = pairs_out;
    }
    if (!o.report.empty()) {
        std::ofstream f(o.report);
        if (!f) throw diffbio::Error(o.report + ": cannot create the report file");
        f << report.dump(2) << '\n';
        f.close();
        if (!f) throw diffbio::Error(o.report + ": cannot write the report file");
    }
    std::fprintf(stderr, "%s: apply: %llu reads in, %llu out, %llu dropped, %llu adapter-trimmed; %.2f s (%.0f reads/s)\n",
                 program, static_cast<unsigned long long>(stats.reads_in), static_cast<unsigned long long>(stats.reads_out),
                 static_cast<unsigned long long>(stats.dropped), static_cast<unsigned long long>(stats.adapter_trimmed),
                 seconds, report["reads_per_second"].get<double>());
    return exit_ok;
}

void error_line(const std::string& message) { std::fprintf(stderr, "%s: %s\n", program, message.c_str()); }

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"diffbio_preprocess: learn read-preprocessing parameters (quality threshold, adapter removal) by "
                 "gradient descent on a sample, then trim, mask and filter whole FASTQ files with them.",
                 program};
    app.set_version_flag("--version", version_string());
    app.require_subcommand(1);
    app.footer("Exit codes:\n"
               "  0  success\n"
               "  1  runtime error: missing/unreadable input, malformed FASTQ (message gives file:line), unwritable output\n"
               "  2  usage error: bad or missing arguments\n"
               "  3  parameter file error: missing, not JSON, wrong format or format_version, missing key, "
               "missing or size-mismatched parameter");

    LearnOptions lo;
    CLI::App* learn = app.add_subcommand("learn", "Learn pipeline parameters on the first --sample reads and save them as JSON");
    learn->add_option("--in", lo.in, "FASTQ/FASTA input (plain or gzip), mate 1")->required();
    learn->add_option("--in2", lo.in2, "Mate-2 FASTQ of a paired run (both mates are used for training)");
    learn->add_option("--out", lo.out, "Parameter file to write (JSON)")->required();
    learn->add_option("--sample", lo.sample, "Number of reads to learn on (the first ones)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    learn->add_option("--steps", lo.steps, "Adam steps")->capture_default_str()->check(CLI::NonNegativeNumber);
    learn->add_option("--lr", lo.lr, "Adam learning rate of the quality threshold (and other non-adapter parameters)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    learn->add_option("--adapter-lr", lo.adapter_lr, "Adam learning rate of the adapter parameters")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    learn->add_option("--threads", lo.threads, "Threads for the pipeline's kernels")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    learn->add_option("--adapter", lo.adapter, "3' adapter sequence")->capture_default_str();
    learn->add_option("--adapter2", lo.adapter2,
                      "Mate 2's 3' adapter, used by 'apply' on pairs (default: the same as --adapter)");
    learn->add_option("--quality-threshold", lo.quality_threshold, "Initial quality threshold (Phred)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 93.0));
    learn->add_option("--objective", lo.objective,
                      "Training objective. retained-signal: mean over bases of (1 - retention)*[q > q_high] + "
                      "retention*[q < q_low] (keep high-quality bases, drop low ones)")
        ->capture_default_str()
        ->check(CLI::IsMember({std::string(objective_name)}));
    learn->add_option("--q-high", lo.q_high, "retained-signal: bases above this quality should be kept")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 93.0));
    learn->add_option("--q-low", lo.q_low, "retained-signal: bases below this quality should be dropped")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 93.0));
    learn->add_option("--min-length", lo.min_length, "Reads shorter than this after trimming are dropped (by apply)")
        ->capture_default_str();
    learn->add_option("--seed", lo.seed, "Seed of the duplicate kernel and error-correction initialisation")->capture_default_str();
    learn->add_flag("--no-adapter-removal", lo.no_adapter, "Disable the adapter removal stage");
    learn->add_flag("--train-adapter", lo.train_adapter,
                    "Also train the adapter parameters (one-hot adapter, scores, match threshold, temperature) at "
                    "--adapter-lr. Off by default: retained-signal rewards keeping high-quality bases, and adapter "
                    "bases usually are, so it teaches the adapter stage to stop trimming");
    learn->add_flag("--duplicates", lo.duplicates, "Enable duplicate weighting (O(N^2) in the sample)");
    learn->add_flag("--error-correction", lo.error_correction, "Enable the error-correction stage");

    ApplyOptions ao;
    CLI::App* apply = app.add_subcommand("apply", "Trim, mask and filter reads with learned parameters (streaming)");
    apply->add_option("--in", ao.in, "FASTQ/FASTA input (plain or gzip), mate 1")->required();
    apply->add_option("--in2", ao.in2, "Mate-2 input of a paired run (a pair is dropped when either mate is)");
    apply->add_option("--params", ao.params, "Parameter file written by 'learn'")->required();
    apply->add_option("--out", ao.out, "Output FASTQ (BGZF-compressed when it ends in .gz)")->required();
    apply->add_option("--out2", ao.out2, "Mate-2 output FASTQ (with --in2)");
    apply->add_option("--report", ao.report, "JSON report to write");
    apply->add_option("--threads", ao.threads, "Worker threads")->capture_default_str()->check(CLI::PositiveNumber);
    apply->add_option("--chunk", ao.chunk, "Reads held in memory at a time")->capture_default_str()->check(CLI::PositiveNumber);
    apply->add_option("--min-length", ao.min_length, "Override the parameter file's min_length");
    apply->add_option("--compression-level", ao.compression_level, "gzip level (0-9) of .gz outputs")
        ->capture_default_str()
        ->check(CLI::Range(0, 9));
    apply->add_flag("--no-mask", ao.no_mask, "Keep low-quality bases inside the kept part instead of writing N");
    apply->add_flag("--drop-duplicates", ao.drop_duplicates,
                    "Drop reads flagged as duplicates (pairs: both mates flagged); needs a parameter file learned "
                    "with --duplicates. Duplicates are found within each chunk part (--chunk / --threads reads)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e); // --help, --version
        error_line(e.what());
        std::fprintf(stderr, "Run with --help for more information.\n");
        return exit_usage;
    }

    try {
        if (learn->parsed()) return run_learn(lo);
        return run_apply(ao);
    } catch (const UsageError& e) {
        error_line(e.what());
        return exit_usage;
    } catch (const ParamsError& e) {
        error_line(e.what());
        return exit_params;
    } catch (const diffbio::Error& e) {
        error_line(e.what());
        return exit_runtime;
    } catch (const std::exception& e) {
        error_line(e.what());
        return exit_runtime;
    }
}
