#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <diffbio/nn/optimizer.hpp>
#include <diffbio/nn/sgd.hpp>

using Catch::Matchers::Contains;
using diffbio::ad::Parameter;

TEST_CASE("zero_grad clears every parameter of a list", "[nn][optimizer]") {
    Parameter a("a", std::vector<double>{1.0, 2.0}), b("b", 3.0);
    a.grad()[1] = 5.0;
    b.grad()[0] = -1.0;
    diffbio::nn::zero_grad({&a, &b});
    CHECK(a.grad()[1] == 0.0);
    CHECK(b.grad()[0] == 0.0);
}

TEST_CASE("optimizers notice a parameter that changed size", "[nn][optimizer][errors]") {
    Parameter a("bias", std::vector<double>{1.0, 2.0});
    diffbio::nn::SGD sgd({&a});
    a = Parameter("bias", std::vector<double>{1.0, 2.0, 3.0});
    CHECK_THROWS_WITH(sgd.step(), Contains("'bias' changed size from 2 to 3"));
}
