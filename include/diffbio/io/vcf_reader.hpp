#pragma once
// VcfReader: the sites of a VCF/BCF file (plain, BGZF or BCF; htslib's vcf.h), for truth sets
// and for reading back what VcfWriter wrote.
//
//   VcfReader in("truth.vcf");
//   VcfSite s;
//   while (in.next(s)) { ... s.contig, s.pos (0-based), s.ref, s.alts, s.af, s.genotype ... }
//
// Per record: contig, 0-based position, ID, REF, ALT alleles, QUAL (NaN when missing), FILTER
// names, INFO DP and AF (first value; −1 / NaN when absent), and for the FIRST sample (when the
// file has samples) GT allele indices (−1 for a missing allele), GQ (−1 when absent) and GP.
// Errors: diffbio::Error when the file cannot be opened; ParseError naming the file and the
// record number when the header or a record cannot be read.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <htslib/hts.h>
#include <htslib/vcf.h>

#include <diffbio/core/error.hpp>

namespace diffbio::io {

struct VcfSite {
    std::string contig{};
    std::int64_t pos = 0; ///< 0-based
    std::string id{};
    std::string ref{};
    std::vector<std::string> alts{};
    double qual = std::numeric_limits<double>::quiet_NaN();
    std::vector<std::string> filters{};
    std::int32_t depth = -1;
    double af = std::numeric_limits<double>::quiet_NaN();
    std::vector<std::int32_t> genotype{}; ///< first sample; −1 = missing allele
    std::int32_t genotype_quality = -1;
    std::vector<float> genotype_probs{};
    /// Number of alternate alleles the first sample carries (counting GT), or −1 without GT.
    int alt_allele_count() const noexcept {
        if (genotype.empty()) return -1;
        int n = 0;
        for (std::int32_t a : genotype) n += a > 0 ? 1 : 0;
        return n;
    }
    /// True for a SNV: a single-base REF and every ALT a single base.
    bool is_snv() const noexcept {
        if (ref.size() != 1 || alts.empty()) return false;
        for (const std::string& a : alts) {
            if (a.size() != 1) return false;
        }
        return true;
    }
};

class VcfReader {
public:
    explicit VcfReader(std::string path) : path_(std::move(path)) {
        fp_ = hts_open(path_.c_str(), "r");
        if (fp_ == nullptr) throw Error("cannot open VCF file '" + path_ + "' for reading");
        hdr_ = bcf_hdr_read(fp_);
        if (hdr_ == nullptr) {
            release();
            throw ParseError(path_, 0, "cannot read the VCF header (not VCF/BCF, empty or truncated)");
        }
        rec_ = bcf_init();
        if (rec_ == nullptr) {
            release();
            throw Error("VcfReader: out of memory");
        }
    }
    VcfReader(const VcfReader&) = delete;
    VcfReader& operator=(const VcfReader&) = delete;
    ~VcfReader() {
        std::free(ibuf_);
        std::free(fbuf_);
        release();
    }

    /// Sample names of the header.
    std::vector<std::string> samples() const {
        std::vector<std::string> s{};
        for (int k = 0; k < bcf_hdr_nsamples(hdr_); ++k) s.emplace_back(hdr_->samples[k]);
        return s;
    }

    /// Reads the next record into `s`; false at the end of the file.
    bool next(VcfSite& s) {
        const int rc = bcf_read(fp_, hdr_, rec_);
        if (rc == -1) return false;
        ++records_;
        if (rc < -1 || rec_->errcode != 0) throw ParseError(path_, static_cast<long>(records_), "cannot parse the VCF record");
        if (bcf_unpack(rec_, BCF_UN_ALL) != 0) throw ParseError(path_, static_cast<long>(records_), "cannot unpack the VCF record");
        // htslib accepts a line cut short after POS or ID (errcode 0, no alleles): reject it here.
        if (rec_->n_allele == 0 || rec_->d.allele == nullptr || rec_->d.allele[0] == nullptr) {
            throw ParseError(path_, static_cast<long>(records_), "the VCF record has no REF allele (fewer than 8 columns?)");
        }
        const char* contig = bcf_hdr_id2name(hdr_, rec_->rid);
        if (contig == nullptr) throw ParseError(path_, static_cast<long>(records_), "the VCF record's contig is not in the header");
        s = VcfSite{};
        s.contig = contig;
        s.pos = rec_->pos;
        if (rec_->d.id != nullptr && std::string(rec_->d.id) != ".") s.id = rec_->d.id;
        s.ref = rec_->d.allele[0];
        for (std::uint32_t a = 1; a < rec_->n_allele; ++a) s.alts.emplace_back(rec_->d.allele[a]);
        if (!bcf_float_is_missing(rec_->qual)) s.qual = rec_->qual;
        for (int k = 0; k < rec_->d.n_flt; ++k) s.filters.emplace_back(bcf_hdr_int2id(hdr_, BCF_DT_ID, rec_->d.flt[k]));
        if (info_has_numbers("DP") && bcf_get_info_int32(hdr_, rec_, "DP", &ibuf_, &ni_) > 0) s.depth = ibuf_[0];
        if (info_has_numbers("AF") && bcf_get_info_float(hdr_, rec_, "AF", &fbuf_, &nf_) > 0 &&
            !bcf_float_is_missing(fbuf_[0])) {
            s.af = fbuf_[0];
        }
        if (bcf_hdr_nsamples(hdr_) > 0) {
            const int n = format_has_numbers("GT") ? bcf_get_genotypes(hdr_, rec_, &ibuf_, &ni_) : 0;
            if (n > 0) {
                const int ploidy = n / bcf_hdr_nsamples(hdr_);
                for (int k = 0; k < ploidy; ++k) {
                    const std::int32_t g = ibuf_[k];
                    if (g == bcf_int32_vector_end) break;
                    s.genotype.push_back(bcf_gt_is_missing(g) ? -1 : bcf_gt_allele(g));
                }
            }
            if (format_has_numbers("GQ") && bcf_get_format_int32(hdr_, rec_, "GQ", &ibuf_, &ni_) > 0 &&
                ibuf_[0] != bcf_int32_missing) {
                s.genotype_quality = ibuf_[0];
            }
            const int ng = format_has_numbers("GP") ? bcf_get_format_float(hdr_, rec_, "GP", &fbuf_, &nf_) : 0;
            if (ng > 0) {
                const int per = ng / bcf_hdr_nsamples(hdr_);
                for (int k = 0; k < per; ++k) {
                    if (bcf_float_is_vector_end(fbuf_[k])) break;
                    s.genotype_probs.push_back(fbuf_[k]);
                }
            }
        }
        return true;
    }

    /// Every remaining record.
    std::vector<VcfSite> read_all() {
        std::vector<VcfSite> v{};
        VcfSite s;
        while (next(s)) v.push_back(s);
        return v;
    }

private:
    // htslib 1.16 stores a FORMAT field that no sample fills (e.g. FORMAT "DP:GT:GQ" with the sample
    // column "6": trailing fields dropped, as the VCF specification allows) with the value type
    // BCF_BT_NULL, and bcf_get_format_values then EXITS the process ("Unexpected type 0"; found by
    // fuzz_vcf). bcf_get_info_values has the same switch. A field whose values are not numbers is
    // therefore read as absent.
    static bool numeric_type(int type) noexcept {
        return type == BCF_BT_INT8 || type == BCF_BT_INT16 || type == BCF_BT_INT32 || type == BCF_BT_FLOAT;
    }
    bool format_has_numbers(const char* key) const {
        const bcf_fmt_t* f = bcf_get_fmt(hdr_, rec_, key);
        return f != nullptr && numeric_type(f->type);
    }
    bool info_has_numbers(const char* key) const {
        const bcf_info_t* f = bcf_get_info(hdr_, rec_, key);
        return f != nullptr && numeric_type(f->type);
    }

    void release() noexcept {
        if (rec_ != nullptr) bcf_destroy(rec_);
        rec_ = nullptr;
        if (hdr_ != nullptr) bcf_hdr_destroy(hdr_);
        hdr_ = nullptr;
        if (fp_ != nullptr) hts_close(fp_);
        fp_ = nullptr;
    }

    std::string path_{};
    htsFile* fp_ = nullptr;
    bcf_hdr_t* hdr_ = nullptr;
    bcf1_t* rec_ = nullptr;
    std::int32_t* ibuf_ = nullptr;
    float* fbuf_ = nullptr;
    int ni_ = 0, nf_ = 0;
    std::size_t records_ = 0;
};

} // namespace diffbio::io
