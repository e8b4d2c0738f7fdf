// The call helpers of daemon_process.h ("calls"): writes, reads, admin calls and simarrayctl
// runs against a started Daemon.
#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "daemon_process.h"
#include "simarray/base/crc32c.h"
#include "simarray/rpc/rpc.h"

namespace simarray::testing {
namespace {

std::chrono::system_clock::time_point Deadline(int seconds = 30) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

}  // namespace

std::string Pattern(size_t length, uint32_t seed) {
  std::string out(length, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < length; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<char>(x);
  }
  return out;
}

uint32_t Crc(const std::string& data) {
  return Crc32c({reinterpret_cast<const uint8_t*>(data.data()), data.size()});
}

WriteOutcome WriteWithCrc(v1::HostService::Stub& host, const std::string& volume, uint64_t offset,
                          const std::string& data, uint32_t crc) {
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::WriteRequest request;
  request.set_volume(volume);
  request.set_offset(offset);
  request.set_data(data);
  request.set_crc32c(crc);
  WriteOutcome out;
  out.status = host.Write(&context, request, &out.reply);
  return out;
}

WriteOutcome Write(v1::HostService::Stub& host, const std::string& volume, uint64_t offset,
                   const std::string& data) {
  return WriteWithCrc(host, volume, offset, data, Crc(data));
}

WriteOutcome StreamWrite(v1::HostService::Stub& host, const std::string& volume, uint64_t offset,
                         const std::string& data, size_t chunk, int64_t declared) {
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  WriteOutcome out;
  auto writer = host.WriteStream(&context, &out.reply);
  v1::WriteStreamRequest header;
  header.mutable_header()->set_volume(volume);
  header.mutable_header()->set_offset(offset);
  header.mutable_header()->set_length(declared >= 0 ? declared : data.size());
  header.mutable_header()->set_crc32c(Crc(data));
  writer->Write(header);
  for (size_t pos = 0; pos < data.size(); pos += chunk) {
    v1::WriteStreamRequest m;
    m.set_chunk(data.substr(pos, chunk));
    if (!writer->Write(m)) break;
  }
  writer->WritesDone();
  out.status = writer->Finish();
  return out;
}

std::string Read(v1::HostService::Stub& host, const std::string& volume, uint64_t offset,
                 uint64_t length) {
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1::ReadRequest request;
  request.set_volume(volume);
  request.set_offset(offset);
  request.set_length(length);
  v1::ReadReply reply;
  grpc::Status s = host.Read(&context, request, &reply);
  INFO(s.error_message());
  REQUIRE(s.ok());
  REQUIRE(reply.crc32c() == Crc(reply.data()));
  return reply.data();
}

v1::CheckConsistencyReply CheckConsistency(Daemon& primary, const std::string& volume, bool repair,
                                           uint32_t wait_ms) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(120));
  primary.Authorize(context);
  v1::CheckConsistencyRequest request;
  request.set_volume(volume);
  request.set_repair(repair);
  request.set_wait_ms(wait_ms);
  v1::CheckConsistencyReply reply;
  grpc::Status s = primary.admin().CheckConsistency(&context, request, &reply);
  INFO(s.error_message());
  REQUIRE(s.ok());
  return reply;
}

bool Eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

void MakeTestCerts(const std::string& dir, const std::vector<std::string>& names,
                   const std::string& ca_name) {
  std::filesystem::create_directories(dir);
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::ofstream(dir + "/san.ext") << "subjectAltName=IP:127.0.0.1\n";
  std::string script = "(cd '" + dir + "' && openssl req -x509" + ec + " -keyout " + ca_name +
                       ".key -out " + ca_name + ".crt -days 1 -subj /CN=" + ca_name;
  for (const std::string& name : names) {
    script += " && openssl req" + ec + " -keyout " + name + ".key -out " + name +
              ".csr -subj /CN=" + name + " && openssl x509 -req -in " + name + ".csr -CA " +
              ca_name + ".crt -CAkey " + ca_name + ".key -CAcreateserial -days 1 -out " + name +
              ".crt -extfile san.ext";
  }
  script += ") >/dev/null 2>&1";
  REQUIRE(std::system(script.c_str()) == 0);
}

CtlResult Ctl(const std::string& args) {
  const std::string command = std::string(SIMARRAYCTL_PATH) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
  int status = pclose(pipe);
  return CtlResult{WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

const v1::PenStatus& Pen(const v1::StatusReply& status, int index) {
  REQUIRE(status.pens_size() > index);
  return status.pens(index);
}

}  // namespace simarray::testing

namespace simarray::testing {

void SuspendLink(Daemon& primary, const std::string& group) {
  grpc::ClientContext context;
  primary.Authorize(context);
  v1::SuspendLinkRequest request;
  request.set_group(group);
  v1::SuspendLinkReply reply;
  REQUIRE(primary.admin().SuspendLink(&context, request, &reply).ok());
}

void ResumeLink(Daemon& primary, const std::string& group) {
  grpc::ClientContext context;
  primary.Authorize(context);
  v1::ResumeLinkRequest request;
  request.set_group(group);
  v1::ResumeLinkReply reply;
  REQUIRE(primary.admin().ResumeLink(&context, request, &reply).ok());
}

v1::ListGroupsReply Groups(Daemon& d) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(10));
  d.Authorize(context);
  v1::ListGroupsReply reply;
  grpc::Status status = d.admin().ListGroups(&context, v1::ListGroupsRequest(), &reply);
  REQUIRE(status.ok());
  return reply;
}

std::string GroupStateOf(Daemon& d, const std::string& group) {
  const v1::ListGroupsReply reply = Groups(d);
  for (const v1::GroupStatus& g : reply.groups()) {
    if (g.name() == group) return g.state();
  }
  return "";
}

grpc::Status CreateVolumeIn(Daemon& d, const std::string& name, uint64_t size,
                            const std::string& group, bool local, v1::VolumeInfo* info) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(10));
  d.Authorize(context);
  v1::CreateVolumeRequest request;
  request.set_name(name);
  request.set_size(size);
  request.set_group(group);
  request.set_local(local);
  v1::VolumeInfo reply;
  return d.admin().CreateVolume(&context, request, info != nullptr ? info : &reply);
}

std::map<std::string, v1::VolumeInfo> VolumesOf(Daemon& d) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(10));
  d.Authorize(context);
  v1::ListVolumesReply reply;
  REQUIRE(d.admin().ListVolumes(&context, v1::ListVolumesRequest(), &reply).ok());
  std::map<std::string, v1::VolumeInfo> out;
  for (const v1::VolumeInfo& v : reply.volumes()) out[v.name()] = v;
  return out;
}

void InjectFault(Daemon& daemon, v1::FaultKind kind, uint32_t duration_ms,
                 const std::string& volume, uint64_t track) {
  grpc::ClientContext context;
  daemon.Authorize(context);
  v1::InjectFaultRequest request;
  request.set_kind(kind);
  request.set_duration_ms(duration_ms);
  request.set_volume(volume);
  request.set_track(track);
  v1::InjectFaultReply reply;
  grpc::Status s = daemon.admin().InjectFault(&context, request, &reply);
  INFO(s.error_message());
  REQUIRE(s.ok());
}

void DiskFault(Daemon& d, v1::FaultKind kind, const std::string& volume, const std::string& op,
               uint32_t count) {
  grpc::ClientContext context;
  d.Authorize(context);
  v1::InjectFaultRequest request;
  request.set_kind(kind);
  request.set_volume(volume);
  request.set_op(op);
  request.set_count(count);
  v1::InjectFaultReply reply;
  grpc::Status s = d.admin().InjectFault(&context, request, &reply);
  INFO(s.error_message());
  REQUIRE(s.ok());
}

uint32_t VolumeId(Daemon& d, const std::string& volume) {
  grpc::ClientContext context;
  d.Authorize(context);
  v1::ListVolumesReply list;
  REQUIRE(d.admin().ListVolumes(&context, v1::ListVolumesRequest(), &list).ok());
  for (const auto& v : list.volumes()) {
    if (v.name() == volume) return v.id();
  }
  FAIL("no volume " << volume);
  return 0;
}

std::string BackingFile(Daemon& d, uint32_t id, uint64_t length) {
  std::string bytes = ReadFile(d.data_dir() + "/vol-" + std::to_string(id) + ".img");
  bytes.resize(length, '\0');  // a sparse file may end before its last hole
  return bytes;
}

v1::RoleChangeReply RoleCall(Daemon& d, const std::string& what, bool force,
                             grpc::StatusCode expect) {
  return GroupRoleCall(d, what, "", expect, force);
}

v1::RoleChangeReply GroupRoleCall(Daemon& d, const std::string& what, const std::string& group,
                                  grpc::StatusCode expect, bool force) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
  d.Authorize(context);
  v1::RoleChangeRequest request;
  request.set_force(force);
  request.set_group(group);
  v1::RoleChangeReply reply;
  v1::AdminService::Stub& admin = d.admin();
  grpc::Status s = what == "failover"    ? admin.Failover(&context, request, &reply)
                   : what == "failback"  ? admin.Failback(&context, request, &reply)
                   : what == "swap"      ? admin.Swap(&context, request, &reply)
                   : what == "split"     ? admin.Split(&context, request, &reply)
                   : what == "establish" ? admin.Establish(&context, request, &reply)
                                         : admin.Restore(&context, request, &reply);
  INFO(what << ": " << s.error_message());
  REQUIRE(s.error_code() == expect);
  return reply;
}

bool WaitPairState(Daemon& primary, const std::string& state, std::chrono::milliseconds limit) {
  return Eventually([&] { return primary.Status().pair_state() == state; }, limit);
}

}  // namespace simarray::testing
