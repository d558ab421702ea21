#pragma once
// Umbrella header: everything CPU-side except the Eigen adapter for AD scalars
// (<diffbio/ad/eigen.hpp>), file input/output (<diffbio/io/*>, needs htslib and diffbio::io) and
// the CUDA backends (<diffbio/soft/cuda/*.cuh>, nvcc only).

#include <diffbio/config.hpp>

#include <diffbio/core/error.hpp>
#include <diffbio/core/math.hpp>
#include <diffbio/core/scalar_traits.hpp>
#include <diffbio/core/validate.hpp>

#include <diffbio/core/aligned_batch.hpp>
#include <diffbio/core/count_matrix.hpp>
#include <diffbio/core/read_batch.hpp>
#include <diffbio/core/simulate_counts.hpp>

#include <diffbio/ad/arena.hpp>
#include <diffbio/ad/binder.hpp>
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

#include <diffbio/nn/activation.hpp>
#include <diffbio/nn/adam.hpp>
#include <diffbio/nn/init.hpp>
#include <diffbio/nn/linear.hpp>
#include <diffbio/nn/loss.hpp>
#include <diffbio/nn/mlp.hpp>
#include <diffbio/nn/optimizer.hpp>
#include <diffbio/nn/sgd.hpp>

#include <diffbio/ops/preprocessing/adapter_removal.hpp>
#include <diffbio/ops/preprocessing/mate_overlap.hpp>
#include <diffbio/ops/preprocessing/duplicate_weighting.hpp>
#include <diffbio/ops/preprocessing/error_correction.hpp>
#include <diffbio/ops/preprocessing/quality_filter.hpp>
#include <diffbio/ops/preprocessing/reads.hpp>

#include <diffbio/ops/alignment/alphabet.hpp>
#include <diffbio/ops/alignment/msa.hpp>
#include <diffbio/ops/alignment/profile_hmm.hpp>
#include <diffbio/ops/alignment/scoring.hpp>
#include <diffbio/ops/alignment/smith_waterman.hpp>

#include <diffbio/ops/variant/classifier.hpp>
#include <diffbio/ops/variant/cnv.hpp>
#include <diffbio/ops/variant/pileup.hpp>

#include <diffbio/ops/singlecell/normalize.hpp>
#include <diffbio/ops/singlecell/pca.hpp>
#include <diffbio/ops/singlecell/soft_kmeans.hpp>

#include <diffbio/metrics/ari.hpp>
#include <diffbio/metrics/contingency.hpp>
#include <diffbio/metrics/lisi.hpp>
#include <diffbio/metrics/nmi.hpp>
#include <diffbio/metrics/silhouette.hpp>

#include <diffbio/pipelines/preprocessing.hpp>
#include <diffbio/pipelines/variant_calling.hpp>
