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

TEST_CASE("SGD updates every parameter, counts steps, and checks all gradients before it updates any", "[nn][sgd]") {
    Parameter a("a", std::vector<double>{1.0, 2.0}), b("b", std::vector<double>{3.0, 4.0});
    diffbio::nn::SGD sgd({&a, &b}, {.learning_rate = 0.5});
    CHECK(sgd.step_count() == 0);
    a.grad()[0] = 0.2;
    a.grad()[1] = 0.4;
    b.grad()[0] = -1.0;
    b.grad()[1] = 2.0;
    sgd.step();
    CHECK(a[0] == Approx(0.9).epsilon(1e-15));
    CHECK(a[1] == Approx(1.8).epsilon(1e-15));
    CHECK(b[0] == Approx(3.5).epsilon(1e-15));
    CHECK(b[1] == Approx(3.0).epsilon(1e-15));
    CHECK(sgd.step_count() == 1);
    // A bad gradient in the second parameter: nothing moves, the step is not counted.
    b.grad()[1] = std::nan("");
    CHECK_THROWS_WITH(sgd.step(), Catch::Contains("gradient of parameter 'b'[1]"));
    CHECK(a[0] == Approx(0.9).epsilon(1e-15));
    CHECK(b[0] == Approx(3.5).epsilon(1e-15));
    CHECK(sgd.step_count() == 1);
    CHECK_THROWS_WITH(diffbio::nn::SGD({&a, nullptr}), Catch::Contains("parameter 1 is null"));
}
