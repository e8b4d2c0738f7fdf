#pragma once
// ReceiveBuffer: the bytes an NBD connection has read off its socket and not parsed yet, in
// one block of fixed capacity. A read appends after what is there (Space, then Filled);
// parsing takes from the front (Data, then Consume). Space first moves the unparsed bytes to
// the front, so a request whose header and payload together fit in the capacity always fits
// once the requests before it are consumed. The block is allocated on first use.
//
// Not thread-safe: one connection's strand.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace simarray::nbd {

class ReceiveBuffer {
 public:
  explicit ReceiveBuffer(size_t capacity) : capacity_(capacity) {}

  size_t capacity() const { return capacity_; }
  // The bytes read and not consumed yet.
  std::span<const uint8_t> Data() const { return {bytes_.data() + begin_, end_ - begin_}; }
  size_t size() const { return end_ - begin_; }
  // Drops the first `n` bytes of Data() (n <= size()).
  void Consume(size_t n);
  // Where the next read may put bytes: all the room after Data(), which is moved to the
  // front first. Empty only when Data() fills the whole capacity.
  std::span<uint8_t> Space();
  // `n` bytes were read into Space() (n <= its size).
  void Filled(size_t n) { end_ += n; }

 private:
  const size_t capacity_;
  std::vector<uint8_t> bytes_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace simarray::nbd
