#include "simarray/remote/cycle_journal.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "simarray/base/state_file.h"

namespace simarray::remote {
namespace {

constexpr char kMagic[] = "simarray-cycles-v1";

bool ReadMark(std::istringstream& in, const char* label, CycleMark* mark) {
  std::string word;
  int consistent = 0;
  if (!(in >> word) || word != label) return false;
  if (!(in >> mark->cycle >> mark->sequence >> consistent)) return false;
  mark->consistent = consistent != 0;
  return true;
}

}  // namespace

absl::StatusOr<CycleNote> CycleJournal::Read() const {
  std::ifstream file(path_);
  if (!file) return CycleNote{};
  std::stringstream text;
  text << file.rdbuf();
  std::istringstream in(text.str());
  std::string magic;
  CycleNote note;
  if (!(in >> magic) || magic != kMagic || !ReadMark(in, "applying", &note.applying) ||
      !ReadMark(in, "applied", &note.applied)) {
    return absl::DataLossError(absl::StrCat("cycle journal ", path_, " is malformed: expected \"",
                                            kMagic, " applying C S K applied C S K\""));
  }
  return note;
}

absl::Status CycleJournal::Write(const CycleNote& note) {
  const std::string text =
      absl::StrCat(kMagic, "\napplying ", note.applying.cycle, " ", note.applying.sequence, " ",
                   note.applying.consistent ? 1 : 0, "\napplied ", note.applied.cycle, " ",
                   note.applied.sequence, " ", note.applied.consistent ? 1 : 0, "\n");
  return WriteFileAtomically(path_, text, 0644);
}

}  // namespace simarray::remote
