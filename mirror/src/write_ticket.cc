#include "simarray/mirror/write_ticket.h"

namespace simarray::mirror {

void WriteTicket::Ack() {
  if (outstanding_.fetch_sub(1) == 1) Fire(absl::OkStatus());
}

void WriteTicket::Unmirrored() {
  mirrored_ = false;
  Ack();
}

void WriteTicket::Fail(absl::Status status) { Fire(std::move(status)); }

void WriteTicket::Fire(absl::Status status) {
  if (fired_.exchange(true)) return;
  auto done = std::move(done_);
  if (done) done(std::move(status), mirrored_.load());
}

}  // namespace simarray::mirror
