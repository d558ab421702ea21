// Train a soft quality threshold by gradient descent, once with reverse mode (Var, one fused
// tape node for the whole threshold) and once with forward mode (Dual), and show that both
// follow the same trajectory.
//
// Data: per-base Phred qualities simulated as in DiffBio's preprocessing walkthrough (reads of
// 50 bp, quality 35 − 15·pos/L + read noise N(0, 3) + position noise N(0, 5), clipped to
// [2, 41]). Each base gets a label "trustworthy" drawn from Bernoulli(σ((q − 20)/2)): the true
// threshold is 20 and the true temperature 2. The model keeps a base with probability
// p = σ((q − θ)/τ) and minimises the Brier score mean((p − y)²) over θ and τ with Adam,
// starting from θ = 35, τ = 5. At the end the learned threshold is hardened into a classic
// cutoff (keep q > θ).

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <span>
#include <vector>

#include <diffbio/diffbio.hpp>

namespace ad = diffbio::ad;
namespace soft = diffbio::soft;
namespace exec = diffbio::exec;

namespace {

struct Data {
    std::vector<double> quality;
    std::vector<double> label;
};

Data simulate(std::size_t reads, std::size_t length, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> read_noise(0.0, 3.0), pos_noise(0.0, 5.0);
    std::uniform_real_distribution<double> unif(0.0, 1.0);
    Data d;
    for (std::size_t r = 0; r < reads; ++r) {
        const double offset = read_noise(rng);
        for (std::size_t p = 0; p < length; ++p) {
            double q = 35.0 - 15.0 * static_cast<double>(p) / static_cast<double>(length) + offset + pos_noise(rng);
            q = std::min(41.0, std::max(2.0, q));
            d.quality.push_back(q);
            d.label.push_back(unif(rng) < diffbio::sigmoid((q - 20.0) / 2.0) ? 1.0 : 0.0);
        }
    }
    return d;
}

/// Brier score of the soft threshold, generic in the scalar (Var: fused node; Dual: elementwise).
template <class T>
T brier(const Data& d, const T& theta, const T& tau) {
    const std::vector<T> p = soft::soft_threshold(exec::Cpu{}, std::span<const double>(d.quality), theta, tau);
    T sum = T(0.0);
    for (std::size_t i = 0; i < p.size(); ++i) sum = sum + (p[i] - d.label[i]) * (p[i] - d.label[i]);
    return sum / static_cast<double>(p.size());
}

double hard_accuracy(const Data& d, double cutoff) {
    std::size_t ok = 0;
    for (std::size_t i = 0; i < d.quality.size(); ++i) ok += ((d.quality[i] > cutoff) == (d.label[i] > 0.5));
    return static_cast<double>(ok) / static_cast<double>(d.quality.size());
}

} // namespace

int main() {
    const Data data = simulate(400, 50, 42);
    std::printf("diffbio %d.%d.%d: training a soft quality threshold on %zu bases (true threshold 20, tau 2)\n\n",
                DIFFBIO_VERSION_MAJOR, DIFFBIO_VERSION_MINOR, DIFFBIO_VERSION_PATCH, data.quality.size());

    // Two copies of the parameters, one per AD mode, each with its own Adam.
    ad::Parameter theta_r("theta", 35.0), tau_r("tau", 5.0);
    ad::Parameter theta_f("theta", 35.0), tau_f("tau", 5.0);
    diffbio::nn::Adam adam_r({&theta_r, &tau_r}, {.learning_rate = 0.5});
    diffbio::nn::Adam adam_f({&theta_f, &tau_f}, {.learning_rate = 0.5});

    ad::Tape tape;
    ad::ScopedTape scope(tape);
    const auto start = tape.mark();
    double seconds_r = 0, seconds_f = 0, max_grad_diff = 0, loss_r = 0;
    const int steps = 300;
    std::printf("%5s  %10s  %9s %8s  %9s %8s  %s\n", "step", "loss", "theta(R)", "tau(R)", "theta(F)", "tau(F)",
                "|grad R - grad F|");
    for (int step = 0; step <= steps; ++step) {
        // Reverse mode: bind parameters, record, sweep once.
        auto t0 = std::chrono::steady_clock::now();
        tape.rewind(start);
        adam_r.zero_grad();
        const auto th = ad::bind(tape, theta_r);
        const auto ta = ad::bind(tape, tau_r);
        const ad::Var loss = brier(data, th[0], ta[0]);
        tape.backward(loss);
        ad::accumulate_grad(tape, th);
        ad::accumulate_grad(tape, ta);
        loss_r = loss.value();
        auto t1 = std::chrono::steady_clock::now();
        seconds_r += std::chrono::duration<double>(t1 - t0).count();

        // Forward mode: one Dual pass per parameter.
        adam_f.zero_grad();
        using D = ad::Dual<double>;
        theta_f.grad()[0] = brier(data, D(theta_f[0], 1.0), D(tau_f[0], 0.0)).tangent;
        tau_f.grad()[0] = brier(data, D(theta_f[0], 0.0), D(tau_f[0], 1.0)).tangent;
        auto t2 = std::chrono::steady_clock::now();
        seconds_f += std::chrono::duration<double>(t2 - t1).count();

        const double diff = std::max(std::fabs(theta_r.grad()[0] - theta_f.grad()[0]),
                                     std::fabs(tau_r.grad()[0] - tau_f.grad()[0]));
        max_grad_diff = std::max(max_grad_diff, diff);
        if (step % 25 == 0) {
            std::printf("%5d  %10.6f  %9.4f %8.4f  %9.4f %8.4f  %.1e\n", step, loss_r, theta_r[0], tau_r[0], theta_f[0],
                        tau_f[0], diff);
        }
        if (step < steps) {
            adam_r.step();
            adam_f.step();
        }
    }

    std::printf("\nlearned threshold theta = %.3f, temperature tau = %.3f (reverse mode)\n", theta_r[0], tau_r[0]);
    std::printf("forward and reverse mode agree: max gradient difference %.1e over %d steps\n", max_grad_diff, steps);
    std::printf("time per step: reverse (one fused node) %.3f ms, forward (2 Dual passes) %.3f ms\n",
                1e3 * seconds_r / (steps + 1), 1e3 * seconds_f / (steps + 1));
    std::printf("hardened cutoff q > %.2f: accuracy %.4f (the true cutoff 20 gives %.4f; the start 35 gave %.4f)\n",
                theta_r[0], hard_accuracy(data, theta_r[0]), hard_accuracy(data, 20.0), hard_accuracy(data, 35.0));
    const bool ok = std::fabs(theta_r[0] - theta_f[0]) < 1e-6 && max_grad_diff < 1e-9 && std::fabs(theta_r[0] - 20.0) < 1.5;
    std::printf("%s\n", ok ? "OK" : "UNEXPECTED RESULT");
    return ok ? 0 : 1;
}
