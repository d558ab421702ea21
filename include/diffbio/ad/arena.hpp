#pragma once
// A bump allocator made of retained chunks. mark()/rewind() release everything allocated after
// the mark in O(1) without returning memory to the system, so a training loop that rewinds each
// step reaches a steady state with no allocation at all. Memory is returned only on destruction.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include <diffbio/config.hpp>
#include <diffbio/core/error.hpp>
#include <diffbio/core/huge_pages.hpp>

namespace diffbio::ad {

class Arena {
public:
    struct Mark {
        std::size_t chunk = 0;
        std::size_t offset = 0;
    };

    explicit Arena(std::size_t first_chunk_bytes = 64 * 1024)
        : first_chunk_(first_chunk_bytes < 1024 ? 1024 : first_chunk_bytes) {}
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;

    /// Uninitialised storage for `bytes` bytes aligned to `align` (a power of two ≤ 64).
    void* allocate(std::size_t bytes, std::size_t align = alignof(std::max_align_t)) {
        if (!chunks_.empty()) {
            if (void* p = try_bump(chunks_[current_], bytes, align)) return p;
        }
        // Move to the next retained chunk, or make a new one large enough.
        const std::size_t need = bytes + align;
        std::size_t next = chunks_.empty() ? 0 : current_ + 1;
        if (next < chunks_.size() && chunks_[next].size < need) {
            // Too small for this request: replace it (only happens while the loop still grows).
            chunks_[next] = make_chunk(grow_size(need));
        } else if (next >= chunks_.size()) {
            chunks_.push_back(make_chunk(grow_size(need)));
        }
        current_ = next;
        chunks_[current_].used = 0;
        void* p = try_bump(chunks_[current_], bytes, align);
        DIFFBIO_ASSERT(p != nullptr);
        return p;
    }

    template <class T>
    T* allocate_array(std::size_t n) {
        return static_cast<T*>(allocate(n * sizeof(T) == 0 ? 1 : n * sizeof(T), alignof(T)));
    }

    Mark mark() const { return chunks_.empty() ? Mark{} : Mark{current_, chunks_[current_].used}; }

    void rewind(const Mark& m) {
        if (chunks_.empty()) return;
        if (m.chunk >= chunks_.size()) throw AdError("Arena::rewind: mark does not belong to this arena");
        current_ = m.chunk;
        chunks_[current_].used = m.offset;
    }

    void clear() { rewind(Mark{}); }

    /// Bytes reserved from the system (all retained chunks).
    std::size_t capacity_bytes() const {
        std::size_t s = 0;
        for (const auto& c : chunks_) s += c.size;
        return s;
    }

private:
    struct Chunk {
        std::unique_ptr<std::byte[]> data;
        std::size_t size = 0;
        std::size_t used = 0;
    };

    static void* try_bump(Chunk& c, std::size_t bytes, std::size_t align) {
        const auto base = reinterpret_cast<std::uintptr_t>(c.data.get());
        const std::uintptr_t start = (base + c.used + (align - 1)) & ~static_cast<std::uintptr_t>(align - 1);
        const std::size_t end = static_cast<std::size_t>(start - base) + bytes;
        if (end > c.size) return nullptr;
        c.used = end;
        return reinterpret_cast<void*>(start);
    }

    std::size_t grow_size(std::size_t need) const {
        std::size_t s = chunks_.empty() ? first_chunk_ : chunks_.back().size * 2;
        while (s < need) s *= 2;
        return s;
    }

    static Chunk make_chunk(std::size_t size) {
        Chunk c;
        c.data = std::make_unique_for_overwrite<std::byte[]>(size); // zeroing would touch every page
        diffbio::detail::huge_page_hint(c.data.get(), size);
        c.size = size;
        return c;
    }

    std::vector<Chunk> chunks_;
    std::size_t current_ = 0;
    std::size_t first_chunk_;
};

} // namespace diffbio::ad
