// loader.cpp — the slot ring, the worker threads and the lease hand-over.
#include "data/loader.h"

#include <condition_variable>
#include <exception>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

namespace vitscale::data {

namespace detail {

enum class SlotState { free, filling, ready, leased };

struct Slot {
  Batch batch;
  SlotState state = SlotState::free;
  std::int64_t number = -1;  // stream number k of the batch it holds or is filling
  // The device's pending reads of `batch` (from the last lease's release);
  // waited on before the next fill. Declared after `batch`: destroyed (waited) first.
  HostReadFence reads;
};

// Shared by the loader, its workers and the leases.
struct LoaderState {
  std::mutex mutex;
  std::condition_variable workers_wake;   // a slot was freed, or stop
  std::condition_variable consumer_wake;  // a slot became ready, or an error
  std::vector<Slot> slots;                // (R)
  std::int64_t next_to_fill = 0;
  std::int64_t next_to_take = 0;
  std::int64_t end = 0;                   // stream length (max int64 when endless)
  bool stopping = false;
  std::exception_ptr error;
  int leases = 0;

  void release(int slot, HostReadFence reads) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      Slot& s = slots[static_cast<std::size_t>(slot)];
      s.state = SlotState::free;
      s.reads = std::move(reads);  // the slot had none pending: its fill waited on the last one
      --leases;
    }
    workers_wake.notify_all();
  }
};

}  // namespace detail

using detail::SlotState;

BatchLease::BatchLease(BatchLease&& other) noexcept
    : state_(std::move(other.state_)), slot_(std::exchange(other.slot_, -1)), batch_(std::exchange(other.batch_, nullptr)) {}

BatchLease& BatchLease::operator=(BatchLease&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    slot_ = std::exchange(other.slot_, -1);
    batch_ = std::exchange(other.batch_, nullptr);
  }
  return *this;
}

void BatchLease::release() { release(HostReadFence{}); }

void BatchLease::release(HostReadFence reads) {
  if (state_ && slot_ >= 0) state_->release(slot_, std::move(reads));
  state_.reset();
  slot_ = -1;
  batch_ = nullptr;
}

namespace {

LoaderConfig checked(const LoaderConfig& c) {
  if (c.num_workers < 0 || c.num_workers > 64)
    throw std::invalid_argument("loader: num_workers " + std::to_string(c.num_workers) + " outside [0, 64]");
  if (c.prefetch_batches < 2 || c.prefetch_batches > 1024)
    throw std::invalid_argument("loader: prefetch_batches " + std::to_string(c.prefetch_batches) +
                                " outside [2, 1024]");
  if (c.start_epoch < 0 || c.start_step < 0 || c.num_epochs < 0)
    throw std::invalid_argument("loader: start_epoch, start_step and num_epochs must be >= 0");
  return c;
}

}  // namespace

Loader::Loader(const Dataset& dataset, const LoaderConfig& config)
    : config_(checked(config)), maker_(dataset, config_), state_(std::make_shared<detail::LoaderState>()) {
  if (config_.mode == LoaderMode::eval && config_.num_epochs == 0) config_.num_epochs = 1;
  state_->slots.resize(static_cast<std::size_t>(config_.prefetch_batches));
  for (auto& slot : state_->slots) slot.batch = maker_.allocate(config_.allocator);
  restart(config_.start_epoch, config_.start_step);
}

Loader::~Loader() { stop(); }

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
  }
  state_->workers_wake.notify_all();
  state_->consumer_wake.notify_all();
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
}

void Loader::restart(std::int64_t epoch, std::int64_t step) {
  if (epoch < 0 || step < 0) throw std::invalid_argument("loader: restart at a negative epoch or step");
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (state_->leases > 0)
      throw std::logic_error("loader: restart() while " + std::to_string(state_->leases) + " batch(es) are leased");
  }
  stop();
  const std::int64_t steps = maker_.steps_per_epoch();
  config_.start_epoch = epoch + step / steps;  // a step past the epoch's end rolls over
  config_.start_step = step % steps;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    for (auto& slot : state_->slots) slot.state = SlotState::free, slot.number = -1;
    state_->next_to_fill = state_->next_to_take = 0;
    state_->end = config_.num_epochs > 0 ? config_.num_epochs * steps - config_.start_step
                                         : std::numeric_limits<std::int64_t>::max();
    state_->stopping = false;
    state_->error = nullptr;
  }
  start_workers();
}

void Loader::start_workers() {
  workers_.reserve(static_cast<std::size_t>(config_.num_workers));
  for (int i = 0; i < config_.num_workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

void Loader::worker_loop() {
  detail::LoaderState& s = *state_;
  const auto R = static_cast<std::int64_t>(s.slots.size());
  const std::int64_t steps = maker_.steps_per_epoch();
  AugmentScratch scratch;
  for (;;) {
    std::int64_t k = 0;
    detail::Slot* slot = nullptr;
    HostReadFence reads;
    {
      std::unique_lock<std::mutex> lock(s.mutex);
      s.workers_wake.wait(lock, [&] {
        return s.stopping || s.error ||
               (s.next_to_fill < s.end && s.slots[static_cast<std::size_t>(s.next_to_fill % R)].state == SlotState::free);
      });
      if (s.stopping || s.error) return;
      k = s.next_to_fill++;
      slot = &s.slots[static_cast<std::size_t>(k % R)];
      slot->state = SlotState::filling;
      slot->number = k;
      reads = std::move(slot->reads);
    }
    try {
      reads.wait();  // the device has finished copying the slot's previous batch
      const std::int64_t at = config_.start_step + k;
      maker_.make(config_.start_epoch + at / steps, at % steps, slot->batch, scratch);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(s.mutex);
        if (!s.error) s.error = std::current_exception();
      }
      s.consumer_wake.notify_all();
      s.workers_wake.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      slot->state = SlotState::ready;
    }
    s.consumer_wake.notify_all();
  }
}

BatchLease Loader::next() {
  detail::LoaderState& s = *state_;
  const auto R = static_cast<std::int64_t>(s.slots.size());
  std::unique_lock<std::mutex> lock(s.mutex);
  if (s.error) std::rethrow_exception(s.error);
  if (s.stopping || s.next_to_take >= s.end) return {};
  const std::int64_t k = s.next_to_take;
  detail::Slot& slot = s.slots[static_cast<std::size_t>(k % R)];
  if (slot.state == SlotState::leased && slot.number != k)
    throw std::logic_error("loader: all " + std::to_string(R) +
                           " batch slots are leased; release a batch before asking for the next");
  if (workers_.empty()) {
    // Synchronous mode: fill the slot here, outside the lock.
    slot.state = SlotState::filling;
    slot.number = k;
    HostReadFence reads = std::move(slot.reads);
    lock.unlock();
    const std::int64_t steps = maker_.steps_per_epoch(), at = config_.start_step + k;
    AugmentScratch scratch;
    try {
      reads.wait();
      maker_.make(config_.start_epoch + at / steps, at % steps, slot.batch, scratch);
    } catch (...) {
      std::lock_guard<std::mutex> relock(s.mutex);
      slot.state = SlotState::free;
      throw;
    }
    lock.lock();
  } else {
    s.consumer_wake.wait(lock, [&] {
      return s.error || s.stopping || (slot.number == k && slot.state == SlotState::ready);
    });
    if (s.error) std::rethrow_exception(s.error);
    if (s.stopping) return {};
  }
  slot.state = SlotState::leased;
  ++s.next_to_take;
  ++s.leases;
  return BatchLease(state_, static_cast<int>(k % R), &slot.batch);
}

void Loader::make_batch(std::int64_t epoch, std::int64_t step, Batch& out) const {
  AugmentScratch scratch;
  maker_.make(epoch, step, out, scratch);
}

}  // namespace vitscale::data
