#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <diffbio/nn/sgd.hpp>

using diffbio::ad::Parameter;

TEST_CASE("SGD without momentum: theta -= lr * g", "[nn][sgd]") {
    Parameter p("p", std::vector<double>{1.0, -1.0});
    diffbio::nn::SGD sgd({&p}, {.learning_rate = 0.5});
    p.grad()[0] = 0.2;
    p.grad()[1] = -0.4;
    sgd.step();
    CHECK(p[0] == Approx(0.9));
    CHECK(p[1] == Approx(-0.8));
}

TEST_CASE("SGD with momentum and Nesterov: three hand-computed steps", "[nn][sgd]") {
    const double grads[3] = {0.5, -0.2, 0.1};
    SECTION("heavy ball: trace = g + 0.9 trace") {
        Parameter p("p", 1.0);
        diffbio::nn::SGD sgd({&p}, {.learning_rate = 0.1, .momentum = 0.9});
        const double expected[3] = {0.95, 0.925, 0.8925};
        for (int k = 0; k < 3; ++k) {
            p.grad()[0] = grads[k];
            sgd.step();
            CHECK(p[0] == Approx(expected[k]).epsilon(1e-15));
        }
    }
    SECTION("nesterov: update = g + 0.9 trace") {
        Parameter p("p", 1.0);
        diffbio::nn::SGD sgd({&p}, {.learning_rate = 0.1, .momentum = 0.9, .nesterov = true});
        const double expected[3] = {0.905, 0.9025, 0.86325};
        for (int k = 0; k < 3; ++k) {
            p.grad()[0] = grads[k];
            sgd.step();
            CHECK(p[0] == Approx(expected[k]).epsilon(1e-15));
        }
    }
}

TEST_CASE("SGD validates its configuration and gradients", "[nn][sgd][errors]") {
    Parameter p("p", 1.0);
    CHECK_THROWS_AS(diffbio::nn::SGD({&p}, {.learning_rate = -1.0}), diffbio::InvalidArgument);
    CHECK_THROWS_AS(diffbio::nn::SGD({&p}, {.learning_rate = 0.1, .momentum = 1.0}), diffbio::InvalidArgument);
    diffbio::nn::SGD sgd({&p});
    p.grad()[0] = INFINITY;
    CHECK_THROWS_AS(sgd.step(), diffbio::InvalidArgument);
}
