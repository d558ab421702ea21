#include <catch2/catch.hpp>

#include <vector>

#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/var.hpp>

using namespace diffbio::ad;

TEST_CASE("parameters bind as tape inputs and collect gradients", "[ad][parameter]") {
    Parameter w("w", std::vector<double>{1.0, 2.0});
    Parameter b("b", 0.5);
    CHECK(b.scalar() == 0.5);
    CHECK_THROWS_AS(w.scalar(), diffbio::ShapeError);
    Tape tape;
    ScopedTape scope(tape);
    const auto start = tape.mark();
    for (int step = 0; step < 2; ++step) {
        tape.rewind(start);
        const auto wb = bind(tape, w);
        const auto bb = bind(tape, b);
        const Var y = wb[0] * 3.0 + wb[1] * wb[1] + bb[0]; // ∂w0 = 3, ∂w1 = 2·w1, ∂b = 1
        tape.backward(y);
        accumulate_grad(tape, wb);
        accumulate_grad(tape, bb);
    }
    // Accumulated over two identical steps.
    CHECK(w.grad()[0] == Approx(6.0));
    CHECK(w.grad()[1] == Approx(8.0));
    CHECK(b.grad()[0] == Approx(2.0));
    w.zero_grad();
    CHECK(w.grad()[0] == 0.0);
}
