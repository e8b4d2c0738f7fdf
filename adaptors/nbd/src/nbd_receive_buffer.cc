#include "simarray/nbd/nbd_receive_buffer.h"

#include <cstring>

namespace simarray::nbd {

void ReceiveBuffer::Consume(size_t n) {
  begin_ += n;
  if (begin_ == end_) begin_ = end_ = 0;  // nothing to move before the next read
}

std::span<uint8_t> ReceiveBuffer::Space() {
  if (bytes_.empty()) bytes_.resize(capacity_);
  if (begin_ > 0) {
    std::memmove(bytes_.data(), bytes_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  return {bytes_.data() + end_, capacity_ - end_};
}

}  // namespace simarray::nbd
