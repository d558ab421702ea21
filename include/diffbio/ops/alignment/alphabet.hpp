#pragma once
// Biological sequence alphabets for the sequence-model operators (ProfileHmm), and batches of
// integer-coded sequences of different lengths.
//
//   SequenceAlphabet::dna       K = 4,  letters "ACGT" ('U' encodes as 'T')
//   SequenceAlphabet::protein   K = 20, letters "ACDEFGHIKLMNPQRSTVWY" (alphabetical, as HMMER's)
//
// A letter encodes as its index 0..K−1. Ambiguous letters encode as K ("any residue"): for DNA
// N and the IUPAC codes R Y S W K M B D H V, for protein X and B Z J U O. Models score "any" as
// the background does (log-odds 0: its likelihood is Σ_a p(a) = 1 under every distribution).
// Letters are case-insensitive; anything else (gaps, digits, '*', blanks) is an error.
//
// default_background(): DNA uniform 0.25; protein the amino-acid composition of Swiss-Prot 50.8
// (Oct 2006, 86.0M residues), the null-model frequencies HMMER uses.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <diffbio/core/error.hpp>

namespace diffbio::ops {

enum class SequenceAlphabet { dna, protein };

/// K, the number of letters (4 or 20).
constexpr std::size_t alphabet_size(SequenceAlphabet a) noexcept { return a == SequenceAlphabet::dna ? 4 : 20; }

/// The letters in code order.
constexpr std::string_view alphabet_letters(SequenceAlphabet a) noexcept {
    return a == SequenceAlphabet::dna ? std::string_view("ACGT") : std::string_view("ACDEFGHIKLMNPQRSTVWY");
}

constexpr const char* alphabet_name(SequenceAlphabet a) noexcept {
    return a == SequenceAlphabet::dna ? "dna" : "protein";
}

/// Code of a letter: 0..K−1, K for an ambiguous letter ("any"), −1 for a letter outside the alphabet.
constexpr int alphabet_code(SequenceAlphabet a, char c) noexcept {
    const char u = c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
    const std::string_view letters = alphabet_letters(a);
    for (std::size_t k = 0; k < letters.size(); ++k) {
        if (letters[k] == u) return static_cast<int>(k);
    }
    const int any = static_cast<int>(alphabet_size(a));
    if (a == SequenceAlphabet::dna) {
        if (u == 'U') return 3;
        for (char x : std::string_view("NRYSWKMBDHV")) {
            if (x == u) return any;
        }
    } else {
        for (char x : std::string_view("XBZJUO")) {
            if (x == u) return any;
        }
    }
    return -1;
}

/// Integer codes of a sequence (ambiguous letters → K). Throws InvalidArgument naming the first
/// letter outside the alphabet and its position.
inline std::vector<std::uint8_t> encode_sequence(SequenceAlphabet a, std::string_view seq) {
    std::vector<std::uint8_t> out(seq.size());
    for (std::size_t i = 0; i < seq.size(); ++i) {
        const int c = alphabet_code(a, seq[i]);
        if (c < 0) {
            const auto byte = static_cast<unsigned char>(seq[i]);
            const std::string shown =
                byte >= 0x20 && byte < 0x7f ? std::string(1, seq[i]) : "\\x" + std::to_string(byte);
            throw InvalidArgument(std::string("encode_sequence: letter '") + shown + "' at position " +
                                  std::to_string(i) + " is not in the " + alphabet_name(a) + " alphabet \"" +
                                  std::string(alphabet_letters(a)) + "\" (nor an ambiguity code)");
        }
        out[i] = static_cast<std::uint8_t>(c);
    }
    return out;
}

/// Background (null-model) letter frequencies: DNA uniform, protein Swiss-Prot 50.8 composition.
inline std::vector<double> default_background(SequenceAlphabet a) {
    if (a == SequenceAlphabet::dna) return {0.25, 0.25, 0.25, 0.25};
    // A C D E F G H I K L M N P Q R S T V W Y
    return {0.0787945, 0.0151600, 0.0535222, 0.0668298, 0.0397062, 0.0695071, 0.0229198,
            0.0590092, 0.0594422, 0.0963728, 0.0237718, 0.0414386, 0.0482904, 0.0395639,
            0.0540978, 0.0683364, 0.0540687, 0.0673417, 0.0114135, 0.0304133};
}

/// Integer-coded sequences of different lengths, concatenated: sequence n is
/// codes[offsets[n], offsets[n + 1]). Codes are 0..K−1 and K ("any"); operators check them.
struct SequenceBatch {
    std::vector<std::uint8_t> codes;
    std::vector<std::size_t> offsets{0};

    SequenceBatch() = default;
    /// Encodes every string (encode_sequence's errors, with the sequence index added).
    SequenceBatch(SequenceAlphabet a, std::span<const std::string> seqs) {
        for (std::size_t n = 0; n < seqs.size(); ++n) {
            try {
                add(encode_sequence(a, seqs[n]));
            } catch (const InvalidArgument& e) {
                throw InvalidArgument("sequence " + std::to_string(n) + ": " + e.what());
            }
        }
    }

    void add(std::span<const std::uint8_t> seq) {
        codes.insert(codes.end(), seq.begin(), seq.end());
        offsets.push_back(codes.size());
    }
    void add(SequenceAlphabet a, std::string_view seq) { add(encode_sequence(a, seq)); }

    std::size_t size() const noexcept { return offsets.empty() ? 0 : offsets.size() - 1; }
    std::size_t length(std::size_t n) const { return offsets.at(n + 1) - offsets.at(n); }
    std::span<const std::uint8_t> sequence(std::size_t n) const {
        return std::span<const std::uint8_t>(codes).subspan(offsets.at(n), length(n));
    }
};

/// Soft sequences (profiles): sequence n is lengths[n] rows of K non-negative weights, all rows
/// concatenated in `rows` [Σ lengths × K]. Row x_i weighs the letters by the likelihood of the
/// observation: a one-hot row is the letter, a uniform row (any scale) is "any". S may be a
/// plain number or an AD scalar; gradients flow to the rows.
template <class S>
struct SoftSequences {
    std::span<const S> rows;
    std::span<const std::size_t> lengths;
};

} // namespace diffbio::ops
