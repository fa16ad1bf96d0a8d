// fake_communicator.h — an in-process communicator that records every call.
//
// For the reducer's unit tests: it keeps the order of collectives, where in
// the gradient buffer each one points, the ready watermark at launch (read
// through a pointer the test advances), and how many requests were never
// waited for. Nothing is communicated; data is left as it is.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "parallel/communicator.h"

namespace vitscale::testing {

struct FakeCall {
  CommOp op;
  std::int64_t offset = 0;  // elements from the base pointer
  std::int64_t count = 0;
  std::int64_t watermark = -1;       // *watermark at launch
  std::vector<std::int64_t> counts;  // reduce_scatter / all_gather
  const void* recv = nullptr;        // reduce_scatter's destination
  std::vector<float> snapshot;       // the data at launch, when snapshots are on
};

class FakeCommunicator final : public Communicator {
 public:
  FakeCommunicator(int rank, int world) : rank_(rank), world_(world) {}

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string name() const override { return "fake"; }

  CommRequest all_reduce(TensorView data) override { return record(CommOp::all_reduce, data, {}, nullptr); }
  CommRequest reduce_scatter(TensorView send, TensorView recv, std::span<const std::int64_t> counts) override {
    check_counts(*this, "reduce_scatter", counts, send.numel());
    return record(CommOp::reduce_scatter, send, counts, recv.data);
  }
  CommRequest all_gather(TensorView data, std::span<const std::int64_t> counts) override {
    return record(CommOp::all_gather, data, counts, nullptr);
  }
  CommRequest broadcast(TensorView data, int root) override { return record(CommOp::broadcast, data, {}, nullptr); }
  CommRequest barrier() override { return record(CommOp::barrier, TensorView{}, {}, nullptr); }
  void all_reduce_host(std::span<double> values, HostReduce op) override {
    ++host_calls;
    if (peers) peers(values);
  }

  // Test knobs.
  const float* base = nullptr;                   // offsets are measured from here
  const std::int64_t* watermark = nullptr;       // the test's current ready watermark
  bool snapshot = false;                         // copy the data at launch
  bool complete_on_test = true;                  // false: only wait() completes a request
  std::chrono::microseconds wait_delay{0};       // wait() on a request not yet complete sleeps this long
  std::function<void(std::span<double>)> peers;  // adds the other ranks' host contributions

  std::vector<FakeCall> calls;
  int pending = 0;  // launched, not yet seen complete
  int host_calls = 0;

 private:
  class Request final : public CommRequest::Impl {
   public:
    Request(FakeCommunicator& c) : c_(c) {}
    bool test() override {
      if (!c_.complete_on_test) return false;
      complete();
      return true;
    }
    void wait() override {
      if (!done_ && c_.wait_delay.count() > 0) std::this_thread::sleep_for(c_.wait_delay);
      complete();
    }
    double busy_seconds() const override { return 1e-3; }

   private:
    void complete() {
      if (!done_) --c_.pending;
      done_ = true;
    }
    FakeCommunicator& c_;
    bool done_ = false;
  };

  CommRequest record(CommOp op, TensorView data, std::span<const std::int64_t> counts, const void* recv) {
    FakeCall call;
    call.op = op;
    call.offset = base && data.data ? static_cast<const float*>(data.data) - base : 0;
    call.count = data.data ? data.numel() : 0;
    call.watermark = watermark ? *watermark : -1;
    call.counts.assign(counts.begin(), counts.end());
    call.recv = recv;
    if (snapshot && data.data) {
      const float* p = static_cast<const float*>(data.data);
      call.snapshot.assign(p, p + data.numel());
    }
    calls.push_back(std::move(call));
    ++pending;
    return CommRequest(std::make_unique<Request>(*this));
  }

  int rank_, world_;
};

}  // namespace vitscale::testing
