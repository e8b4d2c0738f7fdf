// AdminService: the link, role-change and RDF group handlers (docs/pair.md, docs/groups.md).
#include "absl/strings/str_cat.h"
#include "daemon/admin_service.h"
#include "daemon/array.h"
#include "daemon/status_report.h"
#include "simarray/rpc/rpc.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {

grpc::Status AdminServiceImpl::SuspendLink(grpc::ServerContext* context,
                                           const v1::SuspendLinkRequest* request,
                                           v1::SuspendLinkReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  if (array_->remote() == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this daemon ships to no mirror; suspend the link on the primary");
  }
  auto group = array_->FindGroup(request->group());
  if (!group.ok()) return rpc::ToGrpc(group.status());
  (*group)->remote()->Suspend();
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::EmulateLink(grpc::ServerContext* context,
                                           const v1::EmulateLinkRequest* request,
                                           v1::EmulateLinkReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  auto group = array_->FindGroup(request->group());
  if (!group.ok()) return rpc::ToGrpc(group.status());
  if (!(*group)->source()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("this array is the target of group ", (*group)->name(),
                                     "; emulate its link on the source, which runs the stream"));
  }
  const std::string& direction = request->direction();
  if (!direction.empty() && direction != "both" && direction != "out" && direction != "back") {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("direction: expected \"both\", \"out\" or \"back\", got \"", direction, "\""));
  }
  const v1::LinkEmulation& in = request->emulation();
  remote::LinkEmulation e;
  e.latency = absl::Milliseconds(in.latency_ms());
  e.jitter = absl::Milliseconds(in.jitter_ms());
  e.bandwidth = in.bandwidth_bits();
  e.loss = in.loss();
  if (absl::Status s = remote::Validate(e); !s.ok()) return rpc::ToGrpc(s);
  remote::RemoteAdaptor& ra = *(*group)->remote();
  remote::LinkEmulations now = ra.emulation();
  if (direction != "back") now.out = e;
  if (direction != "out") now.back = e;
  ra.SetEmulation(now);
  spdlog::info("admin: group {} link emulation: out {}; back {}", (*group)->name(),
               now.out.ToString(), now.back.ToString());
  Publish("link", (*group)->name(), "emulated",
          absl::StrCat("link emulation: out ", now.out.ToString(), "; back ", now.back.ToString()));
  reply->set_out(now.out.ToString());
  reply->set_back(now.back.ToString());
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::ResumeLink(grpc::ServerContext* context,
                                          const v1::ResumeLinkRequest* request,
                                          v1::ResumeLinkReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  if (array_->remote() == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this daemon ships to no mirror; resume the link on the primary");
  }
  auto group = array_->FindGroup(request->group());
  if (!group.ok()) return rpc::ToGrpc(group.status());
  if ((*group)->split() != SplitSide::kNone) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "the group is split: establish or restore ends a split, not resume");
  }
  (*group)->remote()->Resume();
  return grpc::Status::OK;
}

}  // namespace simarray::daemon

namespace simarray::daemon {
namespace {

grpc::Status RoleReply(Array& array, RdfGroup* group, const char* what,
                       const absl::StatusOr<RoleChange>& change, v1::RoleChangeReply* reply) {
  Event e;
  e.kind = "role_change";
  e.subject = group != nullptr && group->index() != 0 ? group->name() : std::string("array");
  e.value = change.ok() ? what : absl::StrCat(what, " refused");
  e.detail = change.ok() ? absl::StrCat(what, ": ", change->description)
                         : absl::StrCat(what, " refused: ", change.status().message());
  array.events().Publish(std::move(e));
  if (!change.ok()) return rpc::ToGrpc(change.status());
  reply->set_role(group != nullptr ? group->role() : array.role());
  reply->set_pair_state(std::string(
      remote::PairStateName(group != nullptr ? array.pair_state(*group) : array.pair_state())));
  reply->set_tracks_copied(change->tracks_copied);
  reply->set_description(change->description);
  reply->set_image_sequence(change->image_sequence);
  reply->set_gold_tracks_restored(change->gold_tracks);
  return grpc::Status::OK;
}

absl::Duration WaitOf(const v1::RoleChangeRequest& request) {
  return absl::Milliseconds(request.wait_ms() == 0 ? 60000 : request.wait_ms());
}

}  // namespace

grpc::Status AdminServiceImpl::Failover(grpc::ServerContext* context,
                                        const v1::RoleChangeRequest* request,
                                        v1::RoleChangeReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  return GroupOperation("failover", *request, reply,
                        [&](RdfGroup& g) { return array_->Failover(g); });
}

grpc::Status AdminServiceImpl::Failback(grpc::ServerContext* context,
                                        const v1::RoleChangeRequest* request,
                                        v1::RoleChangeReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  return GroupOperation("failback", *request, reply, [&](RdfGroup& g) {
    return array_->Failback(g, request->force(), WaitOf(*request));
  });
}

grpc::Status AdminServiceImpl::Swap(grpc::ServerContext* context,
                                    const v1::RoleChangeRequest* request,
                                    v1::RoleChangeReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  return GroupOperation("swap", *request, reply,
                        [&](RdfGroup& g) { return array_->Swap(g, WaitOf(*request)); });
}

grpc::Status AdminServiceImpl::Split(grpc::ServerContext* context,
                                     const v1::RoleChangeRequest* request,
                                     v1::RoleChangeReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  return GroupOperation("split", *request, reply, [&](RdfGroup& g) { return array_->Split(g); });
}

grpc::Status AdminServiceImpl::Establish(grpc::ServerContext* context,
                                         const v1::RoleChangeRequest* request,
                                         v1::RoleChangeReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  return GroupOperation("establish", *request, reply,
                        [&](RdfGroup& g) { return array_->Establish(g, WaitOf(*request)); });
}

grpc::Status AdminServiceImpl::Restore(grpc::ServerContext* context,
                                       const v1::RoleChangeRequest* request,
                                       v1::RoleChangeReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  return GroupOperation("restore", *request, reply,
                        [&](RdfGroup& g) { return array_->Restore(g, WaitOf(*request)); });
}

grpc::Status AdminServiceImpl::GroupOperation(const char* what,
                                              const v1::RoleChangeRequest& request,
                                              v1::RoleChangeReply* reply,
                                              const Array::GroupOp& operation) {
  absl::StatusOr<RoleChange> change = array_->OnGroup(request.group(), operation);
  auto group = array_->FindGroup(request.group());
  return RoleReply(*array_, group.ok() ? *group : nullptr, what, change, reply);
}

grpc::Status AdminServiceImpl::ListGroups(grpc::ServerContext* context,
                                          const v1::ListGroupsRequest* request,
                                          v1::ListGroupsReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  for (const auto& g : array_->groups()) FillGroup(*array_, *g, reply->add_groups());
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::CreateGroup(grpc::ServerContext* context,
                                           const v1::CreateGroupRequest* request,
                                           v1::GroupStatus* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  GroupConfig g;  // unset fields keep an [[rdf_group]] table's defaults
  g.name = request->name();
  if (request->number() != 0) g.number = request->number();
  g.role = request->role().empty() ? "R1" : request->role();
  if (!request->mode().empty()) g.mode = request->mode();
  if (request->cycle_ms() != 0) g.cycle_ms = request->cycle_ms();
  if (request->cycle_cache_percent() != 0) g.cycle_cache_percent = request->cycle_cache_percent();
  g.peer_address = request->peer_address();
  if (!request->link_policy().empty()) g.link_policy = request->link_policy();
  if (request->ack_timeout_ms() != 0) g.ack_timeout_ms = request->ack_timeout_ms();
  if (!request->consistency().empty()) g.consistency = request->consistency();
  auto created = array_->CreateGroup(g);
  if (!created.ok()) return rpc::ToGrpc(created.status());
  Publish("group", g.name, "created", absl::StrCat("RDF group ", g.name, " created"));
  FillGroup(*array_, **created, reply);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::DeleteGroup(grpc::ServerContext* context,
                                           const v1::DeleteGroupRequest* request,
                                           v1::DeleteGroupReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  if (absl::Status s = array_->DeleteGroup(request->name()); !s.ok()) return rpc::ToGrpc(s);
  Publish("group", request->name(), "deleted",
          absl::StrCat("RDF group ", request->name(), " deleted"));
  return grpc::Status::OK;
}

}  // namespace simarray::daemon
