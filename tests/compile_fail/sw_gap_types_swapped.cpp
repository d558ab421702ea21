// Must NOT compile: GapOpen and GapExtend are distinct strong types, so an extend penalty cannot be
// passed where the open penalty is expected (nor a bare double; see scoring.hpp).
// compile-fail-regex: GapExtend.* to .*GapOpen
#include <diffbio/ops/alignment/smith_waterman.hpp>

int main() {
    const diffbio::ops::SmithWatermanConfig cfg{.gap_open = diffbio::ops::GapExtend{1.0}};
    return cfg.hard ? 1 : 0;
}
