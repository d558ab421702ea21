#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include <diffbio/ad/var.hpp>
#include <diffbio/nn/adam.hpp>

using Catch::Matchers::Contains;
using diffbio::ad::Parameter;

TEST_CASE("Adam: the first three steps equal hand-computed optax values", "[nn][adam]") {
    // θ0 = 1, lr = 0.1, gradients 0.5, −0.2, 0.1. Step 1 by hand: m = 0.05, v = 0.00025,
    // m̂ = 0.5, v̂ = 0.25, θ1 = 1 − 0.1·0.5/(0.5 + 1e-8) = 0.900000002.
    Parameter theta("theta", 1.0);
    diffbio::nn::Adam adam({&theta}, {.learning_rate = 0.1});
    const double grads[3] = {0.5, -0.2, 0.1};
    const double expected[3] = {0.900000002, 0.8654394181165108, 0.8275002408356956};
    for (int k = 0; k < 3; ++k) {
        adam.zero_grad();
        theta.grad()[0] = grads[k];
        adam.step();
        CHECK(theta[0] == Approx(expected[k]).epsilon(1e-15));
    }
    CHECK(adam.step_count() == 3);
}

TEST_CASE("Adam: eps_root goes under the square root (optax)", "[nn][adam]") {
    // θ0 = 1, lr = 0.1, g = 0.5, eps_root = 0.01: θ1 = 1 − 0.1·0.5/(√(0.25 + 0.01) + 1e-8)
    // (0.90196078… if it were added outside the root).
    Parameter theta("theta", 1.0);
    diffbio::nn::Adam adam({&theta}, {.learning_rate = 0.1, .eps_root = 0.01});
    theta.grad()[0] = 0.5;
    adam.step();
    CHECK(theta[0] == Approx(0.9019419343539848).epsilon(1e-15));
}

TEST_CASE("Adam is elementwise over several parameters", "[nn][adam]") {
    Parameter a("a", std::vector<double>{1.0, 1.0});
    Parameter b("b", 1.0);
    diffbio::nn::Adam adam({&a, &b}, {.learning_rate = 0.1});
    a.grad()[0] = 0.5;
    a.grad()[1] = -3.0;
    b.grad()[0] = 0.5;
    adam.step();
    CHECK(a[0] == Approx(0.900000002).epsilon(1e-15));
    CHECK(a[1] == Approx(1.1).epsilon(1e-9)); // first Adam step moves by lr·sign(g)
    CHECK(b[0] == a[0]);
}

TEST_CASE("Adam minimises a quadratic through the tape", "[nn][adam]") {
    Parameter x("x", std::vector<double>{3.0, -2.0});
    diffbio::nn::Adam adam({&x}, {.learning_rate = 0.05});
    diffbio::ad::Tape tape;
    diffbio::ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    for (int step = 0; step < 2000; ++step) {
        tape.rewind(start);
        adam.zero_grad();
        const auto xb = diffbio::ad::bind(tape, x);
        const auto loss = (xb[0] - 1.0) * (xb[0] - 1.0) + 4.0 * (xb[1] + 0.5) * (xb[1] + 0.5);
        tape.backward(loss);
        diffbio::ad::accumulate_grad(tape, xb);
        adam.step();
    }
    CHECK(x[0] == Approx(1.0).margin(1e-3));
    CHECK(x[1] == Approx(-0.5).margin(1e-3));
}

TEST_CASE("Adam rejects bad configs, NaN gradients and resized parameters", "[nn][adam][errors]") {
    Parameter p("weights", std::vector<double>{1.0, 2.0});
    CHECK_THROWS_AS(diffbio::nn::Adam({&p}, {.learning_rate = 0.0}), diffbio::InvalidArgument);
    CHECK_THROWS_AS(diffbio::nn::Adam({&p}, {.learning_rate = 0.1, .b1 = 1.0}), diffbio::InvalidArgument);
    CHECK_THROWS_AS(diffbio::nn::Adam({&p}, {.learning_rate = 0.1, .eps = -1.0}), diffbio::InvalidArgument);
    CHECK_THROWS_AS(diffbio::nn::Adam({nullptr}), diffbio::InvalidArgument);
    diffbio::nn::Adam adam({&p});
    p.grad()[1] = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH(adam.step(), Contains("'weights'[1]") && Contains("nan"));
    CHECK(p[0] == 1.0); // nothing was updated
    CHECK(adam.step_count() == 0);
}
