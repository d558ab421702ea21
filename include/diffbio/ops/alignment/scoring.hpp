#pragma once
// Scoring for pairwise alignment: substitution matrices and strong gap-penalty types.
//
// SubstitutionMatrix: an A×A matrix S over an alphabet of A letters (row-major, S[a·A + b] is the
// score of aligning letter a of the first sequence with letter b of the second). Cell scores of
// the alignment DP are s_ij = x_iᵀ S y_j for one-hot or soft rows x_i, y_j (for integer codes,
// s_ij = S[a_i, b_j]).
//   SubstitutionMatrix::dna(match, mismatch)   alphabet "ACGT", match on the diagonal (default 2),
//                                              mismatch elsewhere (default −1); 'U' encodes as 'T'
//   SubstitutionMatrix::blosum62()             alphabet "ARNDCQEGHILKMFPSTWYV", the published
//                                              BLOSUM62 values (Henikoff & Henikoff 1992)
//
// GapOpen / GapExtend: gap PENALTIES, non-negative numbers that are SUBTRACTED. A gap of length k
// scores −(open + (k − 1)·extend): the first gap position costs `open`, each further one `extend`.
// This is parasail's convention, so GapOpen{o} and GapExtend{e} are parasail's `open` and `gap`
// arguments unchanged (parasail_sw(s1, l1, s2, l2, o, e, matrix)). In BLAST's convention a gap of
// length k costs open_B + k·extend_B, so open_B = o − e. DiffBio's (negative, added) g_o and g_e
// map to GapOpen{−g_o}, GapExtend{−g_e}. The two are distinct types so that they cannot be
// swapped by accident: `GapOpen{10}, GapExtend{1}`.

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/core/validate.hpp>

namespace diffbio::ops {

/// Penalty of the first position of a gap (subtracted; parasail's `open`). Explicit: neither a bare
/// double nor a GapExtend converts to it.
struct GapOpen {
    double value = 0.0;
    constexpr GapOpen() = default;
    constexpr explicit GapOpen(double v) : value(v) {}
};

/// Penalty of every further position of a gap (subtracted; parasail's `gap`/extend).
struct GapExtend {
    double value = 0.0;
    constexpr GapExtend() = default;
    constexpr explicit GapExtend(double v) : value(v) {}
};

class SubstitutionMatrix {
public:
    /// A matrix over `alphabet` (distinct letters, case-insensitive) with values [A × A] row-major.
    /// Throws ShapeError when values.size() != A², InvalidArgument for an empty or repeated
    /// alphabet or a non-finite value.
    SubstitutionMatrix(std::string alphabet, std::vector<double> values)
        : alphabet_(std::move(alphabet)), values_(std::move(values)) {
        if (alphabet_.empty()) throw InvalidArgument("SubstitutionMatrix: the alphabet is empty");
        if (alphabet_.size() > 255) throw InvalidArgument("SubstitutionMatrix: more than 255 letters");
        lookup_.fill(-1);
        for (std::size_t k = 0; k < alphabet_.size(); ++k) {
            const auto c = static_cast<unsigned char>(alphabet_[k]);
            for (const unsigned char v : {upper(c), lower(c)}) {
                if (lookup_[v] == static_cast<std::int16_t>(k)) continue; // a letter without case
                if (lookup_[v] >= 0) {
                    throw InvalidArgument(std::string("SubstitutionMatrix: letter '") + alphabet_[k] +
                                          "' appears twice in the alphabet \"" + alphabet_ + "\"");
                }
                lookup_[v] = static_cast<std::int16_t>(k);
            }
        }
        const std::size_t a = alphabet_.size();
        if (values_.size() != a * a) {
            throw ShapeError("SubstitutionMatrix: " + std::to_string(values_.size()) + " values for an alphabet of " +
                             std::to_string(a) + " letters (\"" + alphabet_ + "\"), expected " +
                             std::to_string(a * a) + " (A x A)");
        }
        for (std::size_t k = 0; k < values_.size(); ++k) {
            if (!std::isfinite(values_[k])) {
                throw InvalidArgument("SubstitutionMatrix: entry (" + std::to_string(k / a) + ", " +
                                      std::to_string(k % a) + ") is not finite: " +
                                      diffbio::detail::format_value(values_[k]));
            }
        }
    }

    /// DNA: alphabet "ACGT", `match` on the diagonal, `mismatch` elsewhere ('U' reads as 'T').
    static SubstitutionMatrix dna(double match = 2.0, double mismatch = -1.0) {
        std::vector<double> v(16);
        for (std::size_t a = 0; a < 4; ++a) {
            for (std::size_t b = 0; b < 4; ++b) v[a * 4 + b] = a == b ? match : mismatch;
        }
        SubstitutionMatrix m("ACGT", std::move(v));
        m.lookup_['U'] = m.lookup_['u'] = 3;
        return m;
    }

    /// BLOSUM62 over "ARNDCQEGHILKMFPSTWYV" (symmetric, integer half-bit scores).
    static SubstitutionMatrix blosum62() {
        // clang-format off
        static constexpr std::array<std::int8_t, 400> b62 = {
        //   A   R   N   D   C   Q   E   G   H   I   L   K   M   F   P   S   T   W   Y   V
             4, -1, -2, -2,  0, -1, -1,  0, -2, -1, -1, -1, -1, -2, -1,  1,  0, -3, -2,  0, // A
            -1,  5,  0, -2, -3,  1,  0, -2,  0, -3, -2,  2, -1, -3, -2, -1, -1, -3, -2, -3, // R
            -2,  0,  6,  1, -3,  0,  0,  0,  1, -3, -3,  0, -2, -3, -2,  1,  0, -4, -2, -3, // N
            -2, -2,  1,  6, -3,  0,  2, -1, -1, -3, -4, -1, -3, -3, -1,  0, -1, -4, -3, -3, // D
             0, -3, -3, -3,  9, -3, -4, -3, -3, -1, -1, -3, -1, -2, -3, -1, -1, -2, -2, -1, // C
            -1,  1,  0,  0, -3,  5,  2, -2,  0, -3, -2,  1,  0, -3, -1,  0, -1, -2, -1, -2, // Q
            -1,  0,  0,  2, -4,  2,  5, -2,  0, -3, -3,  1, -2, -3, -1,  0, -1, -3, -2, -2, // E
             0, -2,  0, -1, -3, -2, -2,  6, -2, -4, -4, -2, -3, -3, -2,  0, -2, -2, -3, -3, // G
            -2,  0,  1, -1, -3,  0,  0, -2,  8, -3, -3, -1, -2, -1, -2, -1, -2, -2,  2, -3, // H
            -1, -3, -3, -3, -1, -3, -3, -4, -3,  4,  2, -3,  1,  0, -3, -2, -1, -3, -1,  3, // I
            -1, -2, -3, -4, -1, -2, -3, -4, -3,  2,  4, -2,  2,  0, -3, -2, -1, -2, -1,  1, // L
            -1,  2,  0, -1, -3,  1,  1, -2, -1, -3, -2,  5, -1, -3, -1,  0, -1, -3, -2, -2, // K
            -1, -1, -2, -3, -1,  0, -2, -3, -2,  1,  2, -1,  5,  0, -2, -1, -1, -1, -1,  1, // M
            -2, -3, -3, -3, -2, -3, -3, -3, -1,  0,  0, -3,  0,  6, -4, -2, -2,  1,  3, -1, // F
            -1, -2, -2, -1, -3, -1, -1, -2, -2, -3, -3, -1, -2, -4,  7, -1, -1, -4, -3, -2, // P
             1, -1,  1,  0, -1,  0,  0,  0, -1, -2, -2,  0, -1, -2, -1,  4,  1, -3, -2, -2, // S
             0, -1,  0, -1, -1, -1, -1, -2, -2, -1, -1, -1, -1, -2, -1,  1,  5, -2, -2,  0, // T
            -3, -3, -4, -4, -2, -2, -3, -2, -2, -3, -2, -3, -1,  1, -4, -3, -2, 11,  2, -3, // W
            -2, -2, -2, -3, -2, -1, -2, -3,  2, -1, -1, -2, -1,  3, -3, -2, -2,  2,  7, -1, // Y
             0, -3, -3, -3, -1, -2, -2, -3, -3,  3,  1, -2,  1, -1, -2, -2,  0, -3, -1,  4, // V
        };
        // clang-format on
        return SubstitutionMatrix("ARNDCQEGHILKMFPSTWYV", std::vector<double>(b62.begin(), b62.end()));
    }

    /// A, the number of letters.
    std::size_t size() const noexcept { return alphabet_.size(); }
    const std::string& alphabet() const noexcept { return alphabet_; }
    std::span<const double> values() const noexcept { return values_; }
    double operator()(std::size_t a, std::size_t b) const { return values_.at(a * size() + b); }

    /// The code (row index) of a letter, or −1 when it is not in the alphabet.
    int code(char c) const noexcept { return lookup_[static_cast<unsigned char>(c)]; }

    /// Integer codes of a sequence. Throws InvalidArgument naming the first letter that is not in
    /// the alphabet and its position.
    std::vector<std::uint8_t> encode(std::string_view seq) const {
        std::vector<std::uint8_t> out(seq.size());
        for (std::size_t i = 0; i < seq.size(); ++i) {
            const int c = code(seq[i]);
            if (c < 0) {
                throw InvalidArgument(std::string("SubstitutionMatrix::encode: letter '") + seq[i] + "' at position " +
                                      std::to_string(i) + " is not in the alphabet \"" + alphabet_ + "\"");
            }
            out[i] = static_cast<std::uint8_t>(c);
        }
        return out;
    }

    /// One-hot rows [len × A] of a sequence (same errors as encode).
    std::vector<double> one_hot(std::string_view seq) const {
        const std::vector<std::uint8_t> c = encode(seq);
        std::vector<double> out(c.size() * size(), 0.0);
        for (std::size_t i = 0; i < c.size(); ++i) out[i * size() + c[i]] = 1.0;
        return out;
    }

private:
    static unsigned char upper(unsigned char c) { return c >= 'a' && c <= 'z' ? static_cast<unsigned char>(c - 32) : c; }
    static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? static_cast<unsigned char>(c + 32) : c; }

    std::string alphabet_;
    std::vector<double> values_;
    std::array<std::int16_t, 256> lookup_{};
};

} // namespace diffbio::ops
