#pragma once
// StatusFigures: the view of the figures (simarray/base/figures.h) that fills a protobuf
// message, the Status reply or a part of it, by the field names the figures give.
//
// A figure's field is a name in the current section's message, or a dotted path down from it
// ("link.resync_pending"); a numeric or bool field takes the value, a map<string, uint64>
// field takes it under the figure's label value. A section's field is a message field of the
// current message: a repeated one gets a new entry (with `key_field` set to the label value),
// a singular one is entered as it is.
//
// A name the message lacks is a description out of step with admin.proto: it is kept in
// errors() (the figures unit test requires none) and otherwise ignored, so a stale name loses
// one number, never the reply.

#include <string>
#include <vector>

#include "google/protobuf/message.h"
#include "simarray/base/figures.h"

namespace simarray::daemon {

class StatusFigures final : public FigureSink {
 public:
  // `root` is borrowed and must outlive this.
  explicit StatusFigures(google::protobuf::Message* root) { stack_.push_back(root); }

  void Add(const Figure& figure, uint64_t value) override;
  void Add(const Figure& figure, double value) override;
  using FigureSink::Add;
  void Enter(const FigureSection& section) override;
  void Leave() override;

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  // The message holding the last part of `path`, and that part's field; null if not found.
  const google::protobuf::FieldDescriptor* Resolve(std::string_view path,
                                                   google::protobuf::Message** message);
  template <typename T>
  void Set(const Figure& figure, T value);

  std::vector<google::protobuf::Message*> stack_;  // null: a section that was not found
  std::vector<std::string> errors_;
};

}  // namespace simarray::daemon
