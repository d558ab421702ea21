// CPU/GPU parity of the soft primitives' CUDA backends (soft_threshold, segment_sum), in float
// and double, forward and backward. Exits 77 (ctest: skipped) when no CUDA device is present.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include <diffbio/exec/cuda/buffer.cuh>
#include <diffbio/soft/cuda/segment_sum.cuh>
#include <diffbio/soft/cuda/soft_threshold.cuh>

namespace {

namespace exec = diffbio::exec;
namespace soft = diffbio::soft;
using exec::cuda::DeviceBuffer;

int failures = 0;

void expect_close(double gpu, double cpu, double rel, const std::string& what) {
    const double tol = rel * std::max(1.0, std::fabs(cpu));
    if (!(std::fabs(gpu - cpu) <= tol)) {
        std::printf("FAIL %s: gpu %.17g cpu %.17g (tolerance %.3g)\n", what.c_str(), gpu, cpu, tol);
        ++failures;
    }
}

template <class T>
void expect_all_close(const std::vector<T>& gpu, const std::vector<T>& cpu, double rel, const std::string& what) {
    if (gpu.size() != cpu.size()) {
        std::printf("FAIL %s: sizes %zu vs %zu\n", what.c_str(), gpu.size(), cpu.size());
        ++failures;
        return;
    }
    int reported = 0;
    for (std::size_t i = 0; i < gpu.size(); ++i) {
        const double tol = rel * std::max(1.0, std::fabs(static_cast<double>(cpu[i])));
        if (!(std::fabs(static_cast<double>(gpu[i]) - static_cast<double>(cpu[i])) <= tol)) {
            if (reported++ < 5) std::printf("FAIL %s[%zu]: gpu %.9g cpu %.9g\n", what.c_str(), i, double(gpu[i]), double(cpu[i]));
            ++failures;
        }
    }
}

std::uint64_t rng_state = 42;
double uniform() {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(rng_state >> 11) / 9007199254740992.0;
}

template <class T>
void soft_threshold_parity(double rel, const char* name) {
    const std::size_t n = 1'000'003;
    std::vector<T> x(n), gy(n);
    for (std::size_t i = 0; i < n; ++i) {
        x[i] = static_cast<T>(41.0 * uniform());
        gy[i] = static_cast<T>(uniform() - 0.5);
    }
    const T t = T(20), tau = T(2.5);
    std::vector<T> s_cpu(n), gx_cpu(n, T(0));
    soft::soft_threshold(exec::Cpu{}, std::span<const T>(x), t, tau, std::span<T>(s_cpu));
    const auto g_cpu = soft::soft_threshold_backward(exec::Cpu{}, std::span<const T>(x), t, tau, std::span<const T>(gy),
                                                     std::span<T>(gx_cpu));

    DeviceBuffer<T> dx{std::span<const T>(x)}, dgy{std::span<const T>(gy)}, ds(n), dgx(n);
    dgx.fill_zero();
    soft::soft_threshold(exec::Cuda{}, std::span<const T>(dx.span()), t, tau, ds.span());
    const auto g_gpu = soft::soft_threshold_backward(exec::Cuda{}, std::span<const T>(dx.span()), t, tau,
                                                     std::span<const T>(dgy.span()), dgx.span());
    expect_all_close(ds.to_host(), s_cpu, rel, std::string(name) + " soft_threshold forward");
    expect_all_close(dgx.to_host(), gx_cpu, rel, std::string(name) + " soft_threshold x gradient");
    expect_close(g_gpu.t, g_cpu.t, rel, std::string(name) + " soft_threshold t gradient");
    expect_close(g_gpu.tau, g_cpu.tau, rel, std::string(name) + " soft_threshold tau gradient");
}

template <class T>
void segment_sum_parity(double rel, const char* name) {
    const std::size_t m = 400'000, c = 6, segments = 5'000;
    std::vector<T> v(m * c), w(m), og(segments * c);
    std::vector<std::int32_t> ids(m);
    for (std::size_t i = 0; i < m; ++i) {
        ids[i] = static_cast<std::int32_t>(uniform() * (segments + 10)) - 10; // a few negatives: skipped
        w[i] = static_cast<T>(uniform());
        for (std::size_t k = 0; k < c; ++k) v[i * c + k] = static_cast<T>(uniform() < 0.25 ? 1.0 : 0.0);
    }
    for (auto& g : og) g = static_cast<T>(uniform() - 0.5);
    std::vector<T> out_cpu(segments * c), gv_cpu(m * c, T(0)), gw_cpu(m, T(0));
    soft::segment_sum(exec::Cpu{}, std::span<const T>(v), c, std::span<const T>(w), std::span<const std::int32_t>(ids),
                      segments, std::span<T>(out_cpu));
    soft::segment_sum_backward(exec::Cpu{}, std::span<const T>(v), c, std::span<const T>(w),
                               std::span<const std::int32_t>(ids), segments, std::span<const T>(og), std::span<T>(gv_cpu),
                               std::span<T>(gw_cpu));

    DeviceBuffer<T> dv{std::span<const T>(v)}, dw{std::span<const T>(w)}, dog{std::span<const T>(og)};
    DeviceBuffer<std::int32_t> did{std::span<const std::int32_t>(ids)};
    DeviceBuffer<T> dout(segments * c), dgv(m * c), dgw(m);
    dgv.fill_zero();
    dgw.fill_zero();
    soft::segment_sum(exec::Cuda{}, std::span<const T>(dv.span()), c, std::span<const T>(dw.span()),
                      std::span<const std::int32_t>(did.span()), segments, dout.span());
    soft::segment_sum_backward(exec::Cuda{}, std::span<const T>(dv.span()), c, std::span<const T>(dw.span()),
                               std::span<const std::int32_t>(did.span()), segments, std::span<const T>(dog.span()),
                               dgv.span(), dgw.span());
    expect_all_close(dout.to_host(), out_cpu, rel, std::string(name) + " segment_sum forward");
    expect_all_close(dgv.to_host(), gv_cpu, rel, std::string(name) + " segment_sum values gradient");
    expect_all_close(dgw.to_host(), gw_cpu, rel, std::string(name) + " segment_sum weights gradient");

    // An id past the last segment is reported, not written out of bounds.
    ids[123] = static_cast<std::int32_t>(segments + 7);
    did.copy_from(std::span<const std::int32_t>(ids));
    try {
        soft::segment_sum(exec::Cuda{}, std::span<const T>(dv.span()), c, std::span<const T>(dw.span()),
                          std::span<const std::int32_t>(did.span()), segments, dout.span());
        std::printf("FAIL %s segment_sum: an out-of-range id was not reported\n", name);
        ++failures;
    } catch (const diffbio::ShapeError& e) {
        if (std::string(e.what()).find(std::to_string(segments + 7)) == std::string::npos) {
            std::printf("FAIL %s segment_sum: error message does not name the id: %s\n", name, e.what());
            ++failures;
        }
    }
}

} // namespace

int main() {
    if (!exec::cuda::device_available()) {
        std::printf("SKIP: no CUDA device available; CPU/GPU parity not checked\n");
        return 77;
    }
    cudaDeviceProp prop{};
    exec::cuda::check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("device: %s\n", prop.name);
    soft_threshold_parity<float>(1e-5, "float");
    soft_threshold_parity<double>(1e-12, "double");
    segment_sum_parity<float>(1e-5, "float");
    segment_sum_parity<double>(1e-12, "double");
    std::printf("%s: %d failures\n", failures == 0 ? "PASS" : "FAIL", failures);
    return failures == 0 ? 0 : 1;
}
