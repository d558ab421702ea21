#pragma once
// AlignmentReader: SAM, BAM and CRAM files (htslib) into an AlignedBatch (core/aligned_batch.hpp):
// per read its contig, leftmost reference position, CIGAR, bases (codes 0..3 = A C G T, 4 = other),
// Phred qualities, mapping quality, flags and (optionally) name. A record stored without its
// sequence (SAM SEQ '*') gets as many unknown bases (code 4, missing quality 255) as its CIGAR
// consumes, which is how samtools mpileup shows them ('N').
//
//   AlignmentReader in("x.bam");                 // or .sam, .cram (+ options.reference)
//   AlignedBatch batch;
//   in.read_all(batch);                           // every record, in file order
//   in.query("17:1001-2000"); in.read_all(batch); // reads overlapping a region (needs an index)
//
// Records are read whole; which of them the pileup uses (unmapped, flags, mapping quality) is
// its business, or set options.skip_unmapped / exclude_flags / min_mapq to drop them here.
// Errors are diffbio exceptions that name the file: a file that cannot be opened (Error), a
// missing or unreadable header, truncated or corrupt data, a CRAM whose reference is missing or
// does not match, a CIGAR whose query length differs from the stored sequence's (ParseError, with
// the number of the record being read), a region query without an index or with an unknown contig
// (InvalidArgument).

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <htslib/hts.h>
#include <htslib/sam.h>

#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/core/error.hpp>

namespace diffbio::io {

struct AlignmentReaderOptions {
    /// Reference FASTA for CRAM files (ignored for SAM/BAM). Empty: htslib's own lookup (the
    /// header's UR/M5 tags, REF_PATH/REF_CACHE).
    std::string reference{};
    /// Extra threads that decompress BGZF/CRAM blocks (0: none, the calling thread does it).
    int threads = 0;
    /// Keep read names in the batch (false saves a copy per read).
    bool keep_names = true;
    /// Drop unmapped records (flag 0x4 or no contig).
    bool skip_unmapped = false;
    /// Drop records with any of these flags (samtools' --ff); 0 keeps all.
    std::uint16_t exclude_flags = 0;
    /// Drop records whose mapping quality is below this.
    int min_mapq = 0;
    /// A BAM without BGZF's end-of-file marker was cut short: refuse it (ParseError) unless this
    /// is false, in which case it is read as far as its data goes.
    bool require_eof_marker = true;
};

enum class AlignmentFormat { Sam, Bam, Cram };

class AlignmentReader {
public:
    /// Opens `path` ("-" = standard input) and reads its header.
    /// Errors: diffbio::Error when the file cannot be opened; ParseError (line 0) when it is not
    /// SAM/BAM/CRAM or its header cannot be read, or a BAM lacks its end-of-file marker
    /// (options.require_eof_marker); InvalidArgument for options.threads < 0.
    explicit AlignmentReader(std::string path, AlignmentReaderOptions options = {})
        : path_(std::move(path)), options_(std::move(options)) {
        if (options_.threads < 0) {
            throw InvalidArgument("AlignmentReader: threads must be >= 0, got " + std::to_string(options_.threads));
        }
        errno = 0;
        fp_ = sam_open(path_.c_str(), "r");
        if (fp_ == nullptr) {
            const int err = errno;
            throw Error("cannot open '" + path_ + "' for reading: " +
                        (err != 0 ? std::string(std::strerror(err)) : std::string("not a SAM/BAM/CRAM file")));
        }
        try {
            const htsFormat* f = hts_get_format(fp_);
            switch (f->format) {
            case sam: format_ = AlignmentFormat::Sam; break;
            case bam: format_ = AlignmentFormat::Bam; break;
            case cram: format_ = AlignmentFormat::Cram; break;
            default: {
                char* d = hts_format_description(f); // malloc'ed by htslib
                const std::string desc = d != nullptr ? d : "unknown";
                std::free(d);
                throw ParseError(path_, 0, "not a SAM, BAM or CRAM file (htslib sees: " + desc + ")");
            }
            }
            if (format_ == AlignmentFormat::Cram && !options_.reference.empty()) {
                if (hts_set_fai_filename(fp_, options_.reference.c_str()) != 0) {
                    throw Error("cannot use '" + options_.reference + "' as the reference of CRAM file '" + path_ +
                                "': it cannot be opened or indexed");
                }
            }
            if (options_.threads > 0) hts_set_threads(fp_, options_.threads);
            if (format_ == AlignmentFormat::Bam && options_.require_eof_marker && path_ != "-") {
                if (hts_check_EOF(fp_) == 0) {
                    throw ParseError(path_, 0,
                                     "the BAM file has no BGZF end-of-file marker: it was truncated (cut short "
                                     "while being written or copied)");
                }
            }
            hdr_ = sam_hdr_read(fp_);
            if (hdr_ == nullptr) {
                throw ParseError(path_, 0, "cannot read the header: the file is empty, truncated or not SAM/BAM/CRAM");
            }
            const int n = sam_hdr_nref(hdr_);
            contigs_.reserve(static_cast<std::size_t>(n));
            for (int t = 0; t < n; ++t) {
                contigs_.push_back(ContigInfo{sam_hdr_tid2name(hdr_, t), static_cast<std::int64_t>(sam_hdr_tid2len(hdr_, t))});
            }
            rec_ = bam_init1();
            if (rec_ == nullptr) throw Error("AlignmentReader: out of memory");
        } catch (...) {
            release();
            throw;
        }
    }

    AlignmentReader(const AlignmentReader&) = delete;
    AlignmentReader& operator=(const AlignmentReader&) = delete;
    ~AlignmentReader() { release(); }

    AlignmentFormat format() const noexcept { return format_; }
    const std::string& path() const noexcept { return path_; }
    /// The contigs of the header (@SQ lines), in order; a batch's contig ids index this list.
    const std::vector<ContigInfo>& contigs() const noexcept { return contigs_; }
    /// Records returned so far (after the filters).
    std::size_t records() const noexcept { return returned_; }

    /// Index of contig `name` in contigs(), or −1.
    std::int32_t contig_index(std::string_view name) const noexcept {
        for (std::size_t c = 0; c < contigs_.size(); ++c) {
            if (contigs_[c].name == name) return static_cast<std::int32_t>(c);
        }
        return -1;
    }

    /// Restricts the following reads to records overlapping `region` (samtools syntax:
    /// "chr", "chr:beg", "chr:beg-end", 1-based inclusive). Loads the index (.bai/.csi/.crai
    /// next to the file) on first use.
    /// Errors: InvalidArgument when the file has no index, or the region names a contig
    /// that is not in the header or cannot be parsed.
    void query(const std::string& region) {
        load_index();
        const std::string ctg = region.substr(0, region.rfind(':'));
        hts_itr_t* itr = sam_itr_querys(idx_, hdr_, region.c_str());
        if (itr == nullptr) {
            std::string why = contig_index(region) < 0 && contig_index(ctg) < 0
                                  ? "its contig is not in the file's header"
                                  : "it cannot be parsed (expected contig, contig:beg or contig:beg-end)";
            throw InvalidArgument("AlignmentReader: region '" + region + "' of '" + path_ + "': " + why);
        }
        set_iterator(itr);
    }

    /// As query(string), with a contig index and a 0-based half-open range [beg, end).
    void query(std::int32_t contig, std::int64_t beg, std::int64_t end) {
        if (contig < 0 || static_cast<std::size_t>(contig) >= contigs_.size()) {
            throw InvalidArgument("AlignmentReader: contig index " + std::to_string(contig) + " is not one of the " +
                                  std::to_string(contigs_.size()) + " contigs of '" + path_ + "'");
        }
        if (beg < 0 || end < beg) {
            throw InvalidArgument("AlignmentReader: bad range [" + std::to_string(beg) + ", " + std::to_string(end) +
                                  ") for '" + path_ + "'");
        }
        load_index();
        hts_itr_t* itr = sam_itr_queryi(idx_, contig, beg, end);
        if (itr == nullptr) {
            throw InvalidArgument("AlignmentReader: cannot query contig " + contigs_[static_cast<std::size_t>(contig)].name +
                                  " of '" + path_ + "'");
        }
        set_iterator(itr);
    }

    /// Appends up to max_reads records to batch (its contigs are set to the header's when it is
    /// empty; appending to a batch with other contigs is an InvalidArgument). Returns how many
    /// it appended; 0 at the end of the file (or region).
    /// Complexity: O(bytes of the records); no allocation once the batch's buffers have grown.
    /// Errors: ParseError(file, record number, what) for truncated or corrupt data, a SAM line
    /// that does not parse, a CRAM block that cannot be decoded (e.g. wrong or missing reference).
    std::size_t read_batch(AlignedBatch& batch, std::size_t max_reads) {
        attach(batch);
        std::size_t n = 0;
        while (n < max_reads && next_record()) {
            append(batch);
            ++n;
        }
        return n;
    }

    /// Appends every remaining record. Returns how many.
    std::size_t read_all(AlignedBatch& batch) {
        attach(batch);
        std::size_t n = 0;
        while (next_record()) {
            append(batch);
            ++n;
        }
        return n;
    }

private:
    void release() noexcept {
        if (itr_ != nullptr) hts_itr_destroy(itr_);
        if (idx_ != nullptr) hts_idx_destroy(idx_);
        if (rec_ != nullptr) bam_destroy1(rec_);
        if (hdr_ != nullptr) sam_hdr_destroy(hdr_);
        if (fp_ != nullptr) sam_close(fp_);
        itr_ = nullptr;
        idx_ = nullptr;
        rec_ = nullptr;
        hdr_ = nullptr;
        fp_ = nullptr;
    }

    void load_index() {
        if (idx_ != nullptr) return;
        // (htslib indexes only BGZF-compressed SAM; a plain SAM never has one.)
        idx_ = sam_index_load(fp_, path_.c_str());
        if (idx_ == nullptr) {
            throw InvalidArgument("AlignmentReader: '" + path_ +
                                  "' has no index (.bai, .csi or .crai next to it): a region query needs one; "
                                  "create it with `samtools index`");
        }
    }

    void set_iterator(hts_itr_t* itr) {
        if (itr_ != nullptr) hts_itr_destroy(itr_);
        itr_ = itr;
        done_ = false;
    }

    void attach(AlignedBatch& batch) const {
        if (batch.num_reads() == 0 && batch.contigs.empty()) {
            batch.contigs = contigs_;
            return;
        }
        bool same = batch.contigs.size() == contigs_.size();
        for (std::size_t c = 0; same && c < contigs_.size(); ++c) same = batch.contigs[c].name == contigs_[c].name;
        if (!same) {
            throw InvalidArgument("AlignmentReader: the batch holds reads of other contigs than the header of '" +
                                  path_ + "'; read it into an empty batch");
        }
    }

    bool keep(const bam1_t* b) const noexcept {
        const std::uint16_t f = b->core.flag;
        if (options_.skip_unmapped && ((f & BAM_FUNMAP) != 0 || b->core.tid < 0)) return false;
        if ((f & options_.exclude_flags) != 0) return false;
        if (static_cast<int>(b->core.qual) < options_.min_mapq) return false;
        return true;
    }

    bool next_record() {
        if (done_) return false;
        for (;;) {
            const int r = itr_ != nullptr ? sam_itr_next(fp_, itr_, rec_) : sam_read1(fp_, hdr_, rec_);
            if (r == -1) {
                done_ = true;
                return false;
            }
            ++seen_;
            if (r < -1) {
                done_ = true;
                throw ParseError(path_, static_cast<long>(seen_),
                                 "cannot read record " + std::to_string(seen_) + " (htslib returned " +
                                     std::to_string(r) + "): " + failure_hint());
            }
            if (keep(rec_)) {
                ++returned_;
                return true;
            }
        }
    }

    std::string failure_hint() const {
        switch (format_) {
        case AlignmentFormat::Sam:
            return "a malformed SAM line (wrong number of fields, bad CIGAR, SEQ/QUAL length mismatch, unknown "
                   "reference name) or truncated data";
        case AlignmentFormat::Bam: return "the BAM data is truncated or corrupt";
        case AlignmentFormat::Cram:
            return "the CRAM data is truncated or corrupt, or its reference is missing or does not match "
                   "(give AlignmentReaderOptions::reference)";
        }
        return "read error";
    }

    /// Appends rec_ to batch: bases decoded two at a time from BAM's 4-bit codes. A record without
    /// a stored sequence (SAM SEQ '*') whose CIGAR consumes query bases gets that many unknown
    /// bases (code 4) with missing qualities, as samtools mpileup shows them ('N'); any other
    /// disagreement between the CIGAR's query length and the sequence is a ParseError.
    void append(AlignedBatch& batch) {
        static constexpr std::array<std::uint8_t, 16> nt16_code{4, 0, 1, 4, 2, 4, 4, 4, 3, 4, 4, 4, 4, 4, 4, 4};
        const bam1_t* b = rec_;
        const std::uint32_t* cig = bam_get_cigar(b);
        const std::size_t ncig = b->core.n_cigar;
        const auto stored = static_cast<std::size_t>(b->core.l_qseq);
        const auto cigar_len =
            ncig > 0 ? static_cast<std::size_t>(bam_cigar2qlen(static_cast<int>(ncig), cig)) : stored;
        if (stored != 0 && stored != cigar_len) {
            throw ParseError(path_, static_cast<long>(seen_),
                             "record " + std::to_string(seen_) + " ('" + bam_get_qname(b) + "'): its CIGAR consumes " +
                                 std::to_string(cigar_len) + " query bases but its sequence has " +
                                 std::to_string(stored));
        }
        const std::size_t len = cigar_len;
        std::int64_t ref_len = 0;
        if (ncig > 0) ref_len = static_cast<std::int64_t>(bam_cigar2rlen(static_cast<int>(ncig), cig));
        batch.contig.push_back(b->core.tid);
        batch.ref_start.push_back(static_cast<std::int64_t>(b->core.pos));
        batch.ref_end.push_back(static_cast<std::int64_t>(b->core.pos) + ref_len);
        batch.mapq.push_back(b->core.qual);
        batch.flags.push_back(b->core.flag);

        const std::size_t m0 = batch.bases.size();
        batch.bases.resize(m0 + len);
        batch.qualities.resize(m0 + len);
        std::uint8_t* out = batch.bases.data() + m0;
        if (stored == 0) {
            std::fill_n(out, len, std::uint8_t{4});
            std::fill_n(batch.qualities.data() + m0, len, missing_quality);
        } else {
            const std::uint8_t* s = bam_get_seq(b);
            std::size_t l = 0;
            for (; l + 1 < len; l += 2) {
                const std::uint8_t byte = s[l >> 1];
                out[l] = nt16_code[byte >> 4];
                out[l + 1] = nt16_code[byte & 0xfu];
            }
            if (l < len) out[l] = nt16_code[s[l >> 1] >> 4];
            std::memcpy(batch.qualities.data() + m0, bam_get_qual(b), len); // 0xff = missing
        }
        const std::size_t k0 = batch.cigar.size();
        batch.cigar.resize(k0 + ncig);
        if (ncig > 0) std::memcpy(batch.cigar.data() + k0, cig, ncig * sizeof(std::uint32_t));
        batch.base_offset.push_back(batch.bases.size());
        batch.cigar_offset.push_back(batch.cigar.size());
        if (options_.keep_names) batch.name_data.append(bam_get_qname(b));
        batch.name_offset.push_back(batch.name_data.size());
    }

    std::string path_;
    AlignmentReaderOptions options_;
    AlignmentFormat format_ = AlignmentFormat::Sam;
    samFile* fp_ = nullptr;
    sam_hdr_t* hdr_ = nullptr;
    bam1_t* rec_ = nullptr;
    hts_idx_t* idx_ = nullptr;
    hts_itr_t* itr_ = nullptr;
    std::vector<ContigInfo> contigs_;
    std::size_t seen_ = 0;
    std::size_t returned_ = 0;
    bool done_ = false;
};

} // namespace diffbio::io
