#include <catch2/catch.hpp>

#include <utility>

#include <cmath>
#include <thread>

#include <diffbio/ad/var.hpp>

using Catch::Matchers::Contains;
using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::ad::Var;

TEST_CASE("Var records partials at forward time and sweeps once", "[ad][var]") {
    Tape tape;
    ScopedTape scope(tape);
    const Var x = tape.variable(2.0);
    const Var y = tape.variable(5.0);
    const Var z = x * y + exp(x) / y - 3.0 * x; // ∂z/∂x = y + e^x/y − 3, ∂z/∂y = x − e^x/y²
    CHECK(z.value() == Approx(10.0 + std::exp(2.0) / 5.0 - 6.0));
    tape.backward(z);
    CHECK(tape.adjoint(x) == Approx(5.0 + std::exp(2.0) / 5.0 - 3.0).epsilon(1e-15));
    CHECK(tape.adjoint(y) == Approx(2.0 - std::exp(2.0) / 25.0).epsilon(1e-15));
    // x*y: 2 operands, exp: 1, /: 2, 3.0*x: 1, −: 2, +: 2; plus 2 leaves
    CHECK(tape.num_vars() == 8);
    CHECK(tape.num_operands() == 10);
}

TEST_CASE("a Var used many times accumulates its adjoint", "[ad][var]") {
    Tape tape;
    ScopedTape scope(tape);
    const Var x = tape.variable(1.5);
    Var s = 0.0;
    for (int i = 0; i < 10; ++i) s += x * x;
    tape.backward(s);
    CHECK(tape.adjoint(x) == Approx(10 * 2 * 1.5));
}

TEST_CASE("compound assignment and mixed double arithmetic", "[ad][var]") {
    Tape tape;
    ScopedTape scope(tape);
    const Var x = tape.variable(4.0);
    Var y = x;
    y -= 1.0;
    y *= 2.0;
    y /= x;
    y += 1;
    tape.backward(y); // y = 2(x−1)/x + 1, dy/dx = 2/x²
    CHECK(y.value() == Approx(2.5));
    CHECK(tape.adjoint(x) == Approx(2.0 / 16.0));
    CHECK(x > 3.0);
    CHECK(5.0 > x);
    CHECK(x == tape.variable(4.0));
}

TEST_CASE("Var *= Var, Var / double, and max/min ties take the first argument", "[ad][var]") {
    Tape tape;
    ScopedTape scope(tape);
    const Var a = tape.variable(3.0), b = tape.variable(2.0);
    Var p = a;
    p *= b;                   // 6
    const Var s = p + a / 4.0; // ∂a = b + 1/4, ∂b = a
    tape.backward(s);
    CHECK(s.value() == 6.75);
    CHECK(tape.adjoint(a) == 2.25);
    CHECK(tape.adjoint(b) == 3.0);
    Var d = a;
    d /= 4.0;
    tape.backward(d);
    CHECK(tape.adjoint(a) == 0.25);

    const Var c = tape.variable(3.0); // ties with a
    auto grads = [&](const Var& y) {
        tape.backward(y);
        return std::pair{tape.adjoint(a), tape.adjoint(c)};
    };
    CHECK(grads(max(a, c)) == std::pair{1.0, 0.0});
    CHECK(grads(max(c, a)) == std::pair{0.0, 1.0});
    CHECK(grads(min(a, c)) == std::pair{1.0, 0.0});
    CHECK(grads(min(c, a)) == std::pair{0.0, 1.0});
    CHECK(grads(2.0 * max(a, 3.0)) == std::pair{2.0, 0.0});
    CHECK(grads(2.0 * min(a, 3.0)) == std::pair{2.0, 0.0});
    CHECK(grads(a + max(3.0, a)) == std::pair{1.0, 0.0}); // the constant wins the tie
    CHECK(grads(a + min(3.0, a)) == std::pair{1.0, 0.0});
    // |x| at 0 has derivative 0, as for Dual.
    const Var z = tape.variable(0.0);
    tape.backward(abs(z));
    CHECK(tape.adjoint(z) == 0.0);
}

TEST_CASE("Var misuse raises AdError with a message, never a crash", "[ad][var][errors]") {
    SECTION("no active tape") {
        const Var a;
        CHECK_THROWS_AS(a + a, diffbio::AdError);
        CHECK_THROWS_WITH(Var(1.0), Contains("active tape"));
    }
    SECTION("uninitialised Var") {
        Tape tape;
        ScopedTape scope(tape);
        const Var a;
        CHECK_THROWS_WITH(a * 2.0, Contains("never initialised"));
        CHECK_THROWS_AS(tape.backward(a), diffbio::AdError);
    }
    SECTION("Var from a rewound tape") {
        Tape tape;
        ScopedTape scope(tape);
        const auto m = tape.mark();
        const Var a = tape.variable(1.0);
        tape.rewind(m);
        CHECK_THROWS_WITH(exp(a), Contains("rewound"));
    }
}

TEST_CASE("ScopedTape nests and restores the previous tape", "[ad][var]") {
    Tape outer, inner;
    ScopedTape s1(outer);
    const Var a = 1.0;
    {
        ScopedTape s2(inner);
        CHECK(&Tape::active() == &inner);
        const Var b = 2.0;
        CHECK(inner.num_vars() == 1);
        (void)b;
    }
    CHECK(&Tape::active() == &outer);
    CHECK(outer.num_vars() == 1);
    (void)a;
}

TEST_CASE("each thread records on its own active tape", "[ad][var][threads]") {
    double g1 = 0, g2 = 0;
    auto work = [](double x0, double* g) {
        Tape tape;
        ScopedTape scope(tape);
        const Var x = tape.variable(x0);
        Var y = 0.0;
        for (int i = 0; i < 20000; ++i) y += sigmoid(x * static_cast<double>(i % 7));
        tape.backward(y);
        *g = tape.adjoint(x);
    };
    auto expected = [](double x0) {
        double g = 0;
        for (int i = 0; i < 20000; ++i) {
            const double c = i % 7;
            const double s = diffbio::sigmoid(x0 * c);
            g += s * (1 - s) * c;
        }
        return g;
    };
    std::thread t1(work, 0.1, &g1);
    std::thread t2(work, -0.4, &g2);
    t1.join();
    t2.join();
    CHECK(g1 == Approx(expected(0.1)).epsilon(1e-12));
    CHECK(g2 == Approx(expected(-0.4)).epsilon(1e-12));
    CHECK(Tape::active_or_null() == nullptr);
}
