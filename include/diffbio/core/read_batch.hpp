#pragma once
// ReadBatch: sequencing reads in memory, padded to a common length, the input of every read
// operator. It holds no file state (io/ fills it; ops/ consume it) and lives in core so that
// both can use it.
//
//   one_hot  [N × L × 4]  A, C, G, T probabilities per position; N (or '.') = 0.25 each;
//                          0 in padding
//   quality  [N × L]      Phred scores (already decoded from the file's offset); 0 in padding
//   lengths  [N]          true length of each read (positions ≥ lengths[i] are padding)
//   names    [N]          read names (header line without '@', up to the first whitespace)
//   comments [N]          the rest of the header line, if any
//
// Reads are never truncated: L is the longest read and shorter reads are padded (mask()).

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <diffbio/core/error.hpp>

namespace diffbio {

/// Index of a base in the one-hot order A, C, G, T; −1 for N and other IUPAC codes.
inline int base_index(char b) noexcept {
    switch (b) {
    case 'A': case 'a': return 0;
    case 'C': case 'c': return 1;
    case 'G': case 'g': return 2;
    case 'T': case 't': case 'U': case 'u': return 3;
    default: return -1;
    }
}

inline constexpr std::array<char, 4> bases{'A', 'C', 'G', 'T'};

struct ReadBatch {
    std::size_t num_reads = 0;
    std::size_t length = 0; ///< padded length L
    std::vector<float> one_hot;
    std::vector<float> quality;
    std::vector<std::uint32_t> lengths;
    std::vector<std::string> names;
    std::vector<std::string> comments;

    /// True for real positions, false for padding.
    bool mask(std::size_t read, std::size_t pos) const noexcept { return pos < lengths[read]; }
    std::span<const float> read_one_hot(std::size_t i) const { return {one_hot.data() + i * length * 4, length * 4}; }
    std::span<const float> read_quality(std::size_t i) const { return {quality.data() + i * length, length}; }

    /// Append one read from its bases and decoded Phred scores (same length). Grows L when the
    /// read is longer than every read so far (re-padding the earlier reads).
    void add(std::string_view name, std::string_view seq, std::span<const float> phred, std::string_view comment = {}) {
        if (phred.size() != seq.size()) {
            throw ShapeError("ReadBatch::add: read '" + std::string(name) + "' has " + std::to_string(seq.size()) +
                             " bases but " + std::to_string(phred.size()) + " quality scores");
        }
        for (std::size_t l = 0; l < phred.size(); ++l) {
            if (!std::isfinite(phred[l])) {
                throw InvalidArgument("ReadBatch::add: read '" + std::string(name) + "' has a quality score that is not finite (" +
                                      std::to_string(phred[l]) + ") at position " + std::to_string(l));
            }
        }
        if (seq.size() > length) repad(seq.size());
        const std::size_t i = num_reads++;
        one_hot.resize(num_reads * length * 4, 0.0f);
        quality.resize(num_reads * length, 0.0f);
        for (std::size_t l = 0; l < seq.size(); ++l) {
            const int b = base_index(seq[l]);
            float* o = one_hot.data() + (i * length + l) * 4;
            if (b >= 0) {
                o[b] = 1.0f;
            } else {
                o[0] = o[1] = o[2] = o[3] = 0.25f;
            }
            quality[i * length + l] = phred[l];
        }
        lengths.push_back(static_cast<std::uint32_t>(seq.size()));
        names.emplace_back(name);
        comments.emplace_back(comment);
    }

    /// The bases of read i (argmax of its one-hot rows; 'N' for a uniform row).
    std::string sequence(std::size_t i) const {
        std::string s(lengths[i], 'N');
        for (std::size_t l = 0; l < lengths[i]; ++l) {
            const float* o = one_hot.data() + (i * length + l) * 4;
            int best = 0;
            bool tie = false;
            for (int k = 1; k < 4; ++k) {
                if (o[k] > o[best]) {
                    best = k;
                    tie = false;
                } else if (o[k] == o[best]) {
                    tie = true;
                }
            }
            s[l] = tie && o[best] <= 0.25f ? 'N' : bases[static_cast<std::size_t>(best)];
        }
        return s;
    }

private:
    void repad(std::size_t new_length) {
        std::vector<float> oh(num_reads * new_length * 4, 0.0f), q(num_reads * new_length, 0.0f);
        for (std::size_t i = 0; i < num_reads; ++i) {
            for (std::size_t l = 0; l < length; ++l) {
                for (int k = 0; k < 4; ++k) oh[(i * new_length + l) * 4 + k] = one_hot[(i * length + l) * 4 + k];
                q[i * new_length + l] = quality[i * length + l];
            }
        }
        one_hot.swap(oh);
        quality.swap(q);
        length = new_length;
    }
};

} // namespace diffbio
