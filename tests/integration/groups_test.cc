// RDF groups (docs/groups.md): a pair configured with [[rdf_group]], the group's state files
// in its own directory, SRDF state names per group and per volume pair with the rollup,
// ListGroups, `simarrayctl group list`, /metrics, and the config's errors.
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>

#include "daemon_process.h"
#include "raw_socket.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

// The one group's state and each volume pair's, by volume.
struct States {
  std::string group;
  std::map<std::string, std::string> volumes;
  std::map<std::string, uint64_t> owed;
};
States StatesOf(Daemon& d) {
  const v1::ListGroupsReply reply = Groups(d);
  REQUIRE(reply.groups_size() == 1);
  States out;
  out.group = reply.groups(0).state();
  for (const v1::VolumePair& v : reply.groups(0).volumes()) {
    out.volumes[v.volume()] = v.state();
    out.owed[v.volume()] = v.owed_tracks();
  }
  return out;
}

grpc::Status PairVolumeCall(Daemon& d, const std::string& name, v1::PairVolumeReply* reply) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  d.Authorize(context);
  v1::PairVolumeRequest request;
  request.set_name(name);
  return d.admin().PairVolume(&context, request, reply);
}

bool HasOwedBitmap(const std::string& dir) {
  if (!std::filesystem::is_directory(dir)) return false;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("owed-", 0) == 0) return true;
  }
  return false;
}

TEST_CASE("rdf groups: a pair configured with an rdf_group table mirrors and reports SRDF states",
          "[integration][groups]") {
  DaemonOptions po;
  po.group = "east";
  DaemonOptions mo;
  mo.group = "east";
  Pair pair(po, mo);
  pair.CreateVolume("v1", 16 * kTrack);
  pair.CreateVolume("v2", 16 * kTrack);
  const std::string data = Pattern(3 * kTrack, 41);
  REQUIRE(Write(pair.primary->host(), "v1", kTrack, data).status.ok());
  CHECK(Read(pair.mirror->host(), "v1", kTrack, data.size()) == data);

  const v1::ListGroupsReply primary = Groups(*pair.primary);
  REQUIRE(primary.groups_size() == 1);
  const v1::GroupStatus& g = primary.groups(0);
  CHECK(g.name() == "east");
  CHECK(g.number() == 7);
  CHECK(g.role() == "R1");
  CHECK(g.mode() == "sync");
  CHECK(g.state() == "Synchronized");
  CHECK(g.link() == "up");
  CHECK(g.peer() == pair.mirror->peer_address());
  REQUIRE(g.volumes_size() == 2);
  const v1::ListGroupsReply mirror = Groups(*pair.mirror);
  REQUIRE(mirror.groups_size() == 1);
  CHECK(mirror.groups(0).role() == "R2");
  CHECK(mirror.groups(0).state() == "Synchronized");
  // The mirror learned its source's address from the Hello.
  CHECK(mirror.groups(0).peer() == pair.primary->peer_address());
  // Status carries the same group.
  const v1::StatusReply status = pair.primary->Status();
  REQUIRE(status.groups_size() == 1);
  CHECK(status.groups(0).state() == "Synchronized");

  // A group other than "default" keeps its state files in data_dir/groups/NAME.
  CHECK(HasOwedBitmap(pair.primary->data_dir() + "/groups/east"));
  CHECK_FALSE(HasOwedBitmap(pair.primary->data_dir()));
  CHECK(std::filesystem::exists(pair.mirror->data_dir() + "/groups/east/peer.address"));
  CHECK_FALSE(std::filesystem::exists(pair.mirror->data_dir() + "/peer.address"));

  // Suspended: the writes' tracks are owed, per volume.
  SuspendLink(*pair.primary);
  REQUIRE(Write(pair.primary->host(), "v1", 0, Pattern(2 * kTrack, 42)).status.ok());
  States suspended = StatesOf(*pair.primary);
  CHECK(suspended.group == "Suspended");
  CHECK(suspended.volumes["v1"] == "Suspended");
  CHECK(suspended.owed["v1"] == 2);
  CHECK(suspended.owed["v2"] == 0);
  // The mirror sees its stream end a moment after the primary tore it down.
  CHECK(Eventually([&] { return StatesOf(*pair.mirror).group == "Partitioned"; }));

  CtlResult listed = Ctl("--admin " + pair.primary->admin_address() + " group list");
  INFO(listed.out);
  CHECK(listed.code == 0);
  CHECK_THAT(listed.out, Catch::Contains("east") && Catch::Contains("R1") &&
                             Catch::Contains("Suspended") && Catch::Contains("v2"));
  CtlResult watched = Ctl("--admin " + pair.primary->admin_address() + " watch --count 1");
  INFO(watched.out);
  CHECK_THAT(watched.out, Catch::Contains("group:east=Suspended"));

  ResumeLink(*pair.primary);
  CHECK(Eventually([&] { return StatesOf(*pair.primary).group == "Synchronized"; }));
  CHECK(CheckConsistency(*pair.primary, "v1").consistent());

  // The groups survive a restart of both sides, state files and all.
  pair.primary->Kill();
  pair.mirror->Kill();
  pair.mirror->Start();
  pair.primary->Start();
  CHECK(Eventually([&] { return StatesOf(*pair.primary).group == "Synchronized"; }));
  CHECK(Eventually([&] { return StatesOf(*pair.mirror).group == "Synchronized"; }));
}

TEST_CASE("rdf groups: while a group resyncs a volume that owes nothing is Synchronized",
          "[integration][groups]") {
  DaemonOptions po;
  po.metrics = true;
  Pair pair(po);
  pair.CreateVolume("busy", 64 * kTrack);
  pair.CreateVolume("idle", 4 * kTrack);
  // The single-peer form is the group "default", number 1.
  const v1::ListGroupsReply groups = Groups(*pair.primary);
  REQUIRE(groups.groups_size() == 1);
  CHECK(groups.groups(0).name() == "default");
  CHECK(groups.groups(0).number() == 1);

  SuspendLink(*pair.primary);
  for (uint64_t t = 0; t < 64; t += 8) {
    REQUIRE(Write(pair.primary->host(), "busy", t * kTrack, Pattern(8 * kTrack, t)).status.ok());
  }
  // Slow records keep the resync running long enough to be seen.
  InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, 300);
  ResumeLink(*pair.primary);
  States during;
  CHECK(Eventually([&] {
    during = StatesOf(*pair.primary);
    return during.group == "SyncInProg";
  }));
  CHECK(during.volumes["busy"] == "SyncInProg");
  CHECK(during.volumes["idle"] == "Synchronized");
  // /metrics says the same, by SRDF's names.
  const std::string metrics = HttpGet(pair.primary->metrics_address(), "/metrics").body;
  CHECK_THAT(metrics,
             Catch::Contains("simarray_volume_pair_state{group=\"default\",volume=\"idle\","
                             "state=\"Synchronized\"} 1"));
  InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, 0);
  CHECK(Eventually([&] { return StatesOf(*pair.primary).group == "Synchronized"; }));
  const std::string after = HttpGet(pair.primary->metrics_address(), "/metrics").body;
  CHECK_THAT(after,
             Catch::Contains("simarray_group_state{group=\"default\",state=\"Synchronized\"} 1"));
  CHECK_THAT(after,
             Catch::Contains("simarray_group_state{group=\"default\",state=\"SyncInProg\"} 0"));
  CHECK(CheckConsistency(*pair.primary, "busy").consistent());
}

TEST_CASE("rdf groups: a primary without a peer has none", "[integration][groups]") {
  TempDir dir;
  Daemon alone(dir.path() + "/alone", DaemonOptions{});
  alone.Start();
  CHECK(Groups(alone).groups_size() == 0);
  CtlResult listed = Ctl("--admin " + alone.admin_address() + " group list");
  CHECK(listed.code == 0);
  CHECK_THAT(listed.out, Catch::Contains("no RDF groups"));
}

TEST_CASE("rdf groups: a local volume is never mirrored and is writable on either side",
          "[integration][groups]") {
  Pair pair;
  pair.CreateVolume("shared", 8 * kTrack);
  v1::VolumeInfo scratch;
  REQUIRE(CreateVolumeIn(*pair.primary, "scratch", 8 * kTrack, "", true, &scratch).ok());
  CHECK(scratch.group().empty());
  CHECK_FALSE(scratch.paired());
  CHECK(VolumesOf(*pair.primary)["shared"].group() == "default");
  CHECK(VolumesOf(*pair.mirror).count("scratch") == 0);
  CHECK(CreateVolumeIn(*pair.primary, "both", kTrack, "default", true).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(CreateVolumeIn(*pair.primary, "nowhere", kTrack, "west", false).error_code() ==
        grpc::StatusCode::NOT_FOUND);

  // A local write is committed here only: not mirrored, nothing owed.
  SuspendLink(*pair.primary);
  for (uint64_t t : {0, 3, 5}) {
    WriteOutcome w = Write(pair.primary->host(), "scratch", t * kTrack + 512, Pattern(1024, t));
    REQUIRE(w.status.ok());
    CHECK_FALSE(w.reply.mirrored());
  }
  CHECK(pair.primary->Status().owed_tracks() == 0);
  REQUIRE(Write(pair.primary->host(), "shared", 0, Pattern(kTrack, 9)).status.ok());
  CHECK(pair.primary->Status().owed_tracks() == 1);
  ResumeLink(*pair.primary);
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  WriteOutcome synced = Write(pair.primary->host(), "scratch", 0, Pattern(512, 10));
  REQUIRE(synced.status.ok());
  CHECK_FALSE(synced.reply.mirrored());
  CHECK(Write(pair.primary->host(), "shared", kTrack, Pattern(512, 11)).reply.mirrored());
  // Only group volumes are pairs of the group; a local one has no twin to compare with.
  const States states = StatesOf(*pair.primary);
  CHECK(states.volumes.size() == 1);
  CHECK(states.volumes.count("shared") == 1);
  grpc::ClientContext context;
  v1::CheckConsistencyRequest check;
  check.set_volume("scratch");
  v1::CheckConsistencyReply checked;
  CHECK(pair.primary->admin().CheckConsistency(&context, check, &checked).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);

  // The target takes host writes on its own local volumes, not on its group's.
  v1::VolumeInfo notes;
  REQUIRE(CreateVolumeIn(*pair.mirror, "notes", 4 * kTrack, "", true, &notes).ok());
  CHECK(notes.id() >= (1u << 30));  // never an id its source gives a group volume
  CHECK(Write(pair.mirror->host(), "notes", 0, Pattern(kTrack, 12)).status.ok());
  CHECK(Read(pair.mirror->host(), "notes", 0, kTrack) == Pattern(kTrack, 12));
  WriteOutcome refused = Write(pair.mirror->host(), "shared", 0, Pattern(512, 13));
  CHECK(refused.status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(refused.status.error_message(),
             Catch::Contains("shared is the target (R2) of RDF group default"));
  grpc::Status made_here = CreateVolumeIn(*pair.mirror, "elsewhere", kTrack, "", false);
  CHECK(made_here.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(made_here.error_message(), Catch::Contains("target (R2) of RDF group default"));
  v1::PairVolumeReply on_target;
  CHECK(PairVolumeCall(*pair.mirror, "notes", &on_target).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);

  // volume pair: the twin, then an initial copy of exactly the tracks that hold data.
  v1::PairVolumeReply paired;
  REQUIRE(PairVolumeCall(*pair.primary, "scratch", &paired).ok());
  CHECK(paired.volume().group() == "default");
  CHECK(paired.volume().paired());
  CHECK(paired.tracks_to_copy() == 3);
  CHECK(VolumesOf(*pair.mirror).count("scratch") == 1);
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  CHECK(CheckConsistency(*pair.primary, "scratch").consistent());
  CHECK(Read(pair.mirror->host(), "scratch", 3 * kTrack + 512, 1024) == Pattern(1024, 3));
  // From now on its writes are mirrored; pairing again is nothing to do.
  CHECK(Write(pair.primary->host(), "scratch", 7 * kTrack, Pattern(512, 14)).reply.mirrored());
  v1::PairVolumeReply again;
  REQUIRE(PairVolumeCall(*pair.primary, "scratch", &again).ok());
  CHECK(again.tracks_to_copy() == 0);

  // Membership survives a restart of both sides.
  pair.primary->Kill();
  pair.mirror->Kill();
  pair.mirror->Start();
  pair.primary->Start();
  CHECK(VolumesOf(*pair.primary)["scratch"].group() == "default");
  CHECK(VolumesOf(*pair.mirror)["notes"].group().empty());
  CHECK(Write(pair.mirror->host(), "notes", kTrack, Pattern(512, 15)).status.ok());
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  CHECK(Write(pair.primary->host(), "scratch", 0, Pattern(512, 16)).reply.mirrored());
}

TEST_CASE("rdf groups: a peer whose group has another name refuses the link",
          "[integration][groups]") {
  TempDir dir;
  Daemon mirror(dir.path() + "/mirror", DaemonOptions{.role = "mirror"});
  mirror.Start();
  DaemonOptions po;
  po.group = "east";
  po.peer_address = mirror.peer_address();
  Daemon primary(dir.path() + "/primary", po);
  primary.Start();
  CHECK(Eventually([&] {
    return ReadFile(primary.log_path()).find("this array's group is default") != std::string::npos;
  }));
  CHECK(primary.Status().link().state() != "up");
  CHECK(Groups(primary).groups(0).state() == "Partitioned");
}

TEST_CASE("rdf groups: config errors name the key and the reason", "[integration][groups]") {
  TempDir dir;
  const std::string base = "name = \"p\"\ndata_dir = \"" + dir.path() + "/data\"\n";
  const std::string group =
      "[[rdf_group]]\nname = \"east\"\nnumber = 3\npeer.address = \"127.0.0.1:1\"\n";
  struct Case {
    std::string text;
    std::string expected;
  };
  const Case cases[] = {
      {"[[rdf_group]]\nname = \"east\"\nrole = \"R2\"\n[[rdf_group]]\nname = \"west\"\nrole = "
       "\"R2\"\n",
       "key rdf_group[1].role: expected at most one group where this array is the target (R2)"},
      {"[[rdf_group]]\nname = \"east\"\nrole = \"R3\"\n",
       "key rdf_group[0].role: expected \"R1\" or \"R2\", got \"R3\""},
      {"[[rdf_group]]\nname = \"east\"\npeer.adress = \"127.0.0.1:1\"\n",
       "key rdf_group[0].peer.adress: unknown key"},
      {"[[rdf_group]]\nname = \"east\"\nmodee = \"sync\"\n", "key rdf_group[0].modee: unknown key"},
      {"mode = \"async\"\n" + group, "key mode: given at the top level and [[rdf_group]]"},
      {group + "[[rdf_group]]\nname = \"west\"\nnumber = 3\n",
       "key rdf_group[1].number: group west has number 3, which group east has too"},
      {"[[rdf_group]]\nname = \"east\"\nnumber = 251\npeer.address = \"127.0.0.1:1\"\n",
       "key rdf_group[0].number: expected 1 to 250, got 251"},
      {"[[rdf_group]]\nname = \"East!\"\npeer.address = \"127.0.0.1:1\"\n",
       "key rdf_group[0].name: expected [a-z0-9_-]{1,32}, got \"East!\""},
      {"[[rdf_group]]\nname = \"east\"\nmode = \"semi\"\npeer.address = \"127.0.0.1:1\"\n",
       "key rdf_group[0].mode: expected \"sync\" or \"async\", got \"semi\""},
      {"[[rdf_group]]\nname = \"east\"\n",
       "key rdf_group[0].peer.address: required where this array is the source"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    ExitResult r = RunDaemonExpectingExit(dir.path(), base + c.text);
    CHECK(r.code != 0);
    CHECK_THAT(r.stderr_text, Catch::Contains(c.expected));
  }
}

}  // namespace
}  // namespace simarray::testing
