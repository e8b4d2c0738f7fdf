// simarrayctl [--admin ADDR] [--json] [--timeout-ms N] [--token-file F] COMMAND ...
// The command-line client of simarrayd: the command line is declared and checked here, the
// commands themselves live in ctl_admin_commands.cc and ctl_host_commands.cc.
//
// Exit codes: 0 success; 1 `consistency` found the volume not consistent; 2 any error (bad
// command line, RPC error, local file error).
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "simarray/base/secret.h"
#include "tools/ctl_arguments.h"
#include "tools/ctl_commands.h"
#include "tools/ctl_output.h"

namespace simarray::ctl {
namespace {

// The chosen command, set by its subcommand's callback once the whole line is checked.
using Command = std::function<int()>;

constexpr char kReadHelp[] = R"(Reads LENGTH bytes at OFFSET.
With --out the bytes go to FILE. Otherwise the human form prints a hex dump of the first 256
bytes with the length and CRC-32C, and --json prints
  {"volume","offset","length","crc32c"(number),"data_base64"}
where data_base64 (standard base64) is present only for reads of at most 4096 bytes (with
--out, "out" names the file instead). The client checks the reply's CRC-32C against the bytes.)";

constexpr char kWriteHelp[] = R"(Writes a file, or LENGTH copies of BYTE, at OFFSET.
Data up to 4 MiB goes as one unary Write unless --stream is given; larger data goes through
WriteStream in --chunk pieces. The CRC-32C of the data is computed and sent, unless --crc32c
gives the value to send instead (to watch the array reject a write with DATA_LOSS).
--json prints {"volume","offset","length","crc32c","streamed","sequence","mirrored","portions"}.)";

// Makes `app` insist on one of its subcommands, naming them when none came (CLI11's own
// message does not say which ones there are). Call after the subcommands are added.
void RequireCommand(CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
  }
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) {
    list += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  }
  const std::string prefix = app.get_parent() != nullptr ? app.get_name() + ": " : "";
  app.callback([&app, message = prefix + "expected a command, " + list + "; got none"] {
    if (app.get_subcommands().empty())
      throw CLI::RequiredError(message, CLI::ExitCodes::RequiredError);
  });
}

void AddStatus(CLI::App& app, const GlobalOptions& global, Command& command) {
  CLI::App* status = app.add_subcommand(
      "status", "AdminService.Status: role, mode, pair state, cache, pens, queue and link");
  status->callback([&] { command = [&] { return RunStatus(global); }; });

  CLI::App* health = app.add_subcommand(
      "health", "grpc.health.v1 Check of ADDR (default: --admin); no token needed");
  auto address = std::make_shared<std::string>();
  health->add_option("ADDR", *address, "any of the daemon's gRPC ports (HOST:PORT)")
      ->type_name("ADDR");
  health->callback(
      [&, address] { command = [&, address] { return RunHealth(global, *address); }; });
}

void AddVolume(CLI::App& app, const GlobalOptions& global, Command& command) {
  CLI::App* volume = app.add_subcommand("volume", "create, list or delete volumes");
  volume->require_subcommand(0, 1);

  CLI::App* create = volume->add_subcommand(
      "create", "create a volume in the array's RDF group (and its twin), or a local one");
  auto create_options = std::make_shared<VolumeCreateOptions>();
  create->add_option("NAME", create_options->name, "volume name")->required()->type_name("NAME");
  create->add_option("SIZE", create_options->size, "volume size: bytes, or with suffix K, M, G, T")
      ->required()
      ->transform(SizeArgument(1))
      ->type_name("SIZE");
  CLI::Option* in_group =
      create->add_option("--group", create_options->group, "the RDF group (default: the array's)")
          ->type_name("G");
  create->add_flag("--local", create_options->local, "in no RDF group: never mirrored")
      ->excludes(in_group);
  create->callback([&, create_options] {
    command = [&, create_options] { return RunVolumeCreate(global, *create_options); };
  });

  CLI::App* pair = volume->add_subcommand(
      "pair", "put a local volume into an RDF group: twin, then initial copy (on the source)");
  auto pair_name = std::make_shared<std::string>();
  auto pair_group = std::make_shared<std::string>();
  pair->add_option("NAME", *pair_name, "volume name")->required()->type_name("NAME");
  pair->add_option("--group", *pair_group, "the RDF group (default: the array's)")->type_name("G");
  pair->callback([&, pair_name, pair_group] {
    command = [&, pair_name, pair_group] { return RunVolumePair(global, *pair_name, *pair_group); };
  });

  CLI::App* list = volume->add_subcommand("list", "list volumes");
  list->callback([&] { command = [&] { return RunVolumeList(global); }; });

  CLI::App* del = volume->add_subcommand("delete", "delete a volume");
  auto del_name = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  del->add_option("NAME", *del_name, "volume name")->required()->type_name("NAME");
  del->add_flag("--force", *force, "delete a paired volume on both sides");
  del->callback([&, del_name, force] {
    command = [&, del_name, force] { return RunVolumeDelete(global, *del_name, *force); };
  });
  RequireCommand(*volume);
}

void AddConsistency(CLI::App& app, const GlobalOptions& global, Command& command) {
  CLI::App* check = app.add_subcommand(
      "consistency", "AdminService.CheckConsistency; exit 0 when consistent, 1 when not");
  check->footer(
      "Compares per-track digests of VOLUME on the primary and the mirror once the mirror has "
      "applied\nthe cut sequence (waiting up to --wait MS). Run it against the primary's admin "
      "port.");
  auto options = std::make_shared<ConsistencyOptions>();
  check->add_option("VOLUME", options->volume, "volume name")->required()->type_name("NAME");
  check->add_option("--wait", options->wait_ms, "wait up to MS for the mirror to catch up")
      ->transform(NumberArgument(0, UINT32_MAX))
      ->type_name("MS");
  check->add_flag("--repair", options->repair, "resend mismatched tracks, then check again");
  check->callback(
      [&, options] { command = [&, options] { return RunConsistency(global, *options); }; });
}

// fault disk-error|disk-full VOLUME [--op OP] [--count N], fault disk-heal VOLUME
// (docs/storage-faults.md).
void AddDiskFaults(CLI::App& fault, const GlobalOptions& global, Command& command) {
  struct Args {
    std::string volume;
    std::string op = "write";
    uint32_t count = 0;
  };
  const std::pair<const char*, const char*> kinds[] = {
      {"disk-error", "VOLUME's backing file fails its next writes (or syncs, reads) with EIO"},
      {"disk-full", "VOLUME's backing file fails its next writes (or syncs) with ENOSPC"},
      {"disk-heal", "disarm VOLUME's disk faults; the destage retries by itself"}};
  for (const auto& [kind, help] : kinds) {
    const std::string name = kind;
    auto args = std::make_shared<Args>();
    CLI::App* sub = fault.add_subcommand(name, help);
    sub->add_option("VOLUME", args->volume, "volume name")->required()->type_name("NAME");
    if (name != "disk-heal") {
      sub->add_option("--op", args->op, "which operation fails (default write)")
          ->check(CLI::IsMember(name == "disk-full"
                                    ? std::vector<std::string>{"write", "sync"}
                                    : std::vector<std::string>{"write", "sync", "read"}))
          ->type_name("OP");
      sub->add_option("--count", args->count, "fail the next N operations (default: until healed)")
          ->transform(NumberArgument(0, UINT32_MAX))
          ->type_name("N");
    }
    sub->callback([&, name, args] {
      command = [&, name, args] {
        return RunFaultDisk(global, name, args->volume, args->op, args->count);
      };
    });
  }
}

void AddFault(CLI::App& app, const GlobalOptions& global, Command& command) {
  CLI::App* fault = app.add_subcommand("fault", "AdminService.InjectFault");
  fault->require_subcommand(0, 1);

  CLI::App* next = fault->add_subcommand(
      "corrupt-next-write", "corrupt the next host write in cache (validation must reject it)");
  next->callback([&] { command = [&] { return RunFaultCorruptNextWrite(global); }; });

  CLI::App* track = fault->add_subcommand("corrupt-track",
                                          "corrupt TRACK of VOLUME in this daemon's backing store");
  auto volume = std::make_shared<std::string>();
  auto number = std::make_shared<uint64_t>(0);
  track->add_option("VOLUME", *volume, "volume name")->required()->type_name("NAME");
  track->add_option("TRACK", *number, "track number")
      ->required()
      ->transform(NumberArgument())
      ->type_name("TRACK");
  track->callback([&, volume, number] {
    command = [&, volume, number] { return RunFaultCorruptTrack(global, *volume, *number); };
  });

  CLI::App* delay =
      fault->add_subcommand("delay-records", "delay every shipped record by MS (0 clears)");
  auto ms = std::make_shared<uint32_t>(0);
  delay->add_option("MS", *ms, "delay in milliseconds")
      ->required()
      ->transform(NumberArgument(0, UINT32_MAX))
      ->type_name("MS");
  delay->callback([&, ms] { command = [&, ms] { return RunFaultDelayRecords(global, *ms); }; });

  CLI::App* drop = fault->add_subcommand(
      "drop-link", "drop the peer link for MS (it reconnects and resyncs by itself)");
  auto drop_ms = std::make_shared<uint32_t>(0);
  drop->add_option("MS", *drop_ms, "how long the link stays down, in milliseconds")
      ->required()
      ->transform(NumberArgument(0, UINT32_MAX))
      ->type_name("MS");
  drop->callback(
      [&, drop_ms] { command = [&, drop_ms] { return RunFaultDropLink(global, *drop_ms); }; });
  AddDiskFaults(*fault, global, command);
  fault
      ->add_subcommand("crash-mid-apply",
                       "on an async mirror: kill it halfway through applying its next cycle")
      ->callback([&] { command = [&] { return RunFaultCrashMidApply(global); }; });
  RequireCommand(*fault);
}

void AddGroup(CLI::App& app, const GlobalOptions& global, Command& command) {
  CLI::App* group = app.add_subcommand("group", "this array's RDF groups (docs/groups.md)");
  group->require_subcommand(0, 1);
  group->add_subcommand("list", "each group's role, mode, SRDF state, link and volume pairs")
      ->callback([&] { command = [&] { return RunGroupList(global); }; });
  CLI::App* create = group->add_subcommand(
      "create", "make an RDF group at run time, kept in data_dir/groups.toml (docs/groups.md)");
  auto request = std::make_shared<v1::CreateGroupRequest>();
  create
      ->add_option_function<std::string>("NAME",
                                         [request](const std::string& v) { request->set_name(v); })
      ->required();
  create
      ->add_option_function<uint32_t>(
          "--number", [request](uint32_t v) { request->set_number(v); },
          "SRDF's RDF group number, 1 to 250")
      ->required();
  create->add_option_function<std::string>(
      "--role", [request](const std::string& v) { request->set_role(v); },
      "this array's side: R1 (default) or R2");
  create->add_option_function<std::string>(
      "--peer", [request](const std::string& v) { request->set_peer_address(v); },
      "the remote array's peer port (required for R1)");
  create->add_option_function<std::string>(
      "--mode", [request](const std::string& v) { request->set_mode(v); },
      "sync (default) or async");
  create->add_option_function<uint32_t>(
      "--cycle-ms", [request](uint32_t v) { request->set_cycle_ms(v); }, "async: cycle length");
  create->add_option_function<std::string>(
      "--consistency", [request](const std::string& v) { request->set_consistency(v); },
      "async: group (default) or multi-group");
  create->add_option_function<std::string>(
      "--link-policy", [request](const std::string& v) { request->set_link_policy(v); },
      "continue (default) or fail");
  create->callback(
      [&, request] { command = [&, request] { return RunGroupCreate(global, *request); }; });
  CLI::App* remove = group->add_subcommand(
      "delete", "remove an RDF group made at run time (it must have no volumes)");
  auto name = std::make_shared<std::string>();
  remove->add_option("NAME", *name)->required();
  remove->callback([&, name] { command = [&, name] { return RunGroupDelete(global, *name); }; });
  RequireCommand(*group);
}

// --group G on a command that acts on one RDF group (docs/groups.md).
void AddGroupOption(CLI::App* command, std::shared_ptr<std::string> group) {
  command->add_option("--group", *group, "the RDF group (default: the array's)")->type_name("G");
}

void AddLink(CLI::App& app, const GlobalOptions& global, Command& command) {
  CLI::App* link =
      app.add_subcommand("link", "suspend, resume or emulate the peer link (on the primary)");
  link->require_subcommand(0, 1);
  auto group = std::make_shared<std::string>();
  CLI::App* suspend =
      link->add_subcommand("suspend", "stop shipping; writes go on, their tracks become owed");
  AddGroupOption(suspend, group);
  suspend->callback([&, group] { command = [&, group] { return RunLink(global, true, *group); }; });
  CLI::App* resume = link->add_subcommand("resume", "resync the owed tracks, then ship again");
  AddGroupOption(resume, group);
  resume->callback([&, group] { command = [&, group] { return RunLink(global, false, *group); }; });
  auto emulate_options = std::make_shared<LinkEmulateOptions>();
  CLI::App* emulate = link->add_subcommand(
      "emulate",
      "on the source: make the link behave like one between sites (latency, jitter, "
      "bandwidth, loss; docs/link-emulation.md)");
  emulate->add_option("--group", emulate_options->group, "the RDF group (default: the array's)")
      ->type_name("G");
  emulate->add_option("--latency-ms", emulate_options->latency_ms, "one way, each message")
      ->check(CLI::Range(0.0, 60000.0));
  emulate->add_option("--jitter-ms", emulate_options->jitter_ms, "plus a random 0..J per message")
      ->check(CLI::Range(0.0, 60000.0));
  emulate->add_option("--bandwidth", emulate_options->bandwidth, "e.g. 100Mbit, 1Gbit, 12.5MB")
      ->type_name("RATE");
  emulate->add_option("--loss", emulate_options->loss, "the share of messages lost, e.g. 0.1%")
      ->type_name("P");
  emulate
      ->add_option("--direction", emulate_options->direction,
                   "both, out (records to the target) or back (its acks)")
      ->check(CLI::IsMember({"both", "out", "back"}));
  emulate->add_flag("--off", emulate_options->off, "a plain link again");
  emulate->callback([&, emulate_options] {
    command = [&, emulate_options] { return RunLinkEmulate(global, *emulate_options); };
  });
  RequireCommand(*link);
}

void AddRoles(CLI::App& app, const GlobalOptions& global, Command& command) {
  struct Operation {
    const char* name;
    const char* help;
  };
  const Operation operations[] = {
      {"failover", "on the mirror: promote it (the primary is demoted first when the link is up)"},
      {"failback", "on the failed-over side: copy back, then return the primary role"},
      {"swap", "on the mirror of a pair: exchange the roles for good"},
      {"split", "on the R1 side: stop mirroring; both sides take writes (docs/groups.md)"},
      {"establish", "on the R1 side of a split: copy what either side changed to R2, mirror"},
      {"restore", "on the R2 side of a split: copy what either side changed to R1, mirror"},
  };
  for (const Operation& op : operations) {
    CLI::App* sub = app.add_subcommand(op.name, op.help);
    auto group = std::make_shared<std::string>();
    auto force = std::make_shared<bool>(false);
    AddGroupOption(sub, group);
    const std::string what = op.name;
    if (what == "failback") {
      sub->add_flag("--force", *force, "after a split brain: discard the other side's changes");
    }
    sub->callback([&, what, force, group] {
      command = [&, what, force, group] { return RunRoleChange(global, what, *force, *group); };
    });
  }
}

void AddEvents(CLI::App& app, const GlobalOptions& global, Command& command) {
  CLI::App* events = app.add_subcommand("events", "the daemon's events, one line each");
  auto after = std::make_shared<uint64_t>(0);
  auto follow = std::make_shared<bool>(false);
  events->add_option("--after", *after, "only events after this id (default: all kept)")
      ->transform(NumberArgument())
      ->type_name("ID");
  events->add_flag("--follow", *follow, "keep printing new events until interrupted");
  events->callback([&, after, follow] {
    command = [&, after, follow] { return RunEvents(global, *after, *follow); };
  });

  CLI::App* wait = app.add_subcommand(
      "wait", "return when the pair reaches STATE (exit 1 if the timeout passes first)");
  auto state = std::make_shared<std::string>();
  auto timeout = std::make_shared<uint32_t>(60);
  wait->add_option("STATE", *state, "a pair state, e.g. Synchronized, Consistent, Suspended")
      ->required()
      ->type_name("STATE");
  wait->add_option("--timeout", *timeout, "give up after S seconds (default 60)")
      ->transform(NumberArgument(1, 86400))
      ->type_name("S");
  auto group = std::make_shared<std::string>();
  wait->add_option("--group", *group,
                   "wait for this RDF group's SRDF state instead, e.g. Split, \"Failed Over\"")
      ->type_name("G");
  wait->callback([&, state, timeout, group] {
    command = [&, state, timeout, group] { return RunWait(global, *state, *timeout, *group); };
  });
}

void AddWatch(CLI::App& app, const GlobalOptions& global, Command& command) {
  CLI::App* watch = app.add_subcommand("watch", "print a line at every pair state change");
  auto interval = std::make_shared<uint32_t>(200);
  auto count = std::make_shared<uint32_t>(0);
  watch->add_option("--interval", *interval, "poll every MS (default 200)")
      ->transform(NumberArgument(10, 60000))
      ->type_name("MS");
  watch->add_option("--count", *count, "stop after N lines (default: run until interrupted)")
      ->transform(NumberArgument(0, UINT32_MAX))
      ->type_name("N");
  watch->callback([&, interval, count] {
    command = [&, interval, count] { return RunWatch(global, *interval, *count); };
  });
}

void AddWrite(CLI::App& app, const GlobalOptions& global, Command& command) {
  CLI::App* write =
      app.add_subcommand("write", "HostService.Write/WriteStream of a file or a byte pattern");
  write->footer(kWriteHelp);
  auto options = std::make_shared<WriteOptions>();
  auto pattern = std::make_shared<unsigned>(0);
  auto crc = std::make_shared<uint32_t>(0);
  write->add_option("--host", options->host, "host adaptor address (HOST:PORT)")
      ->required()
      ->type_name("ADDR");
  write->add_option("VOLUME", options->volume, "volume name")->required()->type_name("NAME");
  write->add_option("OFFSET", options->offset, "byte offset in the volume (K, M, G suffixes)")
      ->required()
      ->transform(SizeArgument())
      ->type_name("OFFSET");
  CLI::Option* file =
      write->add_option("--file", options->file, "write this file's bytes")->type_name("FILE");
  CLI::Option* byte = write->add_option("--pattern", *pattern, "write LENGTH copies of BYTE")
                          ->transform(NumberArgument(0, 255))
                          ->type_name("BYTE");
  CLI::Option* length = write->add_option("--length", options->length, "bytes to write")
                            ->transform(SizeArgument())
                            ->type_name("N");
  CLI::Option* crc_option =
      write->add_option("--crc32c", *crc, "send this CRC-32C instead of the data's")
          ->transform(Hex32Argument())
          ->type_name("HEX");
  write->add_flag("--stream", options->stream, "always use WriteStream");
  write->add_option("--chunk", options->chunk, "WriteStream chunk size (default 1M)")
      ->transform(SizeArgument(1, kClientMaxWrite))
      ->type_name("SIZE");
  length->needs(byte);
  byte->needs(length);
  write->callback([&, options, pattern, crc, file, byte, crc_option] {
    if (file->count() > 0 && byte->count() > 0) {
      throw CLI::ValidationError(
          "write: expected one data source, --file F or --pattern BYTE --length N; got both");
    }
    if (file->count() == 0 && byte->count() == 0) {
      throw CLI::ValidationError(
          "write: expected one data source, --file F or --pattern BYTE --length N; got neither");
    }
    if (byte->count() > 0) options->pattern = static_cast<uint8_t>(*pattern);
    if (crc_option->count() > 0) options->crc32c = *crc;
    command = [&, options] { return RunWrite(global, *options); };
  });
}

void AddRead(CLI::App& app, const GlobalOptions& global, Command& command) {
  CLI::App* read = app.add_subcommand("read", "HostService.Read: hex dump, JSON or a file");
  read->footer(kReadHelp);
  auto options = std::make_shared<ReadOptions>();
  read->add_option("--host", options->host, "host adaptor address (HOST:PORT)")
      ->required()
      ->type_name("ADDR");
  read->add_option("VOLUME", options->volume, "volume name")->required()->type_name("NAME");
  read->add_option("OFFSET", options->offset, "byte offset in the volume (K, M, G suffixes)")
      ->required()
      ->transform(SizeArgument())
      ->type_name("OFFSET");
  read->add_option("LENGTH", options->length, "bytes to read (K, M, G suffixes)")
      ->required()
      ->transform(SizeArgument())
      ->type_name("LENGTH");
  read->add_option("--out", options->out, "write the bytes to this file")->type_name("FILE");
  read->callback([&, options] { command = [&, options] { return RunRead(global, *options); }; });
}

int Main(int argc, char** argv) {
  CLI::App app{"simarrayctl: the command-line client of simarrayd", "simarrayctl"};
  app.require_subcommand(0, 1);
  app.fallthrough();  // Global options are also accepted after the command.
  app.failure_message([](const CLI::App* failed, const CLI::Error& e) {
    return std::string("simarrayctl: ") + e.what() + "\nRun with --help for more information.\n";
  });
  GlobalOptions global;
  app.add_option("--admin", global.admin, "simarrayd admin address (default 127.0.0.1:7100)")
      ->type_name("ADDR");
  app.add_flag("--json", global.json, "print one JSON object per command on stdout");
  app.add_option("--timeout-ms", global.timeout_ms, "deadline of every call (default 30000)")
      ->transform(NumberArgument(1, INT32_MAX))
      ->type_name("N");
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "file holding the admin token (default: $SIMARRAY_TOKEN_FILE)")
      ->type_name("FILE")
      ->envname("SIMARRAY_TOKEN_FILE");

  Command command;
  AddStatus(app, global, command);
  AddVolume(app, global, command);
  AddWrite(app, global, command);
  AddRead(app, global, command);
  AddConsistency(app, global, command);
  AddFault(app, global, command);
  AddGroup(app, global, command);
  AddLink(app, global, command);
  AddWatch(app, global, command);
  AddEvents(app, global, command);
  AddRoles(app, global, command);
  RequireCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == static_cast<int>(CLI::ExitCodes::Success) ? kExitOk : kExitError;
  }
  if (!token_file.empty()) {
    auto token = ReadSecretFile(token_file, nullptr);
    if (!token.ok()) {
      std::fprintf(stderr, "simarrayctl: --token-file: %s\n",
                   std::string(token.status().message()).c_str());
      return kExitError;
    }
    global.token = *token;
  }
  return command ? command() : kExitError;
}

}  // namespace
}  // namespace simarray::ctl

int main(int argc, char** argv) { return simarray::ctl::Main(argc, argv); }
