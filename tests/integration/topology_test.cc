// Several RDF groups per array (docs/groups.md, "Topologies"): two-way (each array the source
// of one group and the target of the other), concurrent (one source, a sync and an async
// target) and cascaded (sync to a middle array that ships on async), with real daemons on
// loopback.
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <thread>

#include "async_pair.h"
#include "daemon_process.h"
#include "dependent_writes.h"

namespace simarray::testing {
namespace {

grpc::Status PairVolumeIn(Daemon& d, const std::string& name, const std::string& group,
                          v1::PairVolumeReply* reply = nullptr) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  d.Authorize(context);
  v1::PairVolumeRequest request;
  request.set_name(name);
  request.set_group(group);
  v1::PairVolumeReply ignored;
  return d.admin().PairVolume(&context, request, reply != nullptr ? reply : &ignored);
}

// Three arrays A, B and C in one directory.
struct ThreeSites {
  ThreeSites() {
    a = std::make_unique<Daemon>(dir.path() + "/a", DaemonOptions{});
    b = std::make_unique<Daemon>(dir.path() + "/b", DaemonOptions{});
    c = std::make_unique<Daemon>(dir.path() + "/c", DaemonOptions{});
  }
  TempDir dir;
  std::unique_ptr<Daemon> a, b, c;
};

// Volumes `names` of `source` read the same on `other`.
bool SameVolumes(Daemon& source, Daemon& other) {
  for (const std::string& name : {"dwa", "dwb"}) {
    const uint64_t size = DependentWriteChecker::kVolumeSize;
    if (Read(source.host(), name, 0, size) != Read(other.host(), name, 0, size)) return false;
  }
  return true;
}

// Takes consistent snapshots of the checker's async target while its writers run, about
// `count` of them; how many it took.
int TakeSnapshots(DependentWriteChecker& checker, int count) {
  int taken = 0;
  for (int i = 0; i < 40 * count && taken < count; ++i) {
    if (checker.TakeSnapshot("while writing")) ++taken;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return taken;
}

// Two arrays that protect each other: A is the source (R1) of g1 to B, B the source of g2 to
// A. Each one's first group is the one it is the source of, so both daemons say "primary".
struct TwoWay {
  TwoWay() {
    a = std::make_unique<Daemon>(dir.path() + "/a", DaemonOptions{});
    b = std::make_unique<Daemon>(dir.path() + "/b", DaemonOptions{});
    const std::string a_peer = a->PickPeerAddress();
    const std::string b_peer = b->PickPeerAddress();
    a->options().groups = {{.name = "g1", .number = 1, .role = "R1", .peer_address = b_peer},
                           {.name = "g2", .number = 2, .role = "R2"}};
    b->options().groups = {{.name = "g2", .number = 2, .role = "R1", .peer_address = a_peer},
                           {.name = "g1", .number = 1, .role = "R2"}};
    a->Start();
    b->Start();
  }
  TempDir dir;
  std::unique_ptr<Daemon> a;
  std::unique_ptr<Daemon> b;
};

TEST_CASE("topologies: two-way, each array writes its own R1 volumes and refuses its R2 ones",
          "[integration][groups][topology]") {
  TwoWay t;
  v1::VolumeInfo on_a, on_b;
  REQUIRE(CreateVolumeIn(*t.a, "from-a", 4 * kTrack, "g1", false, &on_a).ok());
  REQUIRE(CreateVolumeIn(*t.b, "from-b", 4 * kTrack, "g2", false, &on_b).ok());
  // Each group's volumes take ids from its number's range: the twins never collide.
  CHECK(on_a.id() == 1);
  CHECK(on_b.id() == (1u << 20));
  REQUIRE(Eventually([&] {
    return GroupStateOf(*t.a, "g1") == "Synchronized" && GroupStateOf(*t.b, "g2") == "Synchronized";
  }));

  const std::string da = Pattern(3 * kTrack / 2, 1);
  const std::string db = Pattern(kTrack, 2);
  const WriteOutcome wa = Write(t.a->host(), "from-a", kTrack / 2, da);
  const WriteOutcome wb = Write(t.b->host(), "from-b", 0, db);
  REQUIRE(wa.status.ok());
  REQUIRE(wb.status.ok());
  CHECK(wa.reply.mirrored());  // sync: acked by the other array
  CHECK(wb.reply.mirrored());
  // A sync ack means the twin has it: read it on the other side at once.
  CHECK(Read(t.b->host(), "from-a", kTrack / 2, da.size()) == da);
  CHECK(Read(t.a->host(), "from-b", 0, db.size()) == db);

  // The R2 side of each group refuses host writes, naming the group.
  const WriteOutcome to_r2_on_a = Write(t.a->host(), "from-b", 0, Pattern(512, 3));
  const WriteOutcome to_r2_on_b = Write(t.b->host(), "from-a", 0, Pattern(512, 4));
  CHECK(to_r2_on_a.status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(to_r2_on_a.status.error_message(), Catch::Contains("target (R2) of RDF group g2"));
  CHECK(to_r2_on_b.status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(to_r2_on_b.status.error_message(), Catch::Contains("target (R2) of RDF group g1"));
  // Nor does a group volume get created on its R2 side.
  CHECK(CreateVolumeIn(*t.a, "wrong-side", kTrack, "g2", false).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);

  // Each array lists both groups, its side of each, and their states.
  for (Daemon* d : {t.a.get(), t.b.get()}) {
    const v1::ListGroupsReply groups = Groups(*d);
    REQUIRE(groups.groups_size() == 2);
    for (const v1::GroupStatus& g : groups.groups()) {
      INFO(d->dir() << " group " << g.name());
      const bool source = (d == t.a.get()) == (g.name() == "g1");
      CHECK(g.role() == (source ? "R1" : "R2"));
      CHECK(g.state() == "Synchronized");
    }
  }

  // kill -9 of B and a restart: its sides stay (g2 R1 in its group directory, g1 R2 in the
  // region's header), and both directions mirror again.
  t.b->Kill();
  t.b->Start();
  REQUIRE(Eventually([&] {
    return GroupStateOf(*t.a, "g1") == "Synchronized" && GroupStateOf(*t.b, "g2") == "Synchronized";
  }));
  const std::string db2 = Pattern(kTrack, 5);
  const std::string da2 = Pattern(kTrack, 6);
  CHECK(Write(t.b->host(), "from-b", kTrack, db2).reply.mirrored());
  CHECK(Write(t.a->host(), "from-a", 3 * kTrack, da2).reply.mirrored());
  CHECK(Read(t.a->host(), "from-b", kTrack, kTrack) == db2);
  CHECK(Read(t.b->host(), "from-a", 3 * kTrack, kTrack) == da2);
  CHECK(Read(t.b->host(), "from-a", kTrack / 2, da.size()) == da);
  CHECK(Write(t.b->host(), "from-a", 0, Pattern(512, 7)).status.error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_CASE("topologies: concurrent, one write reaches a sync and an async target or neither",
          "[integration][groups][topology]") {
  ThreeSites t;
  t.a->options().groups = {
      {.name = "near", .number = 1, .role = "R1", .peer_address = t.b->PickPeerAddress()},
      {.name = "far",
       .number = 2,
       .role = "R1",
       .peer_address = t.c->PickPeerAddress(),
       .mode = "async",
       .cycle_ms = 200}};
  t.b->options().groups = {{.name = "near", .number = 1, .role = "R2"}};
  t.c->options().groups = {
      {.name = "far", .number = 2, .role = "R2", .mode = "async", .cycle_ms = 200}};
  t.c->Start();
  t.b->Start();
  t.a->Start();
  for (const std::string& name : {"dwa", "dwb", "probe"}) {
    REQUIRE(CreateVolumeIn(*t.a, name, DependentWriteChecker::kVolumeSize, "near", false).ok());
    REQUIRE(PairVolumeIn(*t.a, name, "far").ok());
  }
  CHECK(VolumesOf(*t.a)["dwa"].group() == "near,far");
  CHECK(VolumesOf(*t.b)["dwa"].group() == "near");
  CHECK(VolumesOf(*t.c)["dwa"].group() == "far");
  REQUIRE(Eventually([&] {
    return GroupStateOf(*t.a, "near") == "Synchronized" &&
           GroupStateOf(*t.a, "far") == "Consistent";
  }));

  // Stamped dependent writes to A, each acked by B (mirrored); C snapshotted at cycle
  // boundaries; and between snapshots, probes: at each sync ack, B has the write.
  DependentWriteChecker checker(*t.a, *t.c, /*mirrored=*/true);
  checker.StartWriters(2);
  std::mt19937 random(7);
  int probes = 0;
  for (int i = 0; i < 20; ++i) {
    const uint64_t offset = (random() % 16) * kTrack + (random() % 8) * kBlock;
    const std::string data = Pattern(kBlock, 100 + i);
    const WriteOutcome w = Write(t.a->host(), "probe", offset, data);
    REQUIRE(w.status.ok());
    CHECK(w.reply.mirrored());
    CHECK(Read(t.b->host(), "probe", offset, data.size()) == data);
    ++probes;
    checker.TakeSnapshot("between probes");
  }
  const int snapshots = TakeSnapshots(checker, 5);
  checker.StopWriters();
  CHECK(probes == 20);
  CHECK(snapshots + static_cast<int>(checker.snapshots().size()) > 0);
  CHECK(checker.writes() > 0);
  CHECK(checker.Verify() == "");
  // At the end C caught up: A, B and C hold the same.
  REQUIRE(MirrorCaughtUp(*t.a, *t.c));
  CHECK(SameVolumes(*t.a, *t.b));
  CHECK(SameVolumes(*t.a, *t.c));
  CHECK(Read(t.a->host(), "probe", 0, DependentWriteChecker::kVolumeSize) ==
        Read(t.c->host(), "probe", 0, DependentWriteChecker::kVolumeSize));

  // An invalid write reaches neither target, and the pen deleted its request once.
  const v1::PenStatus before = Pen(t.a->Status());
  const std::string old = Read(t.a->host(), "probe", 0, kBlock);
  InjectFault(*t.a, v1::FAULT_CORRUPT_NEXT_WRITE);
  const WriteOutcome bad = Write(t.a->host(), "probe", 0, Pattern(kBlock, 999));
  CHECK(bad.status.error_code() == grpc::StatusCode::DATA_LOSS);
  const v1::PenStatus after = Pen(t.a->Status());
  CHECK(after.requests_deleted() - before.requests_deleted() == 1);
  CHECK(after.invalid_writes().at("injected_corruption") == 1);
  REQUIRE(MirrorCaughtUp(*t.a, *t.c));
  CHECK(Read(t.a->host(), "probe", 0, kBlock) == old);
  CHECK(Read(t.b->host(), "probe", 0, kBlock) == old);
  CHECK(Read(t.c->host(), "probe", 0, kBlock) == old);
}

TEST_CASE("topologies: cascaded, the far target stays consistent whatever the middle does",
          "[integration][groups][topology]") {
  ThreeSites t;
  t.a->options().groups = {
      {.name = "hop1", .number = 1, .role = "R1", .peer_address = t.b->PickPeerAddress()}};
  t.b->options().groups = {{.name = "hop1", .number = 1, .role = "R2"},
                           {.name = "hop2",
                            .number = 2,
                            .role = "R1",
                            .peer_address = t.c->PickPeerAddress(),
                            .mode = "async",
                            .cycle_ms = 200}};
  t.c->options().groups = {
      {.name = "hop2", .number = 2, .role = "R2", .mode = "async", .cycle_ms = 200}};
  t.c->Start();
  t.b->Start();
  t.a->Start();
  for (const std::string& name : {"dwa", "dwb"}) {
    REQUIRE(CreateVolumeIn(*t.a, name, DependentWriteChecker::kVolumeSize, "hop1", false).ok());
    // The twin on B is an R21: the target of hop1 and the source of hop2.
    REQUIRE(Eventually([&] { return VolumesOf(*t.b).count(name) == 1; }));
    REQUIRE(PairVolumeIn(*t.b, name, "hop2").ok());
  }
  CHECK(VolumesOf(*t.b)["dwa"].group() == "hop1,hop2");
  CHECK(VolumesOf(*t.c)["dwa"].group() == "hop2");
  REQUIRE(Eventually([&] {
    return GroupStateOf(*t.a, "hop1") == "Synchronized" &&
           GroupStateOf(*t.b, "hop2") == "Consistent";
  }));
  // B is the target of hop1: hosts may not write the R21 there.
  CHECK(Write(t.b->host(), "dwa", 0, Pattern(512, 1)).status.error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);

  DependentWriteChecker checker(*t.a, *t.c, /*mirrored=*/std::nullopt);
  checker.StartWriters(2);
  TakeSnapshots(checker, 3);
  // B's outbound link dropped and resumed: C keeps its last cycle meanwhile.
  SuspendLink(*t.b, "hop2");
  checker.TakeSnapshot("hop2 suspended");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  checker.TakeSnapshot("hop2 suspended, later");
  ResumeLink(*t.b, "hop2");
  // C is a cycle boundary again once hop2's resync is done (on a loaded machine that can
  // take longer than the snapshots below try for).
  REQUIRE(Eventually([&] { return t.c->Status().cycles().mirror_consistent(); },
                     std::chrono::seconds(30)));
  TakeSnapshots(checker, 3);
  // kill -9 of B mid-workload: A's writes go on (hop1 degrades), and C keeps a consistent
  // image of what B had forwarded.
  t.b->Kill();
  CHECK(checker.TakeSnapshot("B killed"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // B back: A resyncs it while B resyncs C and ships on; C claims a consistent image only
  // when it has one.
  t.b->Start();
  TakeSnapshots(checker, 3);
  checker.StopWriters();
  CHECK(checker.writes() > 0);
  CHECK(checker.snapshots().size() >= 3);
  CHECK(checker.Verify() == "");
  // The cascade catches up: A = B = C.
  REQUIRE(Eventually([&] { return GroupStateOf(*t.a, "hop1") == "Synchronized"; },
                     std::chrono::seconds(60)));
  REQUIRE(Eventually([&] { return GroupStateOf(*t.b, "hop2") == "Consistent"; },
                     std::chrono::seconds(60)));
  CHECK(SameVolumes(*t.a, *t.b));
  CHECK(Eventually([&] { return SameVolumes(*t.a, *t.c); }, std::chrono::seconds(30)));
}

grpc::Status CreateGroupCall(Daemon& d, const std::string& name, uint32_t number,
                             const std::string& role, const std::string& peer,
                             const std::string& mode = "sync") {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  d.Authorize(context);
  v1::CreateGroupRequest request;
  request.set_name(name);
  request.set_number(number);
  request.set_role(role);
  request.set_peer_address(peer);
  request.set_mode(mode);
  v1::GroupStatus reply;
  return d.admin().CreateGroup(&context, request, &reply);
}

grpc::Status DeleteGroupCall(Daemon& d, const std::string& name) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  d.Authorize(context);
  v1::DeleteGroupRequest request;
  request.set_name(name);
  v1::DeleteGroupReply reply;
  return d.admin().DeleteGroup(&context, request, &reply);
}

TEST_CASE("topologies: a group made at run time mirrors, survives restarts and can be deleted",
          "[integration][groups][topology]") {
  ThreeSites t;
  t.a->options().groups = {
      {.name = "base", .number = 1, .role = "R1", .peer_address = t.b->PickPeerAddress()}};
  t.b->options().groups = {{.name = "base", .number = 1, .role = "R2"}};
  t.b->Start();
  t.a->Start();
  // The way back, made at run time: B the source of "back" to A.
  REQUIRE(CreateGroupCall(*t.a, "back", 5, "R2", "").ok());
  REQUIRE(CreateGroupCall(*t.b, "back", 5, "R1", t.a->peer_address()).ok());
  // Refused: a name or number in use, a bad setting (named), a second R2 group.
  CHECK(CreateGroupCall(*t.b, "other", 5, "R1", t.a->peer_address()).error_code() ==
        grpc::StatusCode::ALREADY_EXISTS);
  const grpc::Status bad = CreateGroupCall(*t.b, "other", 6, "R1", t.a->peer_address(), "semi");
  CHECK(bad.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(bad.error_message(), Catch::Contains("key mode"));
  CHECK(CreateGroupCall(*t.b, "other", 6, "R2", "").error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);

  REQUIRE(CreateVolumeIn(*t.b, "rt", 4 * kTrack, "back", false).ok());
  REQUIRE(Eventually([&] { return GroupStateOf(*t.b, "back") == "Synchronized"; }));
  const std::string data = Pattern(kTrack, 11);
  const WriteOutcome w = Write(t.b->host(), "rt", kTrack, data);
  REQUIRE(w.status.ok());
  CHECK(w.reply.mirrored());
  CHECK(Read(t.a->host(), "rt", kTrack, kTrack) == data);
  CHECK(GroupStateOf(*t.a, "back") == "Synchronized");

  // kill -9 of both: the group is kept (data_dir/groups.toml) with its sides.
  t.a->Kill();
  t.b->Kill();
  t.b->Start();
  t.a->Start();
  REQUIRE(Eventually([&] { return GroupStateOf(*t.b, "back") == "Synchronized"; }));
  const std::string data2 = Pattern(kTrack, 12);
  CHECK(Write(t.b->host(), "rt", 0, data2).reply.mirrored());
  CHECK(Read(t.a->host(), "rt", 0, kTrack) == data2);
  CHECK(Write(t.a->host(), "rt", 0, data2).status.error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);

  // Deleting: not while a volume is in it, not a group of the config file.
  const grpc::Status busy = DeleteGroupCall(*t.b, "back");
  CHECK(busy.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(busy.error_message(), Catch::Contains("rt"));
  CHECK(DeleteGroupCall(*t.a, "base").error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(DeleteGroupCall(*t.a, "nope").error_code() == grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext context;
    t.b->Authorize(context);
    v1::DeleteVolumeRequest request;
    request.set_name("rt");
    request.set_force(true);
    v1::DeleteVolumeReply reply;
    REQUIRE(t.b->admin().DeleteVolume(&context, request, &reply).ok());
  }
  REQUIRE(Eventually([&] { return VolumesOf(*t.a).count("rt") == 0; }));
  REQUIRE(DeleteGroupCall(*t.b, "back").ok());
  REQUIRE(DeleteGroupCall(*t.a, "back").ok());
  CHECK(GroupStateOf(*t.b, "back").empty());
  CHECK(Groups(*t.a).groups_size() == 1);
  CHECK(!std::filesystem::exists(t.b->data_dir() + "/groups/back"));
  t.b->Kill();
  t.b->Start();
  CHECK(Groups(*t.b).groups_size() == 1);
  REQUIRE(Eventually([&] { return GroupStateOf(*t.a, "base") == "Synchronized"; }));
}

TEST_CASE("topologies: multi-group async groups switch their cycles together",
          "[integration][groups][topology]") {
  ThreeSites t;
  GroupOptions to_b{.name = "east",
                    .number = 1,
                    .role = "R1",
                    .peer_address = t.b->PickPeerAddress(),
                    .mode = "async",
                    .cycle_ms = 100};
  GroupOptions to_c{.name = "west",
                    .number = 2,
                    .role = "R1",
                    .peer_address = t.c->PickPeerAddress(),
                    .mode = "async",
                    .cycle_ms = 100};
  t.a->options().groups = {to_b, to_c};
  t.a->options().extra_group_keys = "consistency = \"multi-group\"\n";
  t.b->options().groups = {
      {.name = "east", .number = 1, .role = "R2", .mode = "async", .cycle_ms = 100}};
  t.c->options().groups = {
      {.name = "west", .number = 2, .role = "R2", .mode = "async", .cycle_ms = 100}};
  t.c->Start();
  t.b->Start();
  t.a->Start();
  REQUIRE(CreateVolumeIn(*t.a, "left", 4 * kTrack, "east", false).ok());
  REQUIRE(CreateVolumeIn(*t.a, "right", 4 * kTrack, "west", false).ok());
  REQUIRE(Eventually([&] {
    return GroupStateOf(*t.a, "east") == "Consistent" && GroupStateOf(*t.a, "west") == "Consistent";
  }));
  const v1::ListGroupsReply groups = Groups(*t.a);
  for (const v1::GroupStatus& g : groups.groups()) CHECK(g.consistency() == "multi-group");

  // Writes to both groups' volumes while B's and C's applied cycles are sampled: a cycle
  // number means the same boundary on both, so together they hold A's image at it.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint32_t i = 0; !stop; ++i) {
      (void)Write(t.a->host(), i % 2 == 0 ? "left" : "right", (i % 4) * kTrack, Pattern(kBlock, i));
    }
  });
  std::map<uint64_t, uint64_t> at_b, at_c;  // applied cycle -> its boundary
  for (int i = 0; i < 150; ++i) {
    const v1::CycleStatus b = t.b->Status().cycles();
    const v1::CycleStatus c = t.c->Status().cycles();
    if (b.mirror_consistent()) at_b[b.applied_cycle()] = b.applied_sequence();
    if (c.mirror_consistent()) at_c[c.applied_cycle()] = c.applied_sequence();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  writer.join();
  int same = 0;
  for (const auto& [cycle, boundary] : at_b) {
    auto other = at_c.find(cycle);
    if (other == at_c.end()) continue;
    INFO("cycle " << cycle);
    CHECK(other->second == boundary);
    ++same;
  }
  CHECK(same >= 3);
}

}  // namespace
}  // namespace simarray::testing
