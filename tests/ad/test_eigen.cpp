#include <catch2/catch.hpp>

#include <diffbio/ad/eigen.hpp>

using namespace diffbio::ad;

TEST_CASE("Eigen matrix-vector product of Var: gradient of a quadratic form", "[ad][eigen]") {
    Tape tape;
    ScopedTape scope(tape);
    Eigen::Matrix3d A0;
    A0 << 2, -1, 0, 0.5, 3, 1, 1, 0, -2;
    const Eigen::Vector3d x0(0.3, -1.2, 2.0);
    Eigen::Matrix<Var, 3, 3> A;
    Eigen::Matrix<Var, 3, 1> x;
    for (int i = 0; i < 3; ++i) {
        x(i) = tape.variable(x0(i));
        for (int j = 0; j < 3; ++j) A(i, j) = tape.variable(A0(i, j));
    }
    const Eigen::Matrix<Var, 3, 1> y = A * x;
    const Var f = y.dot(y); // ‖Ax‖²: ∂/∂x = 2AᵀAx, ∂/∂A = 2(Ax)xᵀ
    tape.backward(f);
    const Eigen::Vector3d ax = A0 * x0;
    const Eigen::Vector3d gx = 2 * A0.transpose() * ax;
    CHECK(f.value() == Approx(ax.squaredNorm()));
    for (int i = 0; i < 3; ++i) {
        CHECK(tape.adjoint(x(i)) == Approx(gx(i)).epsilon(1e-14));
        for (int j = 0; j < 3; ++j) CHECK(tape.adjoint(A(i, j)) == Approx(2 * ax(i) * x0(j)).epsilon(1e-14));
    }
}

TEST_CASE("Eigen with Dual and mixed double matrices", "[ad][eigen]") {
    using D = Dual<double>;
    Eigen::Matrix2d M;
    M << 1, 2, 3, 4;
    Eigen::Matrix<D, 2, 1> v;
    v << D(1.0, 1.0), D(-1.0, 0.0); // d/dv0
    const Eigen::Matrix<D, 2, 1> w = M.cast<D>() * v;
    CHECK(w(0).value == -1.0);
    CHECK(w(0).tangent == 1.0);
    CHECK(w(1).tangent == 3.0);
    const D s = (v.array() * v.array()).sum();
    CHECK(s.tangent == 2.0);
    const Eigen::Matrix<D, 2, 2> P = M.cast<D>() * M.cast<D>();
    CHECK(P(1, 1).value == 22.0);
}
