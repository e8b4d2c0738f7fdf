#include "tools/ctl_output.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "simarray/base/size.h"

namespace simarray::ctl {

const char* StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN_CODE";
  }
}

int ReportRpcError(absl::string_view command, const grpc::Status& status) {
  std::string line =
      absl::StrCat("simarrayctl: ", command, ": ", StatusCodeName(status.error_code()), ": ",
                   status.error_message());
  std::fprintf(stderr, "%s\n", line.c_str());
  return kExitError;
}

int ReportError(absl::string_view command, absl::string_view message) {
  std::string line = absl::StrCat("simarrayctl: ", command, ": ", message);
  std::fprintf(stderr, "%s\n", line.c_str());
  return kExitError;
}

std::string ReplyJson(const google::protobuf::Message& reply) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(reply, &json, options).ok()) {
    return "{}";  // Only for messages with unprintable fields, which simarray's protos lack.
  }
  return json;
}

std::string Hex32(uint32_t value) { return absl::StrFormat("0x%08x", value); }

std::string HexDump(std::string_view data, uint64_t base) {
  std::string out;
  for (size_t line = 0; line < data.size(); line += 16) {
    absl::StrAppendFormat(&out, "%012x  ", base + line);
    std::string ascii;
    for (size_t i = line; i < line + 16; ++i) {
      if (i < data.size()) {
        const auto u = static_cast<unsigned char>(data[i]);
        absl::StrAppendFormat(&out, "%02x ", u);
        ascii += (u >= 0x20 && u < 0x7f) ? static_cast<char>(u) : '.';
      } else {
        out += "   ";
      }
      if (i == line + 7) out += ' ';
    }
    absl::StrAppend(&out, " |", ascii, "|\n");
  }
  return out;
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string pad(width[c] - row[c].size(), ' ');
      const bool align_right = c < right.size() && right[c];
      absl::StrAppend(&line, c == 0 ? "" : "  ", align_right ? pad : "", row[c],
                      align_right ? "" : pad);
    }
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

namespace {

// "crc_mismatch 2, cancelled 1" for the reasons that happened, sorted; "0" when none did.
std::string InvalidByReason(const v1::PenStatus& pen) {
  std::map<std::string, uint64_t> sorted(pen.invalid_writes().begin(), pen.invalid_writes().end());
  std::vector<std::string> parts;
  for (const auto& [reason, count] : sorted) {
    if (count != 0) parts.push_back(absl::StrCat(reason, " ", count));
  }
  return parts.empty() ? "0" : absl::StrJoin(parts, ", ");
}

std::string Pens(const v1::StatusReply& s) {
  std::vector<std::vector<std::string>> rows = {{"  adaptor", "placement", "depth", "writes",
                                                 "committed", "buffered", "sent", "deleted",
                                                 "written", "invalid"}};
  for (const auto& p : s.pens()) {
    rows.push_back({absl::StrCat("  ", p.host_adaptor()), p.placement(), absl::StrCat(p.depth()),
                    absl::StrCat(p.writes()), absl::StrCat(p.writes_committed()),
                    absl::StrCat(p.requests_buffered()), absl::StrCat(p.requests_sent()),
                    absl::StrCat(p.requests_deleted()), FormatSize(p.bytes_written()),
                    InvalidByReason(p)});
  }
  return FormatTable(rows, {false, false, true, true, true, true, true, true, true, false});
}

// The delta set extension the cycles page out to (a source's, or where a target stages).
void DseRow(const v1::CycleStatus& c, std::vector<std::vector<std::string>>& rows) {
  if (c.dse_capacity() == 0) return;
  rows.push_back(
      {"  paged out (DSE)", absl::StrCat(c.dse_tracks(), " tracks, ", FormatSize(c.dse_bytes()),
                                         " (at most ", c.dse_capacity(), " tracks); ",
                                         FormatSize(c.dse_bytes_spilled()), " paged out in all")});
}

// The gold copy a mirror keeps while a resync overwrites its last consistent image.
void GoldRow(const v1::CycleStatus& c, std::vector<std::vector<std::string>>& rows) {
  if (c.gold_held()) {
    rows.push_back({"  gold copy", absl::StrFormat("held: the image as of cycle %d (sequence "
                                                   "%d), %d tracks kept, taken %.1f s ago",
                                                   c.gold_cycle(), c.gold_sequence(),
                                                   c.gold_tracks(), c.gold_age_seconds())});
  } else if (c.gold_taken() != 0 || c.gold_dropped() != 0) {  // (a restart zeroes taken)
    rows.push_back(
        {"  gold copy",
         absl::StrCat("none held; ", c.gold_taken(), " taken, ", c.gold_tracks_restored(),
                      " tracks published back, ", c.gold_lost(), " lost")});
  }
}

// Async mode: the primary's cycles, or what the mirror applied.
void AsyncRows(const v1::CycleStatus& c, bool primary,
               std::vector<std::vector<std::string>>& rows) {
  if (!primary) {
    rows.push_back(
        {"cycles", absl::StrCat("every ", c.cycle_ms(), " ms; applied cycle ", c.applied_cycle(),
                                " (through sequence ", c.applied_sequence(), "), ",
                                c.mirror_consistent() ? "consistent" : "NOT consistent")});
    rows.push_back({"  applied", absl::StrCat(c.cycles_applied(), " whole, ", c.cycles_discarded(),
                                              " discarded unfinished")});
    GoldRow(c, rows);
    DseRow(c, rows);
    return;
  }
  rows.push_back({"cycles", absl::StrCat(c.state(), ", every ", c.cycle_ms(), " ms; capture ",
                                         c.capture_cycle(), ", transmit ",
                                         c.transmit_cycle() == 0 ? std::string("none")
                                                                 : absl::StrCat(c.transmit_cycle()),
                                         ", applied ", c.applied_cycle())});
  rows.push_back({"  mirror behind", absl::StrFormat("%.2f s (through sequence %d)",
                                                     c.seconds_behind(), c.applied_sequence())});
  rows.push_back(
      {"  capture", absl::StrCat(c.capture_tracks(), " tracks, ", FormatSize(c.capture_bytes()))});
  rows.push_back({"  transmit",
                  absl::StrCat(c.transmit_tracks(), " tracks, ", FormatSize(c.transmit_bytes()))});
  rows.push_back(
      {"  writes", absl::StrCat(c.writes_captured(), " captured, ", c.writes_folded(), " folded; ",
                                c.cycle_records_shipped(), " records shipped in ",
                                c.cycles_switched(), " cycles")});
  rows.push_back(
      {"  cache pinned", absl::StrCat(c.pinned_slots(), " of at most ", c.slot_limit(),
                                      " slots; pulled ahead ", c.pull_aheads(), " times")});
  DseRow(c, rows);
  if (c.pacing_threshold() != 0) {
    rows.push_back(
        {"  write pacing", absl::StrFormat("above %d tracks; now %.1f ms a write; %d writes paced, "
                                           "%.2f s in all",
                                           c.pacing_threshold(), c.pacing_delay_us() / 1000.0,
                                           c.writes_paced(), c.pacing_seconds())});
  }
}

}  // namespace

namespace {

// "R1 of group default (1), sync, to 127.0.0.1:7203: Synchronized"
std::string GroupLine(const v1::GroupStatus& g) {
  return absl::StrCat(
      g.role(), " of group ", g.name(), " (", g.number(), "), ", g.mode(),
      g.peer().empty() ? std::string(", peer not known yet") : absl::StrCat(", peer ", g.peer()),
      ": ", g.state());
}

}  // namespace

std::string FormatGroups(const v1::ListGroupsReply& reply) {
  std::vector<std::vector<std::string>> rows = {
      {"GROUP", "NUMBER", "ROLE", "MODE", "STATE", "LINK", "OWED", "PEER"}};
  for (const v1::GroupStatus& g : reply.groups()) {
    rows.push_back({g.name(), absl::StrCat(g.number()), g.role(), g.mode(), g.state(), g.link(),
                    absl::StrCat(g.owed_tracks()), g.peer().empty() ? "-" : g.peer()});
    for (const v1::VolumePair& v : g.volumes()) {
      rows.push_back({absl::StrCat("  ", v.volume()), "", "", "", v.state(),
                      v.paired() ? "" : "no twin yet", absl::StrCat(v.owed_tracks()), ""});
    }
  }
  return FormatTable(rows, {false, true, false, false, false, false, true, false});
}

std::string FormatStatus(const v1::StatusReply& s) {
  const v1::CacheStatus& c = s.cache();
  const v1::LinkStatus& l = s.link();
  std::vector<std::vector<std::string>> rows = {
      {"daemon", s.daemon_id()},
      {"role", s.role()},
      {"mode", s.mode()},
      {"pair state", s.pair_state()},
      {"sequence", absl::StrCat(s.sequence(), " (generation ", s.generation(), ")")},
      {"cache slots",
       absl::StrCat(c.slots(), " total: ", c.free(), " free, ", c.clean(), " clean, ",
                    c.write_pending(), " write-pending, ", c.staging(), " staging, ", c.shipping(),
                    " shipping (track ", FormatSize(c.track_size()),
                    c.persistent() ? ", persistent)" : ", volatile)")},
      {"destage", absl::StrCat(c.tracks_destaged(), " images, ", FormatSize(c.bytes_destaged()),
                               " written; ", FormatSize(c.bytes_copied()), " copied by commits")},
      {"recovery", absl::StrCat("dropped ", c.pen_records_dropped(),
                                " pen records of uncommitted writes at start")},
      {"backing store", absl::StrCat(s.backing_store().empty() ? "ok" : s.backing_store(), " (",
                                     c.backing_store_errors(), " errors, ",
                                     c.backing_store_recoveries(), " recoveries since start)")},
      {"mirror queue",
       s.queue_capacity() == 0
           ? std::string("none")
           : absl::StrCat("depth ", s.queue_depth(), ", peak ", s.queue_peak(), ", capacity ",
                          s.queue_capacity(), ", pushed ", s.queue_pushed())},
      {"owed tracks", absl::StrCat(s.owed_tracks())},
      {"link", l.peer().empty() ? l.state() : absl::StrCat(l.state(), " (peer ", l.peer(), ")")},
  };
  for (const v1::GroupStatus& g : s.groups()) {
    rows.insert(rows.begin() + 4, {"rdf group", GroupLine(g)});
  }
  for (const v1::BackingStoreFailure& f : s.failed_backing_stores()) {
    rows.push_back({absl::StrCat("  ", f.volume()),
                    absl::StrFormat("%s failed: %s (errno %d), %d attempts over %.1f s; %d "
                                    "write-pending tracks held in cache",
                                    f.op(), f.error(), f.error_number(), f.failures(),
                                    f.seconds_failed(), f.tracks_waiting())});
  }
  if (l.state() != "none") {
    rows.push_back({"  records", absl::StrCat("shipped ", l.records_shipped(), ", acked ",
                                              l.records_acked(), ", refused ", l.records_refused(),
                                              ", bytes ", l.bytes_shipped())});
    rows.push_back(
        {"  in flight", absl::StrCat(l.in_flight(), " (peak ", l.in_flight_peak(), ")")});
    rows.push_back({"  ack timeouts",
                    absl::StrCat(l.ack_timeouts(), " (heartbeat ", l.heartbeat_timeouts(), ")")});
    rows.push_back({"  connects", absl::StrCat(l.connects(), ", link losses ", l.link_losses(),
                                               ", policy ", l.policy())});
    rows.push_back(
        {"  resync", absl::StrCat(l.resyncing() ? "running, " : "idle, ", l.resync_pending(),
                                  " tracks pending, ", l.tracks_resynced(), " resent since start, ",
                                  l.records_degraded(), " records degraded")});
    if (l.resyncing() && l.resync_tracks_per_second() > 0) {
      rows.push_back({"  resync rate",
                      absl::StrFormat("%.0f tracks/s, about %.1f s to go",
                                      l.resync_tracks_per_second(), l.resync_seconds_left())});
    }
    rows.push_back({"  mirror applied", absl::StrCat("sequence ", l.mirror_applied_sequence())});
    if (l.emulation_out() != "off" || l.emulation_back() != "off") {
      rows.push_back(
          {"  emulated", absl::StrCat("out ", l.emulation_out(), "; back ", l.emulation_back(),
                                      "; ", l.messages_lost(), " messages lost")});
    }
  }
  if (s.has_cycles()) AsyncRows(s.cycles(), s.role() == "primary", rows);
  rows.push_back({"streams cancelled", absl::StrCat(s.writes_cancelled())});
  rows.push_back({"records applied", absl::StrCat(s.records_applied(), " (applied sequence ",
                                                  s.applied_sequence(), ")")});
  for (const v1::NbdStatus& n : s.nbd()) {
    rows.push_back({absl::StrCat("nbd ", n.host_adaptor()),
                    absl::StrCat(n.connections_open(), " open; accepted ", n.connections_accepted(),
                                 ", refused ", n.connections_refused(), ", protocol errors ",
                                 n.protocol_errors(), ", writes dropped ", n.writes_dropped())});
  }
  rows.push_back(
      {"security",
       absl::StrCat(s.admin_token_required() ? "admin token required" : "NO admin token", ", ",
                    s.peer_secret_configured() ? "peer secret set" : "NO peer secret",
                    "; refused: admin ", s.admin_calls_refused(), ", peer ",
                    s.peer_calls_refused())});
  for (auto& row : rows) row[0] += ":";
  std::string out = FormatTable(rows, {});
  absl::StrAppend(&out, "holding pens (", s.pens_size(),
                  s.pens_size() == 1 ? " host adaptor):\n" : " host adaptors):\n", Pens(s));
  return out;
}

}  // namespace simarray::ctl
