#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>

using Catch::Matchers::Contains;
using diffbio::ad::NodeGrad;
using diffbio::ad::ScopedTape;
using diffbio::ad::Tape;
using diffbio::ad::Var;

namespace {
// A fused dot-product node: y = Σ a_i b_i, one record, backward ā_i += ȳ b_i, b̄_i += ȳ a_i.
Var fused_dot(Tape& tape, std::span<const Var> a, std::span<const Var> b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += tape.value(a[i]) * tape.value(b[i]);
    const double out[1] = {s};
    return tape.record_node({a, b}, out, [](const NodeGrad& g) {
        const double gy = g.out_adjoint()[0];
        const auto av = g.in_value(0), bv = g.in_value(1);
        const auto ga = g.in_adjoint(0), gb = g.in_adjoint(1);
        for (std::size_t i = 0; i < av.size(); ++i) {
            ga[i] += gy * bv[i];
            gb[i] += gy * av[i];
        }
    })[0];
}
} // namespace

TEST_CASE("custom node: one record, gradients equal the elementwise tape", "[ad][tape][node]") {
    Tape tape;
    ScopedTape scope(tape);
    const std::vector<double> av{1.0, -2.0, 0.5}, bv{3.0, 0.25, -4.0};
    const auto a = tape.variables(av);
    const auto b = tape.variables(bv);
    const std::size_t vars_before = tape.num_vars();
    const Var y = fused_dot(tape, a, b);
    CHECK(tape.num_nodes() == 1);
    CHECK(tape.num_vars() == vars_before + 1);
    CHECK(y.value() == Approx(3.0 - 0.5 - 2.0));
    const Var loss = y * y; // elementary op downstream of the node
    tape.backward(loss);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(tape.adjoint(a[i]) == Approx(2 * y.value() * bv[i]));
        CHECK(tape.adjoint(b[i]) == Approx(2 * y.value() * av[i]));
    }
}

TEST_CASE("custom node: non-contiguous and aliased inputs are gathered and scattered", "[ad][tape][node]") {
    Tape tape;
    ScopedTape scope(tape);
    const Var x0 = tape.variable(2.0);
    const Var junk = tape.variable(100.0);
    const Var x1 = tape.variable(3.0);
    (void)junk;
    const std::vector<Var> xs{x1, x0};          // reversed order: not contiguous
    const Var y = fused_dot(tape, xs, xs);       // y = x1² + x0², same block twice
    tape.backward(y);
    CHECK(y.value() == Approx(13.0));
    CHECK(tape.adjoint(x0) == Approx(4.0));
    CHECK(tape.adjoint(x1) == Approx(6.0));
    CHECK(tape.adjoint(junk) == 0.0);
}

TEST_CASE("custom node chains: node feeding node feeding elementary ops", "[ad][tape][node]") {
    Tape tape;
    ScopedTape scope(tape);
    const std::vector<double> v{0.5, 1.5};
    const auto x = tape.variables(v);
    // Node 1: squares (2 outputs).
    const double sq[2] = {0.25, 2.25};
    const auto s = tape.record_node({x}, sq, [](const NodeGrad& g) {
        for (std::size_t i = 0; i < 2; ++i) g.in_adjoint(0)[i] += g.out_adjoint()[i] * 2 * g.in_value(0)[i];
    });
    const Var d = fused_dot(tape, s, x); // Σ x_i³
    const Var y = log(d);
    tape.backward(y);
    const double sum3 = 0.125 + 3.375;
    CHECK(tape.adjoint(x[0]) == Approx(3 * 0.25 / sum3));
    CHECK(tape.adjoint(x[1]) == Approx(3 * 2.25 / sum3));
}

TEST_CASE("record_node_into: handles in the caller's buffer, adjacent nodes, the sweep skips output blocks", "[ad][tape][node]") {
    Tape tape;
    ScopedTape scope(tape);
    const std::vector<double> v{0.5, -1.5, 2.0};
    const auto x = tape.variables(v);
    const Var c = 3.0 * x[0]; // an elementary record below the nodes
    // Node A: a_i = c·x_i (3 outputs, written through the returned values).
    std::vector<Var> a(3);
    const auto av = tape.record_node_into({x, std::span<const Var>(&c, 1)}, a, [](const NodeGrad& g) {
        const double cv = g.in_value(1)[0];
        for (std::size_t i = 0; i < 3; ++i) {
            g.in_adjoint(0)[i] += g.out_adjoint()[i] * cv;
            g.in_adjoint(1)[0] += g.out_adjoint()[i] * g.in_value(0)[i];
        }
    });
    REQUIRE(av.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) av[i] = 1.5 * v[i];
    // Node B right after A (no variable between them): b_i = a_i², input A's block.
    std::vector<Var> b(3);
    const auto bv = tape.record_node_into({std::span<const Var>(a)}, b, [](const NodeGrad& g) {
        for (std::size_t i = 0; i < 3; ++i) g.in_adjoint(0)[i] += g.out_adjoint()[i] * 2.0 * g.in_value(0)[i];
    });
    for (std::size_t i = 0; i < 3; ++i) bv[i] = a[i].value() * a[i].value();
    CHECK(tape.num_nodes() == 2);
    CHECK(b[0].index == a[2].index + 1);
    // y = Σ b_i + x_1·b_2 = Σ (c x_i)² + x_1 (c x_2)², c = 3 x_0
    const Var y = b[0] + b[1] + b[2] + x[1] * b[2];
    tape.backward(y);
    const double cv = 3.0 * v[0], s2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
    CHECK(y.value() == Approx(cv * cv * s2 + v[1] * cv * cv * v[2] * v[2]));
    // ∂y/∂x_i through a_i (2 c² x_i, plus the x_1 term's 2 x_1 c² x_2 for i = 2), ∂y/∂c = 2 c Σ x² + 2 x_1 c x_2²
    const double dc = 2.0 * cv * s2 + 2.0 * v[1] * cv * v[2] * v[2];
    CHECK(tape.adjoint(x[0]) == Approx(2.0 * cv * cv * v[0] + 3.0 * dc));
    CHECK(tape.adjoint(x[1]) == Approx(2.0 * cv * cv * v[1] + cv * cv * v[2] * v[2]));
    CHECK(tape.adjoint(x[2]) == Approx(2.0 * cv * cv * v[2] + 2.0 * v[1] * cv * cv * v[2]));
    CHECK(tape.adjoint(c) == Approx(dc));
    // rejects what record_node rejects
    std::vector<Var> none;
    CHECK_THROWS_AS(tape.record_node_into({x}, none, [](const NodeGrad&) {}), diffbio::AdError);
}

TEST_CASE("record_node_into with several output buffers: one block, in order, one backward", "[ad][tape][node]") {
    Tape tape;
    ScopedTape scope(tape);
    const std::vector<double> v{0.5, -1.5};
    const auto x = tape.variables(v);
    // outputs: p = (x0 + x1) in the first buffer, q_i = x_i² in the second
    std::vector<Var> p(1), q(2);
    const auto vals = tape.record_node_into({x}, {std::span<Var>(p), std::span<Var>(q)}, [](const NodeGrad& g) {
        const auto a = g.out_adjoint();
        for (std::size_t i = 0; i < 2; ++i) g.in_adjoint(0)[i] += a[0] + a[1 + i] * 2.0 * g.in_value(0)[i];
    });
    REQUIRE(vals.size() == 3);
    vals[0] = v[0] + v[1];
    vals[1] = v[0] * v[0];
    vals[2] = v[1] * v[1];
    CHECK(q[0].index == p[0].index + 1);
    CHECK(q[1].index == p[0].index + 2);
    CHECK(q[1].value() == 2.25);
    const Var y = 3.0 * p[0] + q[0] - 2.0 * q[1];
    tape.backward(y);
    CHECK(tape.adjoint(x[0]) == Approx(3.0 + 2.0 * v[0]));
    CHECK(tape.adjoint(x[1]) == Approx(3.0 - 4.0 * v[1]));
    std::vector<Var> e1, e2;
    CHECK_THROWS_AS(tape.record_node_into({x}, {std::span<Var>(e1), std::span<Var>(e2)}, [](const NodeGrad&) {}),
                    diffbio::AdError);
}

TEST_CASE("weighted_sum: value and adjoints for contiguous and scattered operands, shape errors", "[ad][tape][node]") {
    Tape tape;
    ScopedTape scope(tape);
    const std::vector<double> v{0.5, -1.5, 2.0, 4.0};
    const std::vector<double> c{1.0, -2.0, 0.25, 3.0};
    const auto x = tape.variables(v);
    const Var s = tape.weighted_sum(x, c);
    CHECK(s.value() == Approx(0.5 + 3.0 + 0.5 + 12.0));
    // scattered operands (x3, x0 twice, and a Var computed from x1) go through the gathered path
    const Var t = x[1] * x[1];
    const std::vector<Var> mixed{x[3], x[0], t, x[0]};
    const Var u = tape.weighted_sum(mixed, c);
    CHECK(u.value() == Approx(4.0 - 1.0 + 0.25 * 2.25 + 1.5));
    const Var y = s * u;
    tape.backward(y);
    const double sv = s.value(), uv = u.value();
    CHECK(tape.adjoint(x[0]) == Approx(c[0] * uv + (c[1] + c[3]) * sv));
    CHECK(tape.adjoint(x[1]) == Approx(c[1] * uv + c[2] * 2.0 * v[1] * sv));
    CHECK(tape.adjoint(x[2]) == Approx(c[2] * uv));
    CHECK(tape.adjoint(x[3]) == Approx(c[3] * uv + c[0] * sv));
    CHECK(tape.weighted_sum({}, {}).value() == 0.0);
    CHECK_THROWS_AS(tape.weighted_sum(x, std::span<const double>(c.data(), 3)), diffbio::ShapeError);
    // an uninitialised Var among the operands: a named error, and nothing recorded
    const std::vector<Var> bad{x[0], Var{}};
    const std::vector<double> two{1.0, 1.0};
    const std::size_t vars = tape.num_vars(), nodes = tape.num_nodes();
    CHECK_THROWS_WITH(tape.weighted_sum(bad, two), Contains("never initialised"));
    CHECK(tape.num_vars() == vars);
    CHECK(tape.num_nodes() == nodes);
}

TEST_CASE("weighted_row_sums: one sum per row, adjoints per row, long rows and shape errors", "[ad][tape][node]") {
    Tape tape;
    ScopedTape scope(tape);
    // 3 rows of 19 (more than the 8 partial sums, with a tail)
    const std::size_t rows = 3, m = 19;
    std::vector<double> v(rows * m), c(m);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.7 * static_cast<double>(i)) * 3.0;
    for (std::size_t j = 0; j < m; ++j) c[j] = 0.25 * static_cast<double>(j) - 2.0;
    const auto x = tape.variables(v);
    const auto s = tape.weighted_row_sums(x, c);
    REQUIRE(s.size() == rows);
    for (std::size_t r = 0; r < rows; ++r) {
        double expect = 0.0;
        for (std::size_t j = 0; j < m; ++j) expect += c[j] * v[r * m + j];
        CHECK(s[r].value() == Approx(expect).margin(1e-13));
    }
    // y = 1·s0 + 0·s1 (a row whose adjoint is 0) − 2·s2
    const Var y = s[0] - 2.0 * s[2] + 0.0 * s[1];
    tape.backward(y);
    for (std::size_t j = 0; j < m; ++j) {
        CHECK(tape.adjoint(x[j]) == c[j]);
        CHECK(tape.adjoint(x[m + j]) == 0.0);
        CHECK(tape.adjoint(x[2 * m + j]) == -2.0 * c[j]);
    }
    CHECK_THROWS_AS(tape.weighted_row_sums(x, std::span<const double>(c.data(), 7)), diffbio::ShapeError);
    CHECK_THROWS_AS(tape.weighted_row_sums(x, {}), diffbio::ShapeError);
    CHECK_THROWS_AS(tape.weighted_row_sums({}, c), diffbio::ShapeError);
}

TEST_CASE("record_node rejects zero outputs and foreign Vars", "[ad][tape][node][errors]") {
    Tape tape;
    ScopedTape scope(tape);
    const auto noop = [](const NodeGrad&) {};
    CHECK_THROWS_AS(tape.record_node_uninitialised({}, 0, noop), diffbio::AdError);
    const Var bad;
    CHECK_THROWS_WITH(tape.record_node({std::span<const Var>(&bad, 1)}, std::vector<double>{1.0}, noop),
                      Contains("never initialised"));
    CHECK(tape.num_nodes() == 0);
}

TEST_CASE("vector seeds: seed + propagate gives a vector-Jacobian product", "[ad][tape]") {
    Tape tape;
    ScopedTape scope(tape);
    const Var x = tape.variable(2.0);
    const Var y1 = x * x, y2 = 3.0 * x;
    tape.zero_adjoints();
    tape.seed(y1, 1.0);
    tape.seed(y2, 10.0);
    tape.propagate();
    CHECK(tape.adjoint(x) == Approx(4.0 + 30.0));
}

TEST_CASE("large leaf blocks: the sweep jumps over them, with nodes, elementary records and rewinds between",
          "[ad][tape][memory]") {
    // variables() lists a block of 64 or more leaves for the reverse sweep to jump over (only the
    // offset at its top is written); smaller blocks are swept leaf by leaf. Both must give the
    // same adjoints wherever the blocks lie: adjacent to each other, under a node, at the top.
    Tape tape;
    ScopedTape scope(tape);
    const Var p = tape.variable(2.0);
    const auto start = tape.mark();
    std::vector<double> av(100), bv(100);
    for (std::size_t i = 0; i < 100; ++i) {
        av[i] = 0.01 * static_cast<double>(i) - 0.3;
        bv[i] = 1.0 - 0.02 * static_cast<double>(i);
    }
    const std::vector<float> sv{1.5f, -2.0f, 0.25f};
    const auto a = tape.variables(av); // listed
    const auto after_a = tape.mark();
    const auto b = tape.variables(bv); // listed, right on top of a
    const auto s = tape.variables(std::span<const float>(sv)); // 3 leaves: swept one by one
    Var acc = 0.0;
    for (const Var& ai : a) acc += ai * p; // elementary records whose operands lie in the block
    const Var d = fused_dot(tape, a, b);   // a node whose inputs are both blocks
    const Var y = acc + d + p * s[0];
    tape.backward(y);
    double sum_a = 0.0, dot = 0.0;
    for (std::size_t i = 0; i < 100; ++i) {
        sum_a += av[i];
        dot += av[i] * bv[i];
    }
    CHECK(y.value() == Approx(2.0 * sum_a + dot + 2.0 * 1.5));
    for (std::size_t i = 0; i < 100; ++i) {
        CHECK(tape.adjoint(a[i]) == Approx(2.0 + bv[i]).epsilon(1e-15));
        CHECK(tape.adjoint(b[i]) == Approx(av[i]).epsilon(1e-15));
    }
    CHECK(tape.adjoint(p) == Approx(sum_a + 1.5).epsilon(1e-15));
    CHECK(tape.adjoint(s[0]) == 2.0);
    CHECK(tape.adjoint(s[1]) == 0.0);

    // Rewind between the blocks: b's listing goes, a's stays; a new float block c takes b's place
    // and is the topmost record, so the seed lands inside a listed block.
    tape.rewind(after_a);
    // elementary records where b's block was: a listing of b left behind would skip them
    Var acc2 = 0.0;
    for (std::size_t i = 0; i < 150; ++i) acc2 += a[i % 100];
    tape.backward(acc2);
    for (std::size_t i = 0; i < 100; ++i) CHECK(tape.adjoint(a[i]) == (i < 50 ? 2.0 : 1.0));
    tape.rewind(after_a);
    std::vector<float> cv(200);
    for (std::size_t i = 0; i < 200; ++i) cv[i] = static_cast<float>(i % 7) - 2.5f;
    const auto c = tape.variables(std::span<const float>(cv));
    CHECK(c[0].index == a.back().index + 1);
    tape.backward(c[5]);
    for (std::size_t i = 0; i < 200; ++i) CHECK(tape.adjoint(c[i]) == (i == 5 ? 1.0 : 0.0));
    for (std::size_t i = 0; i < 100; ++i) CHECK(tape.adjoint(a[i]) == 0.0);
    const Var z = c[0] * a[99] + c[199] * p; // above both blocks: −2.5·a_99 + 0.5·2
    tape.backward(z);
    CHECK(z.value() == Approx(-2.5 * av[99] + 1.0));
    CHECK(tape.adjoint(a[99]) == -2.5);
    CHECK(tape.adjoint(c[0]) == Approx(av[99]).epsilon(1e-15));
    CHECK(tape.adjoint(c[199]) == 2.0);
    CHECK(tape.adjoint(p) == 0.5);
    CHECK(tape.adjoint(a[0]) == 0.0);

    // Rewind below every block: no listing is left behind to mislead the sweep.
    tape.rewind(start);
    const Var q = p * p;
    std::vector<double> small(10, 1.0);
    const auto e = tape.variables(small);
    const Var w = q * e[3] + e[9];
    tape.backward(w);
    CHECK(tape.adjoint(p) == 4.0);
    CHECK(tape.adjoint(e[3]) == 4.0);
    CHECK(tape.adjoint(e[9]) == 1.0);
    CHECK(tape.adjoint(e[0]) == 0.0);
}

TEST_CASE("mark/rewind: 10,000 training steps do not grow memory", "[ad][tape][memory]") {
    Tape tape;
    ScopedTape scope(tape);
    const auto start = tape.mark();
    double theta = 3.0;
    std::size_t warm_capacity = 0;
    const std::vector<double> data{0.5, 1.0, 2.0, 4.0, 8.0};
    for (int step = 0; step < 10000; ++step) {
        tape.rewind(start);
        const Var t = tape.variable(theta);
        const auto x = tape.variables(data); // arena-backed block
        Var loss = 0.0;
        for (const Var& xi : x) loss += (xi - t) * (xi - t);
        const double node_out[1] = {loss.value()};
        const Var l2 = tape.record_node({std::span<const Var>(&loss, 1)}, node_out,
                                        [](const NodeGrad& g) { g.in_adjoint(0)[0] += g.out_adjoint()[0]; })[0];
        tape.backward(l2);
        theta -= 0.01 * tape.adjoint(t);
        if (step == 1) warm_capacity = tape.capacity_bytes();
        if (step > 1) REQUIRE(tape.capacity_bytes() == warm_capacity);
    }
    CHECK(theta == Approx(3.1).epsilon(1e-9)); // the mean of the data
    CHECK(tape.num_nodes() == 1);
}

TEST_CASE("node state with a non-trivial destructor is destroyed on rewind", "[ad][tape][node]") {
    static int alive = 0;
    struct Counted {
        Counted() { ++alive; }
        Counted(const Counted&) { ++alive; }
        ~Counted() { --alive; }
    };
    {
        Tape tape;
        ScopedTape scope(tape);
        const auto m = tape.mark();
        const Var x = tape.variable(1.0);
        const double out[1] = {1.0};
        tape.record_node({std::span<const Var>(&x, 1)}, out, [c = Counted{}](const NodeGrad&) { (void)c; });
        CHECK(alive == 1);
        tape.rewind(m);
        CHECK(alive == 0);
        tape.record_node({std::span<const Var>(&x, 0)}, out, [c = Counted{}](const NodeGrad&) { (void)c; });
        CHECK(alive == 1);
    }
    CHECK(alive == 0);
}

TEST_CASE("memory per elementary op: 20 bytes per variable and 12 per operand", "[ad][tape][memory]") {
    Tape tape;
    ScopedTape scope(tape);
    const Var x = tape.variable(1.0);
    const auto before = tape.used_bytes();
    const Var y = exp(x); // 1 variable, 1 operand
    CHECK(tape.used_bytes() - before == 20 + 12);
    (void)y;
}
