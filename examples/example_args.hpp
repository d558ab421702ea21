#pragma once
// The examples' hand-written command lines ("--flag value" pairs and bare switches): shared by
// cnv_coriell.cpp and variant_calling.cpp. Not part of the library.

#include <string>

#include <diffbio/core/error.hpp>

namespace example_args {

/// Calls handle(k, value) for each argument k of argv[1..argc); value() takes the argument after
/// k as its value (InvalidArgument "missing value after k" when there is none). handle returns
/// false for an argument it does not know, which throws InvalidArgument "unknown argument 'k'".
template <class Handle>
void for_each_arg(int argc, char** argv, Handle&& handle) {
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw diffbio::InvalidArgument("missing value after " + k);
            return argv[++i];
        };
        if (!handle(k, value)) throw diffbio::InvalidArgument("unknown argument '" + k + "'");
    }
}

} // namespace example_args
