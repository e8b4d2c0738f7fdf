#include "daemon/status_figures.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"

namespace simarray::daemon {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

const FieldDescriptor* StatusFigures::Resolve(std::string_view path, Message** message) {
  Message* m = stack_.back();
  if (m == nullptr) return nullptr;  // inside a section that was not found (reported there)
  while (true) {
    const size_t dot = path.find('.');
    const std::string name(path.substr(0, dot));
    const FieldDescriptor* field = m->GetDescriptor()->FindFieldByName(name);
    if (field == nullptr) {
      errors_.push_back(absl::StrCat(m->GetDescriptor()->name(), " has no field ", name));
      return nullptr;
    }
    if (dot == std::string_view::npos) {
      *message = m;
      return field;
    }
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field->is_repeated()) {
      errors_.push_back(
          absl::StrCat(m->GetDescriptor()->name(), ".", name, " is not a message to go down into"));
      return nullptr;
    }
    m = m->GetReflection()->MutableMessage(m, field);
    path.remove_prefix(dot + 1);
  }
}

template <typename T>
void StatusFigures::Set(const Figure& figure, T value) {
  if (figure.field.empty()) return;  // /metrics only
  Message* m = nullptr;
  const FieldDescriptor* field = Resolve(figure.field, &m);
  if (field == nullptr) return;
  const google::protobuf::Reflection* r = m->GetReflection();
  if (field->is_map()) {
    // A map entry is a message of key (field 1) and value (field 2).
    Message* entry = r->AddMessage(m, field);
    const FieldDescriptor* key = entry->GetDescriptor()->map_key();
    const FieldDescriptor* val = entry->GetDescriptor()->map_value();
    if (key->cpp_type() != FieldDescriptor::CPPTYPE_STRING ||
        val->cpp_type() != FieldDescriptor::CPPTYPE_UINT64) {
      errors_.push_back(absl::StrCat(field->full_name(), " is not a map<string, uint64>"));
      return;
    }
    entry->GetReflection()->SetString(entry, key, std::string(figure.label_value));
    entry->GetReflection()->SetUInt64(entry, val, static_cast<uint64_t>(value));
    return;
  }
  if (field->is_repeated()) {
    errors_.push_back(absl::StrCat(field->full_name(), " is repeated"));
    return;
  }
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_UINT64:
      r->SetUInt64(m, field, static_cast<uint64_t>(value));
      return;
    case FieldDescriptor::CPPTYPE_UINT32:
      r->SetUInt32(m, field, static_cast<uint32_t>(value));
      return;
    case FieldDescriptor::CPPTYPE_INT64:
      r->SetInt64(m, field, static_cast<int64_t>(value));
      return;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      r->SetDouble(m, field, static_cast<double>(value));
      return;
    case FieldDescriptor::CPPTYPE_BOOL:
      r->SetBool(m, field, value != 0);
      return;
    default:
      errors_.push_back(absl::StrCat(field->full_name(), " is not a number"));
  }
}

void StatusFigures::Add(const Figure& figure, uint64_t value) { Set(figure, value); }
void StatusFigures::Add(const Figure& figure, double value) { Set(figure, value); }

void StatusFigures::Enter(const FigureSection& section) {
  Message* parent = stack_.back();
  Message* entered = nullptr;
  const FieldDescriptor* field =
      parent == nullptr ? nullptr
                        : parent->GetDescriptor()->FindFieldByName(std::string(section.field));
  if (parent != nullptr &&
      (field == nullptr || field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE)) {
    errors_.push_back(absl::StrCat(parent->GetDescriptor()->name(), " has no section ",
                                   std::string(section.field)));
  } else if (field != nullptr) {
    const google::protobuf::Reflection* r = parent->GetReflection();
    entered =
        field->is_repeated() ? r->AddMessage(parent, field) : r->MutableMessage(parent, field);
    if (!section.key_field.empty()) {
      const FieldDescriptor* key =
          entered->GetDescriptor()->FindFieldByName(std::string(section.key_field));
      if (key == nullptr || key->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
        errors_.push_back(absl::StrCat(entered->GetDescriptor()->name(), " has no string field ",
                                       std::string(section.key_field)));
      } else {
        entered->GetReflection()->SetString(entered, key, std::string(section.label_value));
      }
    }
  }
  stack_.push_back(entered);
}

void StatusFigures::Leave() {
  if (stack_.size() > 1) stack_.pop_back();
}

}  // namespace simarray::daemon
