// The MPI communicator on real ranks, in both progress modes: every collective
// gives the right numbers, many can be in flight at once, host reductions and
// the start-up agreement check work across processes.
#include <catch2/catch.hpp>
#include <numeric>
#include <vector>

#include "parallel/bootstrap.h"
#include "parallel/mpi_communicator.h"

using namespace vitscale;

namespace {

TensorView view(std::vector<float>& v) {
  return TensorView(v.data(), DType::f32, {static_cast<std::int64_t>(v.size())});
}

std::vector<MpiProgress> modes() {
  return {MpiProgress::comm_thread, MpiProgress::polling_thread, MpiProgress::nonblocking};
}

CommOptions options(MpiProgress p) {
  CommOptions o;
  o.mpi_progress = p;
  o.timeout_s = 60;
  return o;
}

}  // namespace

TEST_CASE("all_reduce sums over ranks, in place", "[mpi][comm]") {
  for (MpiProgress mode : modes()) {
    MpiCommunicator comm(options(mode));
    const int W = comm.world_size(), r = comm.rank();
    std::vector<float> a(1000);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(r + 1) + static_cast<float>(i);
    comm.all_reduce(view(a)).wait();
    const float ranks = static_cast<float>(W * (W + 1) / 2);
    bool ok = true;
    for (std::size_t i = 0; i < a.size(); ++i) ok = ok && a[i] == ranks + static_cast<float>(W) * static_cast<float>(i);
    CHECK(ok);
  }
}

TEST_CASE("many collectives in flight complete in launch order", "[mpi][comm]") {
  for (MpiProgress mode : modes()) {
    MpiCommunicator comm(options(mode));
    const int W = comm.world_size();
    std::vector<std::vector<float>> bufs(12, std::vector<float>(4096));
    std::vector<CommRequest> reqs;
    for (std::size_t b = 0; b < bufs.size(); ++b) {
      std::fill(bufs[b].begin(), bufs[b].end(), static_cast<float>(b));
      reqs.push_back(comm.all_reduce(view(bufs[b])));
    }
    const double exposed = comm.wait_all(reqs);
    CHECK(exposed >= 0);
    for (std::size_t b = 0; b < bufs.size(); ++b) CHECK(bufs[b][4095] == static_cast<float>(W * static_cast<int>(b)));
    for (const CommRequest& q : reqs) CHECK(q.done());
  }
}

TEST_CASE("reduce_scatter with uneven and empty blocks", "[mpi][comm]") {
  for (MpiProgress mode : modes()) {
    MpiCommunicator comm(options(mode));
    const int W = comm.world_size(), r = comm.rank();
    std::vector<std::int64_t> counts(static_cast<std::size_t>(W));
    for (int q = 0; q < W; ++q) counts[static_cast<std::size_t>(q)] = q == 1 ? 0 : 7 + 3 * q;  // rank 1 owns nothing
    const std::int64_t total = std::accumulate(counts.begin(), counts.end(), std::int64_t{0});
    std::vector<float> send(static_cast<std::size_t>(total));
    for (std::size_t i = 0; i < send.size(); ++i) send[i] = static_cast<float>(i) * static_cast<float>(r + 1);
    std::vector<float> recv(static_cast<std::size_t>(counts[static_cast<std::size_t>(r)]), -1.f);
    comm.reduce_scatter(view(send), view(recv), counts).wait();
    const std::int64_t at = std::accumulate(counts.begin(), counts.begin() + r, std::int64_t{0});
    const float factor = static_cast<float>(W * (W + 1) / 2);
    for (std::size_t i = 0; i < recv.size(); ++i)
      CHECK(recv[i] == static_cast<float>(at + static_cast<std::int64_t>(i)) * factor);
  }
}

TEST_CASE("all_gather in place with uneven shards", "[mpi][comm]") {
  for (MpiProgress mode : modes()) {
    MpiCommunicator comm(options(mode));
    const int W = comm.world_size(), r = comm.rank();
    std::vector<std::int64_t> counts(static_cast<std::size_t>(W));
    for (int q = 0; q < W; ++q) counts[static_cast<std::size_t>(q)] = q == W - 1 ? 5 : 16;
    const std::int64_t total = std::accumulate(counts.begin(), counts.end(), std::int64_t{0});
    std::vector<float> data(static_cast<std::size_t>(total), -1.f);
    const std::int64_t at = std::accumulate(counts.begin(), counts.begin() + r, std::int64_t{0});
    for (std::int64_t i = 0; i < counts[static_cast<std::size_t>(r)]; ++i)
      data[static_cast<std::size_t>(at + i)] = static_cast<float>(r * 100 + i);
    comm.all_gather(view(data), counts).wait();
    std::int64_t k = 0;
    for (int q = 0; q < W; ++q)
      for (std::int64_t i = 0; i < counts[static_cast<std::size_t>(q)]; ++i, ++k)
        CHECK(data[static_cast<std::size_t>(k)] == static_cast<float>(q * 100 + i));
  }
}

TEST_CASE("broadcast, barrier and host reductions", "[mpi][comm]") {
  for (MpiProgress mode : modes()) {
    MpiCommunicator comm(options(mode));
    const int W = comm.world_size(), r = comm.rank();
    std::vector<float> b(33, static_cast<float>(r));
    comm.broadcast(view(b), W - 1).wait();
    CHECK(b[0] == static_cast<float>(W - 1));
    CHECK(b[32] == static_cast<float>(W - 1));
    comm.barrier().wait();
    std::vector<double> v = {static_cast<double>(r), 1.0};
    comm.all_reduce_host(v, HostReduce::sum);
    CHECK(v[0] == W * (W - 1) / 2.0);
    CHECK(v[1] == W);
    std::vector<double> m = {static_cast<double>(r)};
    comm.all_reduce_host(m, HostReduce::max);
    CHECK(m[0] == W - 1);
    comm.all_reduce_host(m = {static_cast<double>(r)}, HostReduce::min);
    CHECK(m[0] == 0);
  }
}

TEST_CASE("configurations that differ across ranks are refused on every rank", "[mpi][comm]") {
  MpiCommunicator comm(options(MpiProgress::comm_thread));
  const int W = comm.world_size(), r = comm.rank();
  CHECK_NOTHROW(check_same_across_ranks(comm, "configuration", "dim=32 micro_batch=4"));
  const std::string mine = r == W - 1 ? "dim=64 micro_batch=4" : "dim=32 micro_batch=4";
  CHECK_THROWS_WITH(check_same_across_ranks(comm, "configuration", mine),
                    Catch::Contains("differs across ranks: rank " + std::to_string(W - 1) + " disagrees with rank 0") &&
                        Catch::Contains(mine));
}

TEST_CASE("the launch information comes from MPI", "[mpi][comm]") {
  MpiSession session(nullptr, nullptr);  // already initialised: joins
  const LaunchInfo info = session.launch_info();
  MpiCommunicator comm(options(MpiProgress::comm_thread));
  CHECK(info.rank == comm.rank());
  CHECK(info.world_size == comm.world_size());
  CHECK(info.local_world_size == comm.world_size());  // one node
  CHECK(info.local_rank == comm.rank());
  const LaunchInfo env = launch_info_from_env();
  CHECK(env.rank == info.rank);
  CHECK(env.world_size == info.world_size);
}
