#pragma once
// Reverse mode: a linear tape and Var, an index into it.
//
// Layout (all flat arrays, indexed by variable):
//   val_[k]                  the value of variable k
//   adj_[k]                  its adjoint (sized at the first backward pass)
//   arg_[end_[k]..end_[k+1]) the operands of variable k, with partial_[] their ∂k/∂operand
// An elementary op stores its partials at forward time, so the reverse sweep is one loop of
// fused multiply-adds walked once from the last variable to the first. A leaf (input or
// constant) has no operands. Blocks without operands are jumped over: a custom node's outputs
// and a block of 64 or more leaves from variables(); only the offset at a block's top is written.
//
// Custom nodes: one record whose outputs are a fresh contiguous block of variables and whose
// backward is a user callable over contiguous blocks of adjoints (see record_node). This is how
// fused kernels enter the tape: one record for a whole Smith-Waterman, a Linear layer, a sum of
// thresholds. Nodes live in an Arena. weighted_sum / weighted_row_sums are such nodes, for a loss
// over a large output without an operand record per term.
//
// Memory: 20 bytes per variable (value, adjoint, operand offset) + 12 bytes per operand.
// mark()/rewind() drop everything recorded after the mark without freeing memory, so a training
// loop that rewinds each step stops allocating after its first step.
//
// Threads: a Tape is used by one thread at a time. Var arithmetic records on the calling
// thread's active tape, set with ScopedTape (thread_local), so every thread can run its own
// tape concurrently. Methods taking an explicit Tape& never look at the active tape.

#include <algorithm>
#include <cstring>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <diffbio/ad/arena.hpp>
#include <diffbio/ad/pod_buffer.hpp>
#include <diffbio/config.hpp>
#include <diffbio/core/error.hpp>

namespace diffbio::ad {

class Tape;

/// A reverse-mode scalar: the index of a variable on a Tape.
/// Default-constructed Vars are invalid until assigned; Var(double) records a constant leaf on
/// the active tape (so generic code may write `T x = 0.0;`).
struct Var {
    static constexpr std::uint32_t invalid_index = std::numeric_limits<std::uint32_t>::max();
    struct FromIndex {};

    std::uint32_t index = invalid_index;

    Var() = default;
    constexpr Var(FromIndex, std::uint32_t i) noexcept : index(i) {}
    Var(double v); // NOLINT(google-explicit-constructor): defined below, needs Tape

    bool valid() const noexcept { return index != invalid_index; }
    /// Value on the thread's active tape.
    double value() const;
};

namespace detail {
/// What a custom node's backward sees: contiguous blocks of values and adjoints.
struct NodeIo {
    double* adj;
    const double* val;
    std::size_t size;
};
} // namespace detail

/// Argument of a custom node's backward callable.
///   out_adjoint()   ∂L/∂outputs (read only)
///   out_value()     the outputs' forward values
///   in_value(k)     values of input block k
///   in_adjoint(k)   ∂L/∂(input block k): ACCUMULATE into it (+=), never assign, since an input
///                   block may alias another input or already hold contributions.
class NodeGrad {
public:
    std::span<const double> out_adjoint() const noexcept { return {out_.adj, out_.size}; }
    std::span<const double> out_value() const noexcept { return {out_.val, out_.size}; }
    std::size_t num_inputs() const noexcept { return n_in_; }
    std::span<double> in_adjoint(std::size_t k) const noexcept {
        DIFFBIO_ASSERT(k < n_in_);
        return {in_[k].adj, in_[k].size};
    }
    std::span<const double> in_value(std::size_t k) const noexcept {
        DIFFBIO_ASSERT(k < n_in_);
        return {in_[k].val, in_[k].size};
    }

private:
    friend class Tape;
    detail::NodeIo out_{};
    const detail::NodeIo* in_ = nullptr;
    std::size_t n_in_ = 0;
};

class Tape {
public:
    /// A point in the recording to come back to (see rewind).
    struct Mark {
        std::size_t vars = 0;
        std::size_t operands = 0;
        std::size_t nodes = 0;
        Arena::Mark arena{};
    };

    Tape() { end_.push_back(0); }
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;
    ~Tape() { destroy_nodes_from(0); }

    // ---- the thread's active tape -------------------------------------------------------
    static Tape* active_or_null() noexcept { return active_slot(); }
    static Tape& active() {
        Tape* t = active_slot();
        if (t == nullptr) [[unlikely]] {
            throw AdError("diffbio::ad: Var arithmetic needs an active tape on this thread "
                          "(create a Tape and a ScopedTape, or use ad::gradient)");
        }
        return *t;
    }

    // ---- leaves ------------------------------------------------------------------------
    /// A new independent variable (or constant) with value v.
    Var variable(double v) { return push_leaf(v); }

    /// A contiguous block of new variables. The returned span lives in the tape's arena and
    /// stays valid until the tape is rewound past this point.
    std::span<const Var> variables(std::span<const double> values) { return variables_from(values); }
    /// The same from float values (widened on the way in, no temporary copy).
    std::span<const Var> variables(std::span<const float> values) { return variables_from(values); }

    // ---- elementary records (used by the Var operators) -----------------------------------
    Var push_leaf(double v) {
        ensure_vars(1);
        return emit(v);
    }
    Var push_unary(double v, Var a, double pa) {
        ensure_vars(1);
        ensure_operands(1);
        arg_.push_unchecked(a.index);
        partial_.push_unchecked(pa);
        return emit(v);
    }
    Var push_binary(double v, Var a, double pa, Var b, double pb) {
        ensure_vars(1);
        ensure_operands(2);
        arg_.push_unchecked(a.index);
        arg_.push_unchecked(b.index);
        partial_.push_unchecked(pa);
        partial_.push_unchecked(pb);
        return emit(v);
    }
    /// A variable with n operands: value v, ∂v/∂args[i] = partials[i]. One record for a whole sum.
    Var push_nary(double v, std::span<const Var> args, std::span<const double> partials) {
        DIFFBIO_ASSERT(args.size() == partials.size());
        ensure_vars(1);
        ensure_operands(args.size());
        for (std::size_t i = 0; i < args.size(); ++i) {
            arg_.push_unchecked(args[i].index);
            partial_.push_unchecked(partials[i]);
        }
        return emit(v);
    }

    // ---- custom nodes ---------------------------------------------------------------------
    /// Record one fused node.
    ///   inputs      blocks of existing Vars the node depends on (a single Var: std::span(&v, 1));
    ///               a block whose indices are contiguous is handed to the backward in place,
    ///               any other is gathered into scratch and scattered back (transparently)
    ///   out_values  forward values of the node's outputs (n ≥ 1), copied onto the tape
    ///   backward    callable void(const NodeGrad&), run once per reverse sweep
    /// Returns the outputs: a contiguous block of new Vars (arena storage, valid until rewind).
    /// Cost: O(#inputs + #outputs) to record, plus what backward does.
    template <class F>
    std::span<const Var> record_node(std::initializer_list<std::span<const Var>> inputs,
                                     std::span<const double> out_values, F&& backward) {
        auto outs = record_node_uninitialised(inputs, out_values.size(), std::forward<F>(backward));
        for (std::size_t i = 0; i < out_values.size(); ++i) val_[outs[0].index + i] = out_values[i];
        return outs;
    }

    /// As record_node, with n_out outputs whose values the caller then writes through
    /// values_of(outputs) (saves a copy when the kernel can write in place). The values start at 0.
    template <class F>
    std::span<const Var> record_node_uninitialised(std::initializer_list<std::span<const Var>> inputs,
                                                   std::size_t n_out, F&& backward) {
        check_node_inputs(inputs, n_out);
        Var* outs = arena_.allocate_array<Var>(n_out);
        fill_handles(record_node_block(inputs, n_out, std::forward<F>(backward), true), {outs, n_out});
        return {outs, n_out};
    }

    /// For nodes with large outputs: as record_node_uninitialised, with the output handles
    /// written into `out` (n_out = out.size(), e.g. a buffer the caller keeps across steps)
    /// instead of arena storage. Returns the outputs' values, which are NOT initialised: the
    /// caller must write every one of them before the next record.
    template <class F>
    std::span<double> record_node_into(std::initializer_list<std::span<const Var>> inputs, std::span<Var> out, F&& backward) {
        check_node_inputs(inputs, out.size());
        const std::uint32_t first = record_node_block(inputs, out.size(), std::forward<F>(backward), false);
        fill_handles(first, out);
        return {val_.data() + first, out.size()};
    }

    /// As record_node_into, with the output handles written into several buffers in turn (one
    /// contiguous block of n_out = Σ sizes variables: the first buffer's, then the second's, ...).
    /// Returns the values of the whole block, NOT initialised, in the same order.
    template <class F>
    std::span<double> record_node_into(std::initializer_list<std::span<const Var>> inputs,
                                       std::initializer_list<std::span<Var>> outs, F&& backward) {
        std::size_t n_out = 0;
        for (const auto& o : outs) n_out += o.size();
        check_node_inputs(inputs, n_out);
        std::uint32_t at = record_node_block(inputs, n_out, std::forward<F>(backward), false);
        const std::uint32_t first = at;
        for (const auto& o : outs) {
            fill_handles(at, o);
            at += static_cast<std::uint32_t>(o.size());
        }
        return {val_.data() + first, n_out};
    }

    /// Σ_i c[i]·x[i] as one node: a loss over a large output (a node's output block) without an
    /// operand record per term. x contiguous on the tape (a node's outputs, a variables() block) is
    /// read and its adjoints accumulated in place, one streaming pass each way; any other x is
    /// gathered. c is copied into the arena. O(n) to record and to sweep; 8 bytes per term.
    Var weighted_sum(std::span<const Var> x, std::span<const double> c) {
        if (x.size() != c.size()) {
            throw ShapeError("Tape::weighted_sum: " + std::to_string(x.size()) + " Vars but " +
                             std::to_string(c.size()) + " coefficients");
        }
        if (x.empty()) return push_leaf(0.0);
        return weighted_row_sums(x, c)[0];
    }

    /// s_r = Σ_j c[j]·x[r·m + j] for the rows r of x read as a row-major [x.size()/m × m] matrix,
    /// m = c.size(): a matrix-vector product as one node (e.g. a per-read score over an
    /// [N × L × 4] output with one coefficient per position and channel). As weighted_sum, and c is
    /// kept once for all rows. Returns the rows' sums (arena storage, valid until rewind).
    std::span<const Var> weighted_row_sums(std::span<const Var> x, std::span<const double> c) {
        const std::size_t m = c.size();
        if (m == 0 || x.empty() || x.size() % m != 0) {
            throw ShapeError("Tape::weighted_row_sums: " + std::to_string(x.size()) + " Vars are not a nonempty whole number of rows of " +
                             std::to_string(m) + " coefficients");
        }
        const std::size_t rows = x.size() / m;
        const std::span<double> kept = allocate<double>(m);
        std::copy(c.begin(), c.end(), kept.begin());
        // Recorded first: the node's input check also tells whether x is one contiguous block, and
        // the sums are written straight into the outputs' values (no other record comes between).
        const std::span<const Var> outs = record_node_uninitialised({x}, rows, [kept, m](const NodeGrad& g) {
            const std::span<const double> a = g.out_adjoint();
            const std::span<double> gx = g.in_adjoint(0);
            for (std::size_t r = 0; r < a.size(); ++r) {
                if (a[r] == 0.0) continue;
                double* row = gx.data() + r * m;
                for (std::size_t j = 0; j < m; ++j) row[j] += kept[j] * a[r];
            }
        });
        const std::span<const double> xv =
            nodes_.back()->inputs[0].indices == nullptr ? std::span<const double>(val_.data() + x[0].index, x.size())
                                                        : std::span<const double>();
        // eight partial sums per row: one chain would wait on every add's latency
        const auto row_sum = [&](std::size_t r) {
            double part[8] = {};
            const std::size_t m8 = m - m % 8, at = r * m;
            if (!xv.empty()) {
                for (std::size_t j = 0; j < m8; j += 8) {
                    for (std::size_t k = 0; k < 8; ++k) part[k] += kept[j + k] * xv[at + j + k];
                }
                for (std::size_t j = m8; j < m; ++j) part[j - m8] += kept[j] * xv[at + j];
            } else {
                for (std::size_t j = 0; j < m; ++j) part[j % 8] += kept[j] * value(x[at + j]);
            }
            return ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
        };
        double* sums = val_.data() + outs[0].index;
        for (std::size_t r = 0; r < rows; ++r) sums[r] = row_sum(r);
        return outs;
    }

    /// Writable values of a block of Vars (e.g. the outputs of record_node_uninitialised).
    std::span<double> values_of(std::span<const Var> block) {
        if (block.empty()) return {};
        check_var(block[0], "values_of");
        check_var(block.back(), "values_of");
        if (!is_contiguous(block)) throw AdError("values_of: block is not contiguous");
        return {val_.data() + block[0].index, block.size()};
    }

    /// Values of a block as a view into the tape when its indices are contiguous, else an empty
    /// span. The view is invalidated by the next record: use it at once.
    std::span<const double> contiguous_values(std::span<const Var> block) const {
        if (block.empty()) return {};
        check_var(block[0], "contiguous_values");
        check_var(block.back(), "contiguous_values");
        if (static_cast<std::size_t>(block.back().index - block[0].index) + 1 != block.size()) return {};
        if (!is_contiguous(block)) return {};
        return {val_.data() + block[0].index, block.size()};
    }

    // ---- reading ---------------------------------------------------------------------------
    double value(Var v) const {
        check_var(v, "value");
        return val_[v.index];
    }
    /// Fast unchecked value access for the operator overloads.
    double value_unchecked(Var v) const noexcept {
        DIFFBIO_ASSERT(v.index < val_.size());
        return val_[v.index];
    }
    /// ∂(seeded output)/∂v after backward(); 0 for a variable recorded after the last sweep.
    double adjoint(Var v) const {
        check_var(v, "adjoint");
        return v.index < adj_.size() ? adj_[v.index] : 0.0;
    }
    /// Adjoints of a block into out[i] (+= when accumulate is true).
    void adjoints(std::span<const Var> vars, std::span<double> out, bool accumulate = false) const {
        if (out.size() != vars.size()) throw ShapeError("Tape::adjoints: output size differs from the number of Vars");
        if (const auto view = contiguous_values(vars); !view.empty() && vars.back().index < adj_.size()) {
            const double* a = adj_.data() + vars[0].index; // a contiguous block: one streaming pass
            for (std::size_t i = 0; i < vars.size(); ++i) out[i] = accumulate ? out[i] + a[i] : a[i];
            return;
        }
        for (std::size_t i = 0; i < vars.size(); ++i) {
            const double a = adjoint(vars[i]);
            out[i] = accumulate ? out[i] + a : a;
        }
    }

    // ---- reverse sweep -----------------------------------------------------------------------
    /// Zero every adjoint, seed ∂y/∂y = seed, and sweep the whole tape once in reverse.
    void backward(Var y, double seed = 1.0) {
        check_var(y, "backward");
        zero_adjoints();
        adj_[y.index] = seed;
        propagate();
    }

    /// Set all adjoints to zero (sizes the adjoint array to the tape).
    void zero_adjoints() { adj_.assign(val_.size(), 0.0); }

    /// Add to one adjoint before propagate() (for vector seeds).
    void seed(Var v, double a) {
        check_var(v, "seed");
        if (adj_.size() != val_.size()) zero_adjoints();
        adj_[v.index] += a;
    }

    /// Sweep the tape in reverse with the adjoints as they are now.
    void propagate() {
        if (adj_.size() != val_.size()) adj_.resize(val_.size(), 0.0);
        double* adj = adj_.data();
        const std::uint32_t* arg = arg_.data();
        const double* partial = partial_.data();
        std::size_t node = nodes_.size();
        // A node runs when the sweep comes down to its output block (every variable above it is
        // done); the block itself has no operands, so the sweep then jumps over it.
        std::size_t next_node_top = node > 0 ? nodes_[node - 1]->first_out + std::size_t{nodes_[node - 1]->n_out} : 0;
        // Large blocks of leaves have no operands to sweep: the sweep jumps over them too.
        std::size_t leaf = leaf_blocks_.size();
        std::size_t next_leaf_top = leaf > 0 ? leaf_blocks_[leaf - 1].top : 0;
        std::uint32_t hi = end_[val_.size()];
        for (std::size_t k = val_.size(); k > 0;) {
            if (k == next_node_top) {
                NodeRecord& r = *nodes_[--node];
                run_node(r);
                k = r.first_out;
                hi = end_[k];
                next_node_top = node > 0 ? nodes_[node - 1]->first_out + std::size_t{nodes_[node - 1]->n_out} : 0;
                continue;
            }
            if (k == next_leaf_top) {
                k = leaf_blocks_[--leaf].first;
                hi = end_[k];
                next_leaf_top = leaf > 0 ? leaf_blocks_[leaf - 1].top : 0;
                continue;
            }
            --k;
            const std::uint32_t lo = end_[k];
            const double a = adj[k];
            if (a != 0.0) {
                for (std::uint32_t j = lo; j < hi; ++j) adj[arg[j]] += partial[j] * a;
            }
            hi = lo;
        }
    }

    // ---- memory ------------------------------------------------------------------------------
    Mark mark() const { return {val_.size(), arg_.size(), nodes_.size(), arena_.mark()}; }

    /// Forget everything recorded after m; keeps all memory for reuse. Vars recorded after m
    /// become invalid.
    void rewind(const Mark& m) {
        if (m.vars > val_.size() || m.operands > arg_.size() || m.nodes > nodes_.size()) {
            throw AdError("Tape::rewind: the mark is ahead of the tape (already rewound past it?)");
        }
        destroy_nodes_from(m.nodes);
        // a leaf block lies wholly above or wholly below a mark (marks fall between records)
        while (!leaf_blocks_.empty() && leaf_blocks_.back().first >= m.vars) leaf_blocks_.pop_back();
        val_.truncate(m.vars);
        end_.truncate(m.vars + 1);
        arg_.truncate(m.operands);
        partial_.truncate(m.operands);
        adj_.truncate(m.vars);
        arena_.rewind(m.arena);
    }
    void clear() { rewind(Mark{}); }

    std::size_t num_vars() const noexcept { return val_.size(); }
    std::size_t num_operands() const noexcept { return arg_.size(); }
    std::size_t num_nodes() const noexcept { return nodes_.size(); }
    /// Bytes in use by the recording (values, adjoints, offsets, operands; not the arena).
    std::size_t used_bytes() const noexcept {
        return val_.size() * (2 * sizeof(double) + sizeof(std::uint32_t)) +
               arg_.size() * (sizeof(std::uint32_t) + sizeof(double));
    }
    /// Bytes reserved from the system, arena included: what a training loop's steady state holds.
    std::size_t capacity_bytes() const noexcept {
        return val_.capacity() * sizeof(double) + adj_.capacity() * sizeof(double) +
               end_.capacity() * sizeof(std::uint32_t) + arg_.capacity() * sizeof(std::uint32_t) +
               partial_.capacity() * sizeof(double) + nodes_.capacity() * sizeof(void*) +
               scratch_.capacity() * sizeof(double) + io_.capacity() * sizeof(detail::NodeIo) +
               leaf_blocks_.capacity() * sizeof(LeafBlock) + input_contiguous_.capacity() +
               arena_.capacity_bytes();
    }
    /// Reserve room for n more variables and m more operands.
    void reserve(std::size_t n_vars, std::size_t n_operands) {
        ensure_vars(n_vars);
        ensure_operands(n_operands);
    }

    /// Raw storage for fused kernels' scratch that must live as long as the recording
    /// (e.g. saved intermediates of a node). Freed by rewind.
    template <class T>
    std::span<T> allocate(std::size_t n) {
        static_assert(std::is_trivially_destructible_v<T>, "Tape::allocate: T must be trivially destructible");
        return {arena_.allocate_array<T>(n), n};
    }

private:
    template <class T>
    std::span<const Var> variables_from(std::span<const T> values) {
        const std::size_t n = values.size();
        ensure_vars(n);
        Var* out = arena_.allocate_array<Var>(n);
        const std::size_t first = val_.size();
        const auto ops = static_cast<std::uint32_t>(arg_.size());
        // A large block is listed for the reverse sweep to jump over, like a node's outputs, and
        // only the offset at its top is written. Listed first: nothing below throws.
        const bool listed = n >= min_leaf_block;
        if (listed) leaf_blocks_.push_back({static_cast<std::uint32_t>(first), static_cast<std::uint32_t>(first + n)});
        val_.resize_uninitialised(first + n);
        end_.resize_uninitialised(first + n + 1);
        if constexpr (std::is_same_v<T, double>) {
            if (n > 0) std::memcpy(val_.data() + first, values.data(), n * sizeof(double));
        } else {
            for (std::size_t i = 0; i < n; ++i) val_[first + i] = static_cast<double>(values[i]);
        }
        if (listed) {
            end_[first + n] = ops;
        } else {
            std::fill_n(end_.data() + first + 1, n, ops);
        }
        fill_handles(static_cast<std::uint32_t>(first), {out, n});
        return {out, n};
    }

    /// A block of leaves recorded by variables(): [first, top).
    struct LeafBlock {
        std::uint32_t first;
        std::uint32_t top;
    };
    /// Smaller blocks are swept leaf by leaf (listing them would cost more than it saves).
    static constexpr std::size_t min_leaf_block = 64;

    struct InputDesc {
        std::uint32_t first;
        std::uint32_t size;
        std::uint32_t* indices; // null when contiguous
    };
    struct NodeRecord {
        void (*invoke)(NodeRecord*, const NodeGrad&) = nullptr;
        void (*destroy)(NodeRecord*) = nullptr;
        InputDesc* inputs = nullptr;
        std::uint32_t n_in = 0;
        std::uint32_t first_out = 0;
        std::uint32_t n_out = 0;
    };

    static Tape*& active_slot() noexcept {
        thread_local Tape* slot = nullptr;
        return slot;
    }
    friend class ScopedTape;

    void check_var(Var v, const char* where) const {
        if (v.index >= val_.size()) {
            throw AdError(std::string("Tape::") + where +
                          (v.valid() ? ": Var does not belong to this tape (or the tape was rewound past it)"
                                     : ": Var was never initialised"));
        }
    }
    static constexpr std::size_t max_records = std::numeric_limits<std::uint32_t>::max() - 1;

    /// Room for n more variables (values and offsets grow together: one check per record).
    void ensure_vars(std::size_t n) {
        if (val_.size() + n > val_.capacity()) [[unlikely]] grow_vars(n);
    }
    void ensure_operands(std::size_t n) {
        if (arg_.size() + n > arg_.capacity()) [[unlikely]] grow_operands(n);
    }
    void grow_vars(std::size_t n) {
        if (val_.size() + n > max_records) {
            throw AdError("Tape: more than 2^32 - 2 variables; rewind or split the computation");
        }
        val_.reserve(val_.size() + n);
        end_.reserve(val_.capacity() + 1);
    }
    void grow_operands(std::size_t n) {
        if (arg_.size() + n > max_records) {
            throw AdError("Tape: more than 2^32 - 2 operands; rewind or split the computation");
        }
        arg_.reserve(arg_.size() + n);
        partial_.reserve(arg_.capacity());
    }
    /// Append a variable whose operands were just pushed (capacity already ensured).
    Var emit(double v) noexcept {
        val_.push_unchecked(v);
        end_.push_unchecked(static_cast<std::uint32_t>(arg_.size()));
        return Var(Var::FromIndex{}, static_cast<std::uint32_t>(val_.size() - 1));
    }

    /// block[i].index == block[0].index + i for every i (one branch-free pass the compiler vectorises).
    static bool is_contiguous(std::span<const Var> block) noexcept {
        if (block.empty()) return true;
        const std::uint32_t first = block[0].index;
        std::uint32_t diff = 0;
        for (std::size_t i = 0; i < block.size(); ++i) diff |= block[i].index ^ (first + static_cast<std::uint32_t>(i));
        return diff == 0;
    }

    /// Checks a node's inputs and notes for record_node_block which are contiguous blocks: one
    /// vectorised pass over each input's handles for both.
    void check_node_inputs(std::initializer_list<std::span<const Var>> inputs, std::size_t n_out) {
        if (n_out == 0) throw AdError("record_node: a custom node needs at least one output");
        input_contiguous_.resize(inputs.size());
        std::size_t k = 0;
        for (const auto& in : inputs) {
            // the largest index decides validity (invalid_index is the largest of all), and the
            // offending Var is looked for only on failure, for the message
            std::uint32_t top = 0, diff = 0;
            const std::uint32_t first = in.empty() ? 0 : in[0].index;
            for (std::size_t i = 0; i < in.size(); ++i) {
                top = std::max(top, in[i].index);
                diff |= in[i].index ^ (first + static_cast<std::uint32_t>(i));
            }
            if (!in.empty() && top >= val_.size()) {
                for (const Var& v : in) check_var(v, "record_node input");
            }
            input_contiguous_[k++] = diff == 0 ? 1 : 0;
        }
    }
    static void fill_handles(std::uint32_t first, std::span<Var> out) noexcept {
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = Var(Var::FromIndex{}, first + static_cast<std::uint32_t>(i));
    }

    /// Lists one node (inputs checked by the caller with check_node_inputs, which also noted the
    /// contiguous ones) and appends its n_out output variables (no operands; value 0 when
    /// zero_values, else uninitialised) in one block; returns the index of the first.
    template <class F>
    std::uint32_t record_node_block(std::initializer_list<std::span<const Var>> inputs, std::size_t n_out, F&& backward,
                                    bool zero_values) {
        using Fn = std::decay_t<F>;
        static_assert(std::is_invocable_v<Fn&, const NodeGrad&>,
                      "record_node: backward must be callable as void(const NodeGrad&)");
        ensure_vars(n_out);
        struct Impl final : NodeRecord {
            Fn fn;
            explicit Impl(Fn&& f) : fn(std::move(f)) {}
        };
        // Lay out the input descriptors first: nothing below may throw once the node is listed.
        auto* descs = arena_.allocate_array<InputDesc>(inputs.size());
        std::size_t k = 0;
        for (const auto& in : inputs) {
            InputDesc& d = descs[k++];
            d.size = static_cast<std::uint32_t>(in.size());
            d.first = in.empty() ? 0 : in[0].index;
            d.indices = nullptr;
            if (input_contiguous_[k - 1] == 0) {
                d.indices = arena_.allocate_array<std::uint32_t>(in.size());
                for (std::size_t i = 0; i < in.size(); ++i) d.indices[i] = in[i].index;
            }
        }
        nodes_.reserve(nodes_.size() + 1);
        auto* rec = new (arena_.allocate(sizeof(Impl), alignof(Impl))) Impl(Fn(std::forward<F>(backward)));
        rec->invoke = [](NodeRecord* r, const NodeGrad& g) { static_cast<Impl*>(r)->fn(g); };
        rec->destroy = std::is_trivially_destructible_v<Impl>
                           ? nullptr
                           : +[](NodeRecord* r) { static_cast<Impl*>(r)->~Impl(); };
        rec->n_in = static_cast<std::uint32_t>(inputs.size());
        rec->inputs = descs;
        nodes_.push_back(rec);
        const std::size_t first = val_.size();
        rec->first_out = static_cast<std::uint32_t>(first);
        rec->n_out = static_cast<std::uint32_t>(n_out);
        // The outputs have no operands. The reverse sweep jumps over the block, so it reads only
        // the offset at the block's top (the next record's first operand); the offsets inside the
        // block are never read and stay unwritten (4 bytes per output less traffic).
        val_.resize_uninitialised(first + n_out);
        end_.resize_uninitialised(first + n_out + 1);
        if (zero_values) std::fill_n(val_.data() + first, n_out, 0.0);
        end_[first + n_out] = static_cast<std::uint32_t>(arg_.size());
        return static_cast<std::uint32_t>(first);
    }

    void run_node(NodeRecord& r) {
        // Adjoints of contiguous inputs are used in place; others go through scratch.
        std::size_t scratch_needed = 0;
        for (std::uint32_t k = 0; k < r.n_in; ++k) {
            if (r.inputs[k].indices != nullptr) scratch_needed += 2 * r.inputs[k].size;
        }
        if (scratch_.size() < scratch_needed) scratch_.resize(scratch_needed);
        if (io_.size() < r.n_in) io_.resize(r.n_in);
        double* s = scratch_.data();
        for (std::uint32_t k = 0; k < r.n_in; ++k) {
            const InputDesc& d = r.inputs[k];
            if (d.indices == nullptr) {
                io_[k] = {adj_.data() + d.first, val_.data() + d.first, d.size};
            } else {
                double* a = s;
                double* v = s + d.size;
                s += 2 * d.size;
                for (std::uint32_t i = 0; i < d.size; ++i) {
                    a[i] = 0.0;
                    v[i] = val_[d.indices[i]];
                }
                io_[k] = {a, v, d.size};
            }
        }
        NodeGrad g;
        g.out_ = {adj_.data() + r.first_out, val_.data() + r.first_out, r.n_out};
        g.in_ = io_.data();
        g.n_in_ = r.n_in;
        r.invoke(&r, g);
        for (std::uint32_t k = 0; k < r.n_in; ++k) {
            const InputDesc& d = r.inputs[k];
            if (d.indices != nullptr) {
                for (std::uint32_t i = 0; i < d.size; ++i) adj_[d.indices[i]] += io_[k].adj[i];
            }
        }
    }

    void destroy_nodes_from(std::size_t n) {
        for (std::size_t i = nodes_.size(); i-- > n;) {
            if (nodes_[i]->destroy != nullptr) nodes_[i]->destroy(nodes_[i]);
        }
        nodes_.resize(n);
    }

    detail::PodBuffer<double> val_;
    detail::PodBuffer<double> adj_;
    detail::PodBuffer<std::uint32_t> end_; // size num_vars + 1, end_[0] = 0
    detail::PodBuffer<std::uint32_t> arg_;
    detail::PodBuffer<double> partial_;
    std::vector<NodeRecord*> nodes_;
    std::vector<LeafBlock> leaf_blocks_; // in recording order, disjoint from the node blocks
    std::vector<unsigned char> input_contiguous_; // check_node_inputs → record_node_block
    std::vector<double> scratch_;
    std::vector<detail::NodeIo> io_;
    Arena arena_;
};

/// Makes a tape the calling thread's active tape for the lifetime of this object (restoring the
/// previous one afterwards). Nestable; not movable.
class ScopedTape {
public:
    explicit ScopedTape(Tape& t) noexcept : prev_(Tape::active_slot()) { Tape::active_slot() = &t; }
    ScopedTape(const ScopedTape&) = delete;
    ScopedTape& operator=(const ScopedTape&) = delete;
    ~ScopedTape() { Tape::active_slot() = prev_; }

private:
    Tape* prev_;
};

inline Var::Var(double v) : Var(Tape::active().push_leaf(v)) {}
inline double Var::value() const { return Tape::active().value(*this); }

} // namespace diffbio::ad
