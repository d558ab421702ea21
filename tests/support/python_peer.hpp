#pragma once
// Optional comparisons with Python peers (scikit-learn, ...) run through Debian's /usr/bin/python3:
// a test writes its inputs as text, runs a small script on them and parses what it prints.
//
//   python_can_import("sklearn.cluster")   false (with a WARN naming the Debian package) when
//                                          /usr/bin/python3 or the module is absent: skip the test
//   write_line(out, values)                 one line of space-separated values
//   run_python(script, input, tag)          runs `python3 script input` in a fresh temporary folder
//                                          (removed afterwards); exit status and stdout+stderr

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>

#include <unistd.h>

namespace diffbio::test {

inline constexpr const char* system_python = "/usr/bin/python3";

inline bool python_can_import(const std::string& module, const std::string& debian_package = "python3-sklearn") {
    if (!std::filesystem::exists(system_python)) {
        WARN("skipped: " << system_python << " not found (Debian: " << debian_package << ")");
        return false;
    }
    const std::string cmd = std::string(system_python) + " -c 'import " + module + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
        WARN("skipped: " << system_python << " cannot import " << module << " (Debian: " << debian_package << ")");
        return false;
    }
    return true;
}

template <class V>
void write_line(std::ostream& out, const V& v) {
    for (std::size_t i = 0; i < v.size(); ++i) out << (i ? " " : "") << v[i];
    out << '\n';
}

struct PythonRun {
    int status = -1;
    std::string output; ///< stdout and stderr together
};

inline PythonRun run_python(std::string_view script, std::string_view input, const std::string& tag) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("diffbio_" + tag + "_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "run.py") << script;
    std::ofstream(dir / "input.txt") << input;
    const std::string cmd = std::string(system_python) + " " + (dir / "run.py").string() + " " +
                            (dir / "input.txt").string() + " > " + (dir / "out.txt").string() + " 2>&1";
    PythonRun run;
    run.status = std::system(cmd.c_str());
    std::ifstream out(dir / "out.txt");
    std::stringstream all;
    all << out.rdbuf();
    run.output = all.str();
    fs::remove_all(dir);
    return run;
}

} // namespace diffbio::test
