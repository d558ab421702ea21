#pragma once
// Multiple sequence alignments and FASTA sequences from text, without htslib: the inputs of
// ProfileHmm::from_msa and of the examples that score sequence files.
//
//   parse_stockholm(in, alphabet, source)      Stockholm 1.0, minimally: the first non-blank line is
//                                              the "# STOCKHOLM 1.0" header; "<name> <aligned row>"
//                                              lines, interleaved blocks appended by name; every
//                                              other '#' line (#=GF, #=GS, #=GR, #=GC) and blank
//                                              lines ignored; "//" ends the alignment (anything
//                                              after it is not read)
//   parse_aligned_fasta(in, alphabet, source)  FASTA whose sequences are aligned rows
//   parse_fasta(in, alphabet, source)          plain FASTA records (no gaps allowed)
//   parse_msa(in, alphabet, source)            Stockholm or aligned FASTA, told apart by the first
//                                              non-blank line
//   read_msa(path, alphabet), read_fasta(path, alphabet)   the same from a file
//
// Residues are letters of the alphabet or its ambiguity codes (alphabet.hpp), any case; gaps are
// '-', '.', '_' and '~'. Malformed input throws diffbio::ParseError(source, line, what): a missing
// header or "//", a sequence line without a sequence, a character that is neither a residue nor a
// gap, rows of different lengths, no sequences. A file that cannot be opened throws diffbio::Error
// with the system's reason. Everything is O(size of the text).

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <functional>
#include <istream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <diffbio/core/error.hpp>
#include <diffbio/ops/alignment/alphabet.hpp>

namespace diffbio::ops {

/// An alignment: rows[n] is sequence names[n] over columns() columns (residues and gaps as read).
struct Msa {
    std::vector<std::string> names;
    std::vector<std::string> rows;

    std::size_t size() const noexcept { return rows.size(); }
    std::size_t columns() const noexcept { return rows.empty() ? 0 : rows[0].size(); }
};

/// A FASTA record: the name (first word after '>'), the rest of the header, the sequence.
struct FastaRecord {
    std::string name;
    std::string description;
    std::string sequence;
};

/// '-', '.', '_' or '~'.
constexpr bool is_gap_character(char c) noexcept { return c == '-' || c == '.' || c == '_' || c == '~'; }

namespace detail {

inline std::string_view msa_trim(std::string_view s) {
    const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

inline std::string msa_shown(char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte >= 0x20 && byte < 0x7f ? std::string(1, c) : "\\x" + std::to_string(byte);
}

/// Throws a ParseError for the first character of `chunk` that is neither a residue nor (when
/// allowed) a gap. `column0` is the position of chunk[0] in its row.
inline void msa_check_characters(std::string_view chunk, SequenceAlphabet a, bool gaps, const std::string& source,
                                 long line, const std::string& name, std::size_t column0) {
    for (std::size_t j = 0; j < chunk.size(); ++j) {
        const char c = chunk[j];
        if (alphabet_code(a, c) >= 0 || (gaps && is_gap_character(c))) continue;
        throw ParseError(source, line,
                         "character '" + msa_shown(c) + "' at position " + std::to_string(column0 + j) +
                             " of sequence '" + name + "' is not a residue of the " + alphabet_name(a) + " alphabet" +
                             (gaps ? " nor a gap" : ""));
    }
}

inline std::vector<FastaRecord> fasta_records(std::istream& in, SequenceAlphabet a, const std::string& source,
                                              bool gaps, std::vector<long>* header_lines) {
    std::vector<FastaRecord> out;
    std::string raw;
    long line = 0;
    while (std::getline(in, raw)) {
        ++line;
        const std::string_view s = msa_trim(raw);
        if (s.empty()) continue;
        if (s.front() == '>') {
            const std::string_view h = msa_trim(s.substr(1));
            const std::size_t sp = h.find_first_of(" \t");
            FastaRecord r;
            r.name = std::string(h.substr(0, sp));
            if (sp != std::string_view::npos) r.description = std::string(msa_trim(h.substr(sp)));
            if (r.name.empty()) throw ParseError(source, line, "FASTA header without a sequence name");
            out.push_back(std::move(r));
            if (header_lines != nullptr) header_lines->push_back(line);
            continue;
        }
        if (out.empty()) {
            throw ParseError(source, line, "sequence data before the first FASTA header ('>name')");
        }
        FastaRecord& r = out.back();
        for (char c : s) {
            if (c == ' ' || c == '\t') continue;
            msa_check_characters(std::string_view(&c, 1), a, gaps, source, line, r.name, r.sequence.size());
            r.sequence.push_back(c);
        }
    }
    if (out.empty()) throw ParseError(source, line, "no FASTA records");
    return out;
}

inline std::ifstream msa_open(const std::string& path, const char* what) {
    std::ifstream in(path);
    if (!in) throw Error(std::string(what) + ": cannot open '" + path + "': " + std::strerror(errno));
    return in;
}

} // namespace detail

/// Plain FASTA records (residues only, no gaps).
inline std::vector<FastaRecord> parse_fasta(std::istream& in, SequenceAlphabet a,
                                            const std::string& source = "<stream>") {
    return detail::fasta_records(in, a, source, false, nullptr);
}

/// FASTA whose sequences are rows of an alignment (gaps allowed, every row the same length).
inline Msa parse_aligned_fasta(std::istream& in, SequenceAlphabet a, const std::string& source = "<stream>") {
    std::vector<long> lines;
    std::vector<FastaRecord> recs = detail::fasta_records(in, a, source, true, &lines);
    for (std::size_t n = 1; n < recs.size(); ++n) {
        if (recs[n].sequence.size() != recs[0].sequence.size()) {
            throw ParseError(source, lines[n],
                             "aligned sequence '" + recs[n].name + "' has " + std::to_string(recs[n].sequence.size()) +
                                 " columns but '" + recs[0].name + "' has " + std::to_string(recs[0].sequence.size()));
        }
    }
    Msa msa;
    for (std::size_t n = 0; n < recs.size(); ++n) {
        msa.names.push_back(std::move(recs[n].name));
        msa.rows.push_back(std::move(recs[n].sequence));
    }
    if (msa.columns() == 0) throw ParseError(source, lines[0], "the aligned sequences are empty");
    return msa;
}

/// Stockholm 1.0 (see the top of this header for what is read).
inline Msa parse_stockholm(std::istream& in, SequenceAlphabet a, const std::string& source = "<stream>") {
    Msa msa;
    std::map<std::string, std::size_t, std::less<>> index;
    std::vector<long> last_line;
    std::string raw;
    long line = 0;
    bool header = false, ended = false;
    while (std::getline(in, raw)) {
        ++line;
        const std::string_view s = detail::msa_trim(raw);
        if (s.empty()) continue;
        if (!header) {
            if (s.substr(0, 11) != "# STOCKHOLM") {
                throw ParseError(source, line, "not a Stockholm file: expected the header '# STOCKHOLM 1.0'");
            }
            header = true;
            continue;
        }
        if (s == "//") {
            ended = true;
            break;
        }
        if (s.front() == '#') continue;
        const std::size_t sp = s.find_first_of(" \t");
        if (sp == std::string_view::npos) {
            throw ParseError(source, line, "sequence line '" + std::string(s) + "' has a name but no aligned sequence");
        }
        const std::string name(s.substr(0, sp));
        const std::string_view row = detail::msa_trim(s.substr(sp));
        if (row.find_first_of(" \t") != std::string_view::npos) {
            throw ParseError(source, line, "expected '<name> <aligned sequence>', got more than two fields");
        }
        auto it = index.find(name);
        if (it == index.end()) {
            it = index.emplace(name, msa.rows.size()).first;
            msa.names.push_back(name);
            msa.rows.emplace_back();
            last_line.push_back(line);
        }
        std::string& r = msa.rows[it->second];
        detail::msa_check_characters(row, a, true, source, line, name, r.size());
        r.append(row);
        last_line[it->second] = line;
    }
    if (!header) throw ParseError(source, line, "empty input: expected the header '# STOCKHOLM 1.0'");
    if (!ended) throw ParseError(source, line, "missing the '//' line that ends a Stockholm alignment");
    if (msa.rows.empty()) throw ParseError(source, line, "no sequences in the alignment");
    for (std::size_t n = 1; n < msa.rows.size(); ++n) {
        if (msa.rows[n].size() != msa.rows[0].size()) {
            throw ParseError(source, last_line[n],
                             "aligned sequence '" + msa.names[n] + "' has " + std::to_string(msa.rows[n].size()) +
                                 " columns but '" + msa.names[0] + "' has " + std::to_string(msa.rows[0].size()));
        }
    }
    return msa;
}

/// Stockholm or aligned FASTA, told apart by the first non-blank line ("# STOCKHOLM" or '>').
inline Msa parse_msa(std::istream& in, SequenceAlphabet a, const std::string& source = "<stream>") {
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t p = 0;
    long line = 1;
    while (p < text.size() && (text[p] == ' ' || text[p] == '\t' || text[p] == '\r' || text[p] == '\n')) {
        if (text[p] == '\n') ++line;
        ++p;
    }
    std::istringstream again(text);
    if (text.compare(p, 1, ">") == 0) return parse_aligned_fasta(again, a, source);
    if (text.compare(p, 11, "# STOCKHOLM") == 0) return parse_stockholm(again, a, source);
    throw ParseError(source, line, "unknown alignment format: expected '# STOCKHOLM 1.0' or a FASTA header '>'");
}

inline Msa read_msa(const std::string& path, SequenceAlphabet a) {
    std::ifstream in = detail::msa_open(path, "read_msa");
    return parse_msa(in, a, path);
}

inline std::vector<FastaRecord> read_fasta(const std::string& path, SequenceAlphabet a) {
    std::ifstream in = detail::msa_open(path, "read_fasta");
    return parse_fasta(in, a, path);
}

} // namespace diffbio::ops
