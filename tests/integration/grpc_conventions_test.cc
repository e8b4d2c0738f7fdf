// gRPC conventions every port follows (docs/interfaces.md): grpc.health.v1.Health answers, and
// server reflection (grpc.reflection.v1alpha, what gRPC 1.51 serves) lists the services, so
// a generic client can find and call them.
#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "daemon_process.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "simarray/rpc/rpc.h"

namespace simarray::testing {
namespace {

using grpc::health::v1::HealthCheckResponse;

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(10);
}

HealthCheckResponse::ServingStatus Check(const std::string& address, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse reply;
  grpc::Status s = stub->Check(&context, request, &reply);
  INFO(address << " Check(\"" << service << "\"): " << s.error_message());
  REQUIRE(s.ok());
  return reply.status();
}

// The service names reflection lists on `address`.
std::set<std::string> ListServices(const std::string& address) {
  namespace refl = grpc::reflection::v1alpha;
  auto stub = refl::ServerReflection::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  auto stream = stub->ServerReflectionInfo(&context);
  refl::ServerReflectionRequest request;
  request.set_list_services("*");
  REQUIRE(stream->Write(request));
  REQUIRE(stream->WritesDone());
  refl::ServerReflectionResponse reply;
  std::set<std::string> names;
  bool got = false;
  while (stream->Read(&reply)) {
    INFO(reply.error_response().error_message());
    REQUIRE(reply.has_list_services_response());
    for (const auto& s : reply.list_services_response().service()) names.insert(s.name());
    got = true;
  }
  grpc::Status s = stream->Finish();
  INFO(address << ": " << s.error_message());
  REQUIRE(s.ok());
  REQUIRE(got);
  return names;
}

}  // namespace

TEST_CASE("every port serves grpc.health.v1.Health and lists its services by reflection",
          "[integration][grpc]") {
  Pair pair;
  const std::string kHost = "simarray.v1.HostService";
  const std::string kAdmin = "simarray.v1.AdminService";
  const std::string kPeer = "simarray.v1.PeerService";
  for (Daemon* d : {pair.primary.get(), pair.mirror.get()}) {
    const std::map<std::string, std::string> ports = {
        {d->host_address(), kHost}, {d->admin_address(), kAdmin}, {d->peer_address(), kPeer}};
    for (const auto& [address, service] : ports) {
      CHECK(Check(address, "") == HealthCheckResponse::SERVING);
      std::set<std::string> names = ListServices(address);
      INFO(address);
      CHECK(names.count(service) == 1);
      CHECK(names.count("grpc.health.v1.Health") == 1);
      CHECK(names.count("grpc.reflection.v1alpha.ServerReflection") == 1);
      // Each port serves its own service only.
      for (const std::string& other : {kHost, kAdmin, kPeer}) {
        if (other != service) CHECK(names.count(other) == 0);
      }
    }
  }
}

}  // namespace simarray::testing
