#pragma once
// FastqRecord and PhredEncoding: one sequencing read as it stands in a FASTQ or FASTA file, and
// the two ASCII encodings of its Phred quality scores. Shared by the readers and the writers.

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include <diffbio/core/error.hpp>

namespace diffbio::io {

/// One read. `quality` holds the raw quality characters of the file (not decoded); it is empty
/// for a FASTA record. `name` is the header up to the first whitespace (without '@' or '>'),
/// `comment` the rest of the header after that one whitespace character.
struct FastqRecord {
    std::string name;
    std::string comment;
    std::string sequence;
    std::string quality;

    friend bool operator==(const FastqRecord&, const FastqRecord&) = default;
};

/// How Phred scores are written as characters: character = score + 33 (Sanger, Illumina 1.8+)
/// or score + 64 (Illumina 1.3 to 1.7). Auto asks a reader to detect it.
enum class PhredEncoding { Auto, Phred33, Phred64 };

/// "auto", "phred+33" or "phred+64".
constexpr const char* to_string(PhredEncoding e) noexcept {
    switch (e) {
    case PhredEncoding::Phred33: return "phred+33";
    case PhredEncoding::Phred64: return "phred+64";
    default: return "auto";
    }
}

/// The ASCII offset of an encoding: 33 or 64. O(1).
/// Errors: diffbio::InvalidArgument for PhredEncoding::Auto, which has no offset.
constexpr int phred_offset(PhredEncoding e) {
    switch (e) {
    case PhredEncoding::Phred33: return 33;
    case PhredEncoding::Phred64: return 64;
    default: throw InvalidArgument("phred_offset: PhredEncoding::Auto has no offset; detect or choose an encoding first");
    }
}

namespace detail {

/// Bytes allowed in a sequence: letters (IUPAC codes and anything else alphabetic), '.', '-'
/// and '*'. Letters other than ACGTU and '.', '-', '*' all become the uniform one-hot row.
inline constexpr std::array<bool, 256> sequence_chars = [] {
    std::array<bool, 256> t{};
    for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = t[static_cast<std::size_t>(c - 'A' + 'a')] = true;
    t['.'] = t['-'] = t['*'] = true;
    return t;
}();

inline bool is_sequence_char(char c) noexcept { return sequence_chars[static_cast<unsigned char>(c)]; }
inline bool is_quality_char(char c) noexcept { return c >= '!' && c <= '~'; }

/// A character for an error message: 'x' when printable, otherwise its code, e.g. 0x09.
inline std::string describe_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    static constexpr char hex[] = "0123456789abcdef";
    std::string code = "0x";
    code += hex[u >> 4];
    code += hex[u & 15];
    std::string s;
    if (u >= 0x21 && u <= 0x7e) {
        s += '\'';
        s += c;
        s += "' (";
        s += code;
        s += ')';
    } else if (u == ' ') {
        s = "a space (0x20)";
    } else {
        s = "byte ";
        s += code;
    }
    return s;
}

/// The start of a line for an error message, at most 40 characters, non-printables escaped.
inline std::string describe_line(std::string_view line) {
    if (line.empty()) return "an empty line";
    std::string s = "'";
    const std::size_t n = line.size() < 40 ? line.size() : 40;
    for (std::size_t i = 0; i < n; ++i) {
        const auto u = static_cast<unsigned char>(line[i]);
        if (u >= 0x20 && u <= 0x7e) {
            s += line[i];
        } else {
            static constexpr char hex[] = "0123456789abcdef";
            s += "\\x";
            s += hex[u >> 4];
            s += hex[u & 15];
        }
    }
    if (line.size() > n) s += "...";
    return s + "'";
}

/// Splits a header line (without its '@' or '>') at the first space or tab: the name before it,
/// the comment after it (exactly one whitespace character is dropped). O(header length).
inline void split_header(std::string_view header, std::string& name, std::string& comment) {
    std::size_t ws = 0;
    while (ws < header.size() && header[ws] != ' ' && header[ws] != '\t') ++ws;
    name.assign(header.data(), ws);
    if (ws < header.size()) {
        comment.assign(header.data() + ws + 1, header.size() - ws - 1);
    } else {
        comment.clear();
    }
}

} // namespace detail

/// Decodes quality characters into Phred scores: phred[i] = quality[i] − offset(encoding).
/// O(n). The characters are not validated here (the readers do that while parsing).
/// Errors: diffbio::ShapeError when the sizes differ; InvalidArgument for PhredEncoding::Auto.
inline void decode_phred(std::string_view quality, PhredEncoding encoding, std::span<float> phred) {
    if (phred.size() != quality.size()) {
        throw ShapeError("decode_phred: " + std::to_string(quality.size()) + " quality characters but room for " +
                         std::to_string(phred.size()) + " scores");
    }
    const int offset = phred_offset(encoding);
    for (std::size_t i = 0; i < quality.size(); ++i) {
        phred[i] = static_cast<float>(static_cast<int>(static_cast<unsigned char>(quality[i])) - offset);
    }
}

} // namespace diffbio::io
