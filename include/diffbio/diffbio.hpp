#pragma once
// Umbrella header: everything CPU-side except the Eigen adapter (<diffbio/ad/eigen.hpp>) and the
// CUDA backends (<diffbio/soft/cuda/*.cuh>, nvcc only).

#include <diffbio/config.hpp>

#include <diffbio/core/error.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>

#include <diffbio/ad/arena.hpp>
#include <diffbio/ad/drivers.hpp>
#include <diffbio/ad/dual.hpp>
#include <diffbio/ad/finite_diff.hpp>
#include <diffbio/ad/parameter.hpp>
#include <diffbio/ad/tape.hpp>
#include <diffbio/ad/var.hpp>

#include <diffbio/exec/policy.hpp>

#include <diffbio/soft/schedule.hpp>
#include <diffbio/soft/segment_sum.hpp>
#include <diffbio/soft/smooth_max.hpp>
#include <diffbio/soft/softmax.hpp>
#include <diffbio/soft/softplus.hpp>
#include <diffbio/soft/threshold.hpp>

#include <diffbio/nn/adam.hpp>
#include <diffbio/nn/optimizer.hpp>
#include <diffbio/nn/sgd.hpp>
