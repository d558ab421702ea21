#pragma once
// VcfWriter: variant calls as VCF 4.2 (plain text, BGZF-compressed .vcf.gz, or BCF), written with
// htslib's vcf.h (bcf_hdr_init, bcf_update_*, bcf_write), so that bcftools and every htslib
// reader accept the output.
//
//   VcfWriter out("calls.vcf.gz", {.contigs = batch.contigs, .samples = {"sim"}});
//   out.write({.contig = "chr1", .pos = 1355, .ref = "A", .alts = {"T"}, .qual = 42,
//              .genotype = {0, 1}, .depth = 48, .genotype_quality = 40, .genotype_probs = {...}});
//   out.close();
//
// Header: fileformat VCFv4.2, FILTER PASS, one ##contig line per contig (ID and length),
// INFO DP (depth), FORMAT GT, GQ (genotype quality) and GP (genotype posteriors, one per
// genotype of the site: ref/ref, ref/alt, alt/alt for one alternate allele), plus the caller's
// extra lines (header.extra_lines: "##source=...", ...). The format follows the path: ".bcf" →
// BCF, ".vcf.gz" or ".gz" → BGZF VCF, anything else → plain VCF; "-" is standard output.
// Records must come in the order the caller wants them in the file (sort by contig and position
// for tools that need it). Positions are 0-based here (written 1-based, as VCF does).
// Errors: diffbio::Error when the file cannot be created or written (naming the path);
// InvalidArgument for a record that is not valid VCF (unknown contig, position outside it, empty
// or non-ACGTN ref/alt alleles, a genotype allele index beyond the site's alleles, a sample
// field on a file without samples).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <htslib/hts.h>
#include <htslib/vcf.h>

#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/core/error.hpp>

namespace diffbio::io {

struct VcfHeader {
    std::vector<ContigInfo> contigs{};
    std::vector<std::string> samples{};     ///< 0 or more sample columns
    std::vector<std::string> extra_lines{}; ///< whole "##key=value" lines added as they are
};

/// One VCF record. Missing values: qual NaN, depth −1, genotype empty, genotype_quality −1,
/// genotype_probs empty; filter "" (missing) or "PASS".
struct VcfRecord {
    std::string contig{};
    std::int64_t pos = 0; ///< 0-based
    std::string id{};       ///< "" → "."
    std::string ref{};
    std::vector<std::string> alts{};
    double qual = std::numeric_limits<double>::quiet_NaN();
    std::string filter = "PASS";
    std::int32_t depth = -1;                ///< INFO DP
    std::vector<std::int32_t> genotype{};     ///< allele indices of the first sample (0 = ref), unphased
    std::int32_t genotype_quality = -1;     ///< FORMAT GQ
    std::vector<float> genotype_probs{};      ///< FORMAT GP
};

namespace vcf_detail {

inline bool ends_with(std::string_view s, std::string_view suffix) noexcept {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

inline bool valid_allele(std::string_view a) noexcept {
    if (a.empty()) return false;
    for (char c : a) {
        switch (c) {
        case 'A': case 'C': case 'G': case 'T': case 'N': case 'a': case 'c': case 'g': case 't': case 'n': break;
        default: return false;
        }
    }
    return true;
}

} // namespace vcf_detail

class VcfWriter {
public:
    /// Creates `path` and writes the header. Errors: see the header comment.
    VcfWriter(std::string path, VcfHeader header) : path_(std::move(path)), header_(std::move(header)) {
        const char* mode = vcf_detail::ends_with(path_, ".bcf") ? "wb" : vcf_detail::ends_with(path_, ".gz") ? "wz" : "w";
        for (const ContigInfo& c : header_.contigs) {
            if (c.name.empty() || c.length <= 0) {
                throw InvalidArgument("VcfWriter: contig '" + c.name + "' needs a non-empty name and a length > 0 (got " +
                                      std::to_string(c.length) + ")");
            }
        }
        hdr_ = bcf_hdr_init("w");
        if (hdr_ == nullptr) throw Error("VcfWriter: out of memory creating the header of '" + path_ + "'");
        try {
            std::vector<std::string> lines{
                "##INFO=<ID=DP,Number=1,Type=Integer,Description=\"Depth at the site (reads covering it)\">",
                "##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">",
                "##FORMAT=<ID=GQ,Number=1,Type=Integer,Description=\"Genotype quality (Phred-scaled probability that the "
                "genotype is wrong)\">",
                "##FORMAT=<ID=GP,Number=G,Type=Float,Description=\"Genotype posterior probabilities\">"};
            for (const ContigInfo& c : header_.contigs) {
                lines.push_back("##contig=<ID=" + c.name + ",length=" + std::to_string(c.length) + ">");
            }
            for (const std::string& l : header_.extra_lines) lines.push_back(l);
            for (const std::string& l : lines) {
                if (bcf_hdr_append(hdr_, l.c_str()) != 0) {
                    throw InvalidArgument("VcfWriter: htslib rejects the header line '" + l + "'");
                }
            }
            for (const std::string& s : header_.samples) {
                if (bcf_hdr_add_sample(hdr_, s.c_str()) != 0) {
                    throw InvalidArgument("VcfWriter: cannot add sample '" + s + "' (empty or duplicate name?)");
                }
            }
            if (bcf_hdr_sync(hdr_) != 0) throw Error("VcfWriter: htslib cannot finalise the header of '" + path_ + "'");
            fp_ = hts_open(path_.c_str(), mode);
            if (fp_ == nullptr) throw Error("cannot create VCF file '" + path_ + "'");
            if (bcf_hdr_write(fp_, hdr_) != 0) throw Error("cannot write the VCF header to '" + path_ + "'");
            rec_ = bcf_init();
            if (rec_ == nullptr) throw Error("VcfWriter: out of memory");
        } catch (...) {
            release();
            throw;
        }
    }

    VcfWriter(const VcfWriter&) = delete;
    VcfWriter& operator=(const VcfWriter&) = delete;
    ~VcfWriter() { release(); }

    /// Writes one record (see VcfRecord). O(alleles + samples).
    void write(const VcfRecord& r) {
        if (fp_ == nullptr) throw Error("VcfWriter: '" + path_ + "' is closed");
        const int rid = bcf_hdr_name2id(hdr_, r.contig.c_str());
        if (rid < 0) throw InvalidArgument("VcfWriter: contig '" + r.contig + "' is not in the header of '" + path_ + "'");
        std::int64_t len = 0;
        for (const ContigInfo& c : header_.contigs) {
            if (c.name == r.contig) len = c.length;
        }
        if (r.pos < 0 || r.pos >= len) {
            throw InvalidArgument("VcfWriter: position " + std::to_string(r.pos) + " (0-based) is outside contig '" + r.contig +
                                  "' of length " + std::to_string(len));
        }
        if (!vcf_detail::valid_allele(r.ref)) {
            throw InvalidArgument("VcfWriter: reference allele '" + r.ref + "' at " + r.contig + ":" +
                                  std::to_string(r.pos + 1) + " is not a non-empty string of A, C, G, T, N");
        }
        std::string alleles = r.ref;
        for (const std::string& a : r.alts) {
            if (!vcf_detail::valid_allele(a) || a == r.ref) {
                throw InvalidArgument("VcfWriter: alternate allele '" + a + "' at " + r.contig + ":" +
                                      std::to_string(r.pos + 1) + " is empty, not A/C/G/T/N, or equal to the reference");
            }
            alleles += ',';
            alleles += a;
        }
        const bool has_sample_fields = !r.genotype.empty() || r.genotype_quality >= 0 || !r.genotype_probs.empty();
        if (has_sample_fields && header_.samples.size() != 1) {
            throw InvalidArgument("VcfWriter: the record at " + r.contig + ":" + std::to_string(r.pos + 1) +
                                  " has sample fields (GT/GQ/GP), which need exactly one sample in the header (it has " +
                                  std::to_string(header_.samples.size()) + ")");
        }
        const auto n_alleles = static_cast<std::int32_t>(r.alts.size() + 1);
        for (std::int32_t a : r.genotype) {
            if (a < 0 || a >= n_alleles) {
                throw InvalidArgument("VcfWriter: genotype allele " + std::to_string(a) + " at " + r.contig + ":" +
                                      std::to_string(r.pos + 1) + " is not one of the site's " + std::to_string(n_alleles) +
                                      " alleles");
            }
        }
        bcf_clear(rec_);
        rec_->rid = rid;
        rec_->pos = r.pos;
        fail_if(bcf_update_alleles_str(hdr_, rec_, alleles.c_str()) != 0, r, "alleles");
        // Always set (bcf_clear leaves the previous record's ID behind).
        fail_if(bcf_update_id(hdr_, rec_, r.id.empty() ? "." : r.id.c_str()) != 0, r, "ID");
        if (std::isnan(r.qual)) {
            bcf_float_set_missing(rec_->qual);
        } else {
            rec_->qual = static_cast<float>(r.qual);
        }
        if (!r.filter.empty()) {
            int fid = bcf_hdr_id2int(hdr_, BCF_DT_ID, r.filter.c_str());
            if (fid < 0) throw InvalidArgument("VcfWriter: filter '" + r.filter + "' is not declared in the header");
            fail_if(bcf_update_filter(hdr_, rec_, &fid, 1) != 0, r, "FILTER");
        }
        if (r.depth >= 0) fail_if(bcf_update_info_int32(hdr_, rec_, "DP", &r.depth, 1) != 0, r, "DP");
        if (!r.genotype.empty()) {
            std::vector<std::int32_t> gt(r.genotype.size());
            for (std::size_t k = 0; k < gt.size(); ++k) gt[k] = bcf_gt_unphased(r.genotype[k]);
            fail_if(bcf_update_genotypes(hdr_, rec_, gt.data(), static_cast<int>(gt.size())) != 0, r, "GT");
        }
        if (r.genotype_quality >= 0) fail_if(bcf_update_format_int32(hdr_, rec_, "GQ", &r.genotype_quality, 1) != 0, r, "GQ");
        if (!r.genotype_probs.empty()) {
            fail_if(bcf_update_format_float(hdr_, rec_, "GP", r.genotype_probs.data(),
                                            static_cast<int>(r.genotype_probs.size())) != 0,
                    r, "GP");
        }
        if (bcf_write(fp_, hdr_, rec_) != 0) throw Error("cannot write a record to VCF file '" + path_ + "'");
        ++records_;
    }

    /// Flushes and closes. Errors: diffbio::Error naming the path when the data cannot be written.
    void close() {
        if (fp_ == nullptr) return;
        const int rc = hts_close(fp_);
        fp_ = nullptr;
        release();
        if (rc != 0) throw Error("cannot finish writing VCF file '" + path_ + "'");
    }

    std::size_t records() const noexcept { return records_; }
    const std::string& path() const noexcept { return path_; }

private:
    void fail_if(bool failed, const VcfRecord& r, const char* field) const {
        if (failed) {
            throw Error("VcfWriter: htslib cannot set " + std::string(field) + " of the record at " + r.contig + ":" +
                        std::to_string(r.pos + 1) + " in '" + path_ + "'");
        }
    }

    void release() noexcept {
        if (rec_ != nullptr) bcf_destroy(rec_);
        rec_ = nullptr;
        if (fp_ != nullptr) hts_close(fp_);
        fp_ = nullptr;
        if (hdr_ != nullptr) bcf_hdr_destroy(hdr_);
        hdr_ = nullptr;
    }

    std::string path_{};
    VcfHeader header_;
    bcf_hdr_t* hdr_ = nullptr;
    htsFile* fp_ = nullptr;
    bcf1_t* rec_ = nullptr;
    std::size_t records_ = 0;
};

} // namespace diffbio::io
