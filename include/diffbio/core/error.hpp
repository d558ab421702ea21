#pragma once
// Error types of diffbio. Every exception the library throws derives from diffbio::Error,
// and its message names the offending value and where it came from.

#include <stdexcept>
#include <string>

namespace diffbio {

/// Base of all diffbio exceptions.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A function argument or configuration value is out of its domain (τ <= 0, NaN, wrong shape...).
class InvalidArgument : public Error {
public:
    using Error::Error;
};

/// Array extents that do not agree with each other.
class ShapeError : public InvalidArgument {
public:
    using InvalidArgument::InvalidArgument;
};

/// An input file is malformed; the message carries the file name and line number.
class ParseError : public Error {
public:
    ParseError(const std::string& file, long line, const std::string& what)
        : Error(file + ":" + std::to_string(line) + ": " + what), file_(file), line_(line) {}
    const std::string& file() const noexcept { return file_; }
    long line() const noexcept { return line_; }

private:
    std::string file_;
    long line_;
};

/// Misuse of the autodiff machinery (no active tape, a Var from a rewound tape, ...).
class AdError : public Error {
public:
    using Error::Error;
};

/// A backend failure (CUDA runtime error, out of device memory, ...).
class BackendError : public Error {
public:
    using Error::Error;
};

} // namespace diffbio
