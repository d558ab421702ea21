#include <catch2/catch.hpp>

#include <vector>

#include <diffbio/ad/binder.hpp>
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

TEST_CASE("Binder<Var> binds a parameter once: a second bind returns the same Vars", "[ad][parameter][binder]") {
    Parameter a("a", std::vector<double>{1.0, 2.0}), b("b", 3.0), c("c", std::vector<double>{4.0, 5.0, 6.0});
    Tape tape;
    ScopedTape scope(tape);
    Binder<Var> bind_var(tape);
    const auto a1 = bind_var(a);
    const auto b1 = bind_var(b);
    const auto c1 = bind_var(c);
    const auto b2 = bind_var(b); // cached: the same tape inputs
    const auto a2 = bind_var(a);
    REQUIRE(a2.size() == 2);
    REQUIRE(b2.size() == 1);
    CHECK(a2[1].index == a1[1].index);
    CHECK(b2[0].index == b1[0].index);
    const Var y = a1[0] * b1[0] + a2[1] * b2[0] + c1[2]; // ∂a = (b, b), ∂b = a0 + a1, ∂c2 = 1
    tape.backward(y);
    bind_var.accumulate_grad(); // each parameter once
    CHECK(a.grad()[0] == 3.0);
    CHECK(a.grad()[1] == 3.0);
    CHECK(b.grad()[0] == 3.0);
    CHECK(c.grad()[2] == 1.0);
    CHECK(c.grad()[0] == 0.0);
}
