#pragma once
// PodBuffer<T>: the growable flat array behind the tape. Like a minimal std::vector for trivially
// copyable T, but with an unchecked push for hot paths whose capacity was checked once for
// several arrays, and no value-initialisation on growth. Shrinking never frees memory. Large
// arrays are hinted for transparent huge pages (core/huge_pages.hpp).

#include <cstddef>
#include <cstring>
#include <memory>
#include <type_traits>

#include <diffbio/config.hpp>
#include <diffbio/core/huge_pages.hpp>

namespace diffbio::ad::detail {

template <class T>
class PodBuffer {
    static_assert(std::is_trivially_copyable_v<T>, "PodBuffer holds trivially copyable types only");

public:
    PodBuffer() = default;
    PodBuffer(const PodBuffer&) = delete;
    PodBuffer& operator=(const PodBuffer&) = delete;

    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return cap_; }
    bool empty() const noexcept { return size_ == 0; }
    T* data() noexcept { return data_.get(); }
    const T* data() const noexcept { return data_.get(); }
    T& operator[](std::size_t i) noexcept { return data_[i]; }
    const T& operator[](std::size_t i) const noexcept { return data_[i]; }
    T& back() noexcept { return data_[size_ - 1]; }

    /// Capacity for at least n elements (grows geometrically).
    void reserve(std::size_t n) {
        if (n <= cap_) return;
        std::size_t c = 2 * cap_ > n ? 2 * cap_ : n;
        c = c < 256 ? 256 : c;
        std::unique_ptr<T[]> d(new T[c]);
        diffbio::detail::huge_page_hint(d.get(), c * sizeof(T));
        if (size_ > 0) std::memcpy(d.get(), data_.get(), size_ * sizeof(T));
        data_ = std::move(d);
        cap_ = c;
    }
    /// Append without a capacity check: the caller reserved.
    void push_unchecked(const T& v) noexcept {
        DIFFBIO_ASSERT(size_ < cap_);
        data_[size_++] = v;
    }
    void push_back(const T& v) {
        if (size_ == cap_) [[unlikely]] reserve(size_ + 1);
        data_[size_++] = v;
    }
    /// New size; new elements are uninitialised.
    void resize_uninitialised(std::size_t n) {
        reserve(n);
        size_ = n;
    }
    /// New size; new elements are set to v.
    void resize(std::size_t n, const T& v) {
        reserve(n);
        for (std::size_t i = size_; i < n; ++i) data_[i] = v;
        size_ = n;
    }
    void assign(std::size_t n, const T& v) {
        reserve(n);
        for (std::size_t i = 0; i < n; ++i) data_[i] = v;
        size_ = n;
    }
    /// Shrink (keeps the memory).
    void truncate(std::size_t n) noexcept {
        if (n < size_) size_ = n;
    }

private:
    std::unique_ptr<T[]> data_;
    std::size_t size_ = 0;
    std::size_t cap_ = 0;
};

} // namespace diffbio::ad::detail
