#include "tools/scaling/zero_timeline.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel/grad_window.h"

namespace vitscale::scaling {

namespace {

struct Op {
  double work = 0;  // seconds alone on the channel
  NetworkModel::Overlapped rate;
  double sent = 0;  // bytes this rank sends
  bool gather = false;
};

// One piece of compute. Ops are numbered in issue order, which is the
// channel's order: a task issues ops [.., issued_by_start) as it starts and
// [.., issued_by_end) as it ends.
struct Task {
  double seconds = 0;
  double recompute = 0;              // of `seconds`, checkpointing's extra forward
  int group = -1;                    // stage 3: the weight group whose parameters it computes with
  int phase = 0;                     // stage 3: which forward or backward pass it belongs to
  int gather_part = -1;              // stage 3: the group it must have gathered first (-1: none or resident)
  int prefetch = -1;                 // stage 3: the task whose gather it issues as it starts (-1: none)
  int carried_group = -1;            // stages 1-2 overlapped: the group whose carried-over gather it waits for
  bool carries_gathers = false;      // stages 1-2 overlapped: issues the last step's gathers, group by group
  std::vector<std::size_t> reduces;  // buckets whose reduction it issues as it ends
  int micro = 0;                     // the micro-step it belongs to (reductions are per micro-step)
  std::vector<int> window_waits;     // stages 2-3: buckets whose reduce-scatter must free its gradient slot first
  bool wait_all = false;             // waits for every op issued before it (optimizer, end of step)
  double gather_after_bytes = 0;     // the all-gather it issues as it ends (stages 1-2: all; 3: persistent)
  int needs = -1;                    // op that must be done before it starts
  std::size_t issued_by_start = 0, issued_by_end = 0;
};

Task task_of(double seconds) {
  Task t;
  t.seconds = seconds;
  return t;
}

bool is_block(const std::string& label) { return label.rfind("blocks.", 0) == 0; }

}  // namespace

double ZeroStepResult::overlap_ratio() const {
  if (comm_s <= 0) return 0.0;
  return std::clamp(1.0 - exposed_s / comm_s, 0.0, 1.0);
}

CommProgress comm_progress_of(const NetworkModel& net) {
  return net.mpi_progress == "nonblocking" ? CommProgress::host_calls : CommProgress::engine;
}

double allreduce_sent_bytes(double bytes, int p) { return p > 1 ? 2.0 * (p - 1) / p * bytes : 0.0; }
double half_sent_bytes(double bytes, int p) { return p > 1 ? static_cast<double>(p - 1) / p * bytes : 0.0; }

ZeroStepResult simulate_zero_step(const StepProfile& p, const NetworkModel& net, const StepOptions& o,
                                  const ZeroOptions& z) {
  if (z.stage < 0 || z.stage > 3)
    throw std::invalid_argument("simulate: zero_optimization.stage " + std::to_string(z.stage) + " is not 0-3");
  if (o.world < 1) throw std::invalid_argument("simulate: world size " + std::to_string(o.world) + " < 1");
  if (o.accumulation < 1) throw std::invalid_argument("simulate: gradient accumulation steps must be >= 1");
  if (o.compute_slowdown <= 0 || o.jitter_cv < 0) throw std::invalid_argument("simulate: bad slowdown or jitter");
  p.validate();
  const int W = o.world;
  const bool comm = W > 1;
  const double pbytes = z.param_bytes > 0 ? z.param_bytes : p.grad_bytes;
  const double scale = o.compute_slowdown * (1.0 + o.jitter_cv * expected_max_std_normal(W));
  const auto& segs = p.backward;  // back to front: head, norm, blocks.L-1 .. blocks.0, embed
  const std::size_t ns = segs.size();
  const double bwd = p.backward_s();
  auto forward_of = [&](std::size_t i) {
    return bwd > 0 ? p.forward_s * segs[i].seconds / bwd : p.forward_s / static_cast<double>(ns);
  };
  // Segment i's parameters are the flat elements [segs[i].ready_from, top_of(i)).
  auto top_of = [&](std::size_t i) { return i == 0 ? p.total_elements : segs[i - 1].ready_from; };
  auto extent = [&](std::size_t i) { return top_of(i) - segs[i].ready_from; };
  // Weight groups (ParamTable::weight_groups): the embedding, each block, and
  // the final norm with the head; a group is named by its first segment going back.
  auto group_of = [&](std::size_t i) -> std::size_t {
    return segs[i].label == "norm" && i > 0 && segs[i - 1].label == "head" ? i - 1 : i;
  };
  std::vector<std::int64_t> group_elements(ns, 0);
  for (std::size_t i = 0; i < ns; ++i) group_elements[group_of(i)] += extent(i);
  auto persistent = [&](std::size_t g) { return group_elements[g] <= z.persistence_elements; };
  double persistent_bytes = 0;
  for (std::size_t i = 0; i < ns; ++i)
    if (group_of(i) == i && persistent(i)) persistent_bytes += static_cast<double>(group_elements[i]) * pbytes;
  const bool sharded_params = z.stage == 3;     // groups acquired before each pass (copies, even at one rank)
  const bool gathers = sharded_params && comm;  // ... and all-gathered
  // ZeRO's local copies on the compute stream (StepProfile::copy_bytes_per_s):
  // a stage-3 gather first copies the rank's part of the group, from its fp32
  // master shard, into the gather buffer (parallel/zero3_params.cpp); at one
  // rank a reduce-scatter is a copy of the bucket into the shard
  // (parallel/local_communicator.cpp), where on more ranks MPI's own copies
  // are in the measured collective.
  constexpr double master_bytes = 4;
  auto gather_copy_s = [&](double elements) { return p.copy_s(elements / W * master_bytes) * scale; };
  const bool local_reduce_copies = !comm && z.stage >= 1;
  std::size_t last_block = ns;  // the segment of block L-1: first block seen going back
  for (std::size_t i = 0; i < ns && last_block == ns; ++i)
    if (is_block(segs[i].label)) last_block = i;

  const std::vector<SimBucket> buckets =
      comm ? plan_buckets(p.params, p.total_elements, o.bucket_bytes, o.first_bucket_bytes, p.grad_bytes)
           : std::vector<SimBucket>{};

  // Stages 2-3 when every micro-step reduces (TrainConfig::zero_gradient_window):
  // no full gradient buffer, backward writes each bucket into a slot of a
  // ring (parallel/grad_window.h's plan, made here from the same buckets and
  // ready points), and claiming a slot waits for the reduce-scatters of the
  // buckets that held it before: backward can wait for the channel.
  std::vector<std::vector<int>> slot_reuses(buckets.size());
  if (comm && z.stage >= 2 && o.overlap && (o.accumulation == 1 || z.reduce_every_micro_step)) {
    BucketPlan plan;
    plan.total = p.total_elements;
    for (const SimBucket& b : buckets) plan.buckets.push_back(Bucket{b.begin, b.count});
    std::vector<std::int64_t> ready;
    for (const BackwardSegment& s : segs) ready.push_back(s.ready_from);
    const GradWindowPlan window = plan_grad_window(plan, ready, true);
    if (!window.full) slot_reuses = window.reuses;
  }

  // Stages 1-2 with overlap_comm (parallel/zero1.h): the all-gather after the
  // optimizer, one per weight group, runs on into the next step; each forward
  // part waits for its group's. In the steady state replayed here, the step
  // starts with the last step's gathers in flight (issued before its input).
  const bool carried = comm && (z.stage == 1 || z.stage == 2) && o.overlap;

  // The tasks of the step, in order.
  std::vector<Task> tasks;
  if (carried) {
    Task t = task_of(0.0);
    t.carries_gathers = true;
    tasks.push_back(t);
  }
  for (int m = 0; m < o.accumulation; ++m) {
    const bool reducing = m == o.accumulation - 1 || (z.stage >= 2 && z.reduce_every_micro_step);
    const bool reduce_now = comm && reducing;
    tasks.push_back(task_of(p.input_s * scale));
    for (std::size_t f = ns; f-- > 0;) {
      Task t = task_of(forward_of(f) * scale);
      if (sharded_params && !persistent(group_of(f))) t.group = static_cast<int>(group_of(f)), t.phase = 2 * m;
      if (carried && m == 0) t.carried_group = static_cast<int>(group_of(f));
      tasks.push_back(t);
    }
    std::size_t next_bucket = 0, next_slot = 0;
    for (std::size_t i = 0; i < ns; ++i) {
      Task t = task_of(segs[i].seconds * scale);
      t.micro = m;
      if (z.checkpointing && is_block(segs[i].label) && i != last_block) {
        t.recompute = forward_of(i) * scale;
        t.seconds += t.recompute;
      }
      if (sharded_params && !persistent(group_of(i))) t.group = static_cast<int>(group_of(i)), t.phase = 2 * m + 1;
      if (local_reduce_copies && reducing) t.seconds += p.copy_s(static_cast<double>(extent(i)) * p.grad_bytes) * scale;
      const bool last = i + 1 == ns;
      if (reduce_now && (o.overlap || last))
        while (next_bucket < buckets.size() && (last || segs[i].ready_from <= buckets[next_bucket].begin))
          t.reduces.push_back(next_bucket++);
      // The segment writes its gradients from its top offset down (a block's
      // backward goes fc2, fc1, ..., qkv) and claims each bucket's slot when it
      // first writes into it: split it there, in proportion to the elements
      // above, where the claim has to wait (after the recompute, which writes none).
      const std::int64_t top = top_of(i), bottom = segs[i].ready_from;
      const double writing_s = t.seconds - t.recompute;
      double written = 0;  // fraction of the segment's gradients written so far
      auto bucket_end = [&](std::size_t b) { return buckets[b].begin + buckets[b].count; };
      while (reduce_now && next_slot < buckets.size() && bucket_end(next_slot) > bottom) {
        const std::size_t b = next_slot++;
        if (slot_reuses[b].empty()) continue;
        const double above = static_cast<double>(top - std::min(top, bucket_end(b)));
        const double at = top > bottom ? above / static_cast<double>(top - bottom) : 0.0;
        Task before = t;  // up to the claim (with the earlier claim's wait, if any); the rest waits for this one
        before.seconds = t.recompute + (at - written) * writing_s;
        before.reduces.clear();
        tasks.push_back(before);
        t.seconds -= before.seconds;
        t.recompute = 0;
        t.window_waits = slot_reuses[b];
        written = at;
      }
      tasks.push_back(t);
    }
  }
  Task opt = task_of((p.optimizer_s / (z.stage >= 1 ? W : 1) + p.step_overhead_s) * o.compute_slowdown);
  opt.wait_all = true;
  if (comm && (z.stage == 1 || z.stage == 2) && !carried)
    opt.gather_after_bytes = static_cast<double>(p.total_elements) * pbytes;
  if (gathers) opt.gather_after_bytes = persistent_bytes;  // persistent groups: re-gathered once per step
  if (sharded_params) opt.seconds += gather_copy_s(persistent_bytes / pbytes);
  tasks.push_back(opt);
  if (opt.gather_after_bytes > 0) {
    Task end = task_of(0.0);
    end.wait_all = true;
    tasks.push_back(end);
  }

  // Which tasks gather, and which gather each prefetches, as
  // parallel/zero3_params.h's acquire() decides: a group in one of the two
  // buffers is not gathered again; acquiring a gathered group issues the gather
  // of the group the pass visits next, into the other buffer, unless that one
  // is persistent (or is the input, the optimizer: nothing to prefetch across).
  // So the first gathered group of a step's forward, and one right after a
  // persistent group, is gathered on demand: its gather is exposed.
  // keep_resident off: every run of a group gathers, each prefetched by the one before.
  {
    std::vector<std::size_t> runs;  // first task of each run of one gathered group
    for (std::size_t k = 0; k < tasks.size(); ++k)
      if (tasks[k].group >= 0 &&
          (k == 0 || tasks[k - 1].group != tasks[k].group || tasks[k - 1].phase != tasks[k].phase))
        runs.push_back(k);
    auto run_end = [&](std::size_t k) {
      while (k + 1 < tasks.size() && tasks[k + 1].group == tasks[k].group && tasks[k + 1].phase == tasks[k].phase) ++k;
      return k + 1;
    };
    int slot[2] = {-1, -1};
    std::vector<bool> prefetched(tasks.size(), false);
    for (std::size_t k : runs) {
      Task& t = tasks[k];
      int at = slot[0] == t.group ? 0 : slot[1] == t.group ? 1 : -1;
      if (prefetched[k] || !z.keep_resident || at < 0) t.gather_part = t.group;
      if (at < 0) slot[at = 0] = t.group;  // on demand: the first free buffer (both are released between groups)
      const std::size_t n = run_end(k);
      if (n >= tasks.size() || tasks[n].group < 0) continue;
      if (z.keep_resident && (slot[0] == tasks[n].group || slot[1] == tasks[n].group)) continue;
      t.prefetch = static_cast<int>(n);
      prefetched[n] = true;
      slot[1 - at] = tasks[n].group;
    }
  }

  // The ops, numbered in issue order.
  std::vector<Op> ops;
  std::vector<int> gather_op(tasks.size(), -1), carried_op(ns, -1);
  std::vector<std::vector<int>> bucket_op(static_cast<std::size_t>(o.accumulation),
                                          std::vector<int>(buckets.size(), -1));
  // Compute since the last op was issued: the spacing the contended curves are
  // measured at (NetworkModel::overlapped); ops issued together have none.
  double since_issue = 0;
  auto overlapped = [&](double b, Collective kind) {
    const NetworkModel::Overlapped rate = net.overlapped(b, W, kind, since_issue);
    since_issue = 0;
    return rate;
  };
  auto issue = [&](double b) {
    ops.push_back(Op{net.collective_s(b, W, Collective::all_gather), overlapped(b, Collective::all_gather),
                     half_sent_bytes(b, W), true});
    return static_cast<int>(ops.size()) - 1;
  };
  // Task k's gather, issued by task `by` (k itself on demand, or the task
  // before it, prefetching): the copy is charged to `by` (on demand it comes
  // before the gather in the trainer and after it here: the same time in series).
  std::vector<bool> gather_issued(tasks.size(), false);
  auto issue_gather = [&](std::size_t k, Task& by) {
    if (tasks[k].gather_part < 0 || gather_issued[k]) return;
    gather_issued[k] = true;
    const auto elements = static_cast<double>(group_elements[static_cast<std::size_t>(tasks[k].gather_part)]);
    by.seconds += gather_copy_s(elements);
    if (gathers) gather_op[k] = issue(elements * pbytes);
  };
  for (std::size_t k = 0; k < tasks.size(); ++k) {
    Task& t = tasks[k];
    issue_gather(k, t);
    if (t.prefetch >= 0) issue_gather(static_cast<std::size_t>(t.prefetch), t);
    if (t.carries_gathers)
      for (std::size_t f = ns; f-- > 0;)  // forward order: the embedding first
        if (carried_op[group_of(f)] < 0)
          carried_op[group_of(f)] = issue(static_cast<double>(group_elements[group_of(f)]) * pbytes);
    t.needs = t.wait_all ? static_cast<int>(ops.size()) - 1 : gather_op[k];
    if (t.carried_group >= 0) t.needs = carried_op[static_cast<std::size_t>(t.carried_group)];
    for (int b : t.window_waits) {  // ops finish in issue order: waiting for the latest covers the others
      const int op = bucket_op[static_cast<std::size_t>(t.micro)][static_cast<std::size_t>(b)];
      if (op < 0) throw std::logic_error("zero replay: a gradient slot waits for a bucket not reduced yet");
      t.needs = std::max(t.needs, op);
    }
    t.issued_by_start = ops.size();
    since_issue += t.seconds;
    for (std::size_t b : t.reduces) {
      const double bytes = static_cast<double>(buckets[b].count) * p.grad_bytes;
      // Stage 0 all-reduces each bucket; ZeRO reduce-scatters it into the shards.
      const Collective kind = z.stage == 0 ? Collective::all_reduce : Collective::reduce_scatter;
      ops.push_back(Op{net.collective_s(bytes, W, kind), overlapped(bytes, kind),
                       z.stage == 0 ? allreduce_sent_bytes(bytes, W) : half_sent_bytes(bytes, W)});
      bucket_op[static_cast<std::size_t>(t.micro)][b] = static_cast<int>(ops.size()) - 1;
    }
    if (t.gather_after_bytes > 0) issue(t.gather_after_bytes);
    t.issued_by_end = ops.size();
  }

  // The replay: one task and one op at a time; both active, each at its overlapped rate.
  ZeroStepResult r;
  for (const Task& t : tasks) {
    r.recompute_s += t.recompute;
    if (!t.wait_all) r.compute_s += t.seconds;  // the optimizer and the end of the step are not model compute
  }
  r.optimizer_s = opt.seconds;
  for (const Op& op : ops) {
    r.sent_bytes += op.sent;
    if (op.gather) r.gathered_bytes += op.sent;
  }
  r.collectives = static_cast<int>(ops.size());
  constexpr double inf = std::numeric_limits<double>::infinity();
  std::vector<bool> done(ops.size(), false);
  double t = 0, task_left = 0, op_left = 0;
  std::size_t ti = 0, oi = 0, issued = 0;
  bool started = false, running = false, communicating = false;
  for (;;) {
    while (ti < tasks.size() && !running) {
      const Task& k = tasks[ti];
      if (!started) {
        started = true;
        issued = std::max(issued, k.issued_by_start);
      }
      if (k.needs >= 0 && !done[static_cast<std::size_t>(k.needs)]) break;  // waits for the channel
      if (k.seconds > 0) {
        running = true;
        task_left = k.seconds;
        break;
      }
      issued = std::max(issued, k.issued_by_end);
      ++ti, started = false;
    }
    if (!communicating && oi < issued) {
      communicating = true;
      op_left = ops[oi].work;
    }
    if (!running && !communicating) {
      if (ti < tasks.size()) throw std::logic_error("zero replay: a task waits for an op never issued");
      break;
    }
    // host_calls: the collective moves only while the host is in MPI, i.e. waiting for it.
    const bool moving = communicating && (z.progress == CommProgress::engine || !running);
    const double rc = moving ? ops[oi].rate.compute_rate : 1.0;
    const double rm = running && moving ? ops[oi].rate.comm_rate : 1.0;
    const double dt_c = running ? task_left / rc : inf;
    const double dt_m = moving ? op_left / rm : inf;
    const double dt = std::min(dt_c, dt_m);
    if (!running) r.exposed_s += dt;
    t += dt;
    if (running) task_left -= dt * rc;
    if (moving) op_left -= dt * rm;
    if (running && dt_c <= dt_m) {
      running = false;
      issued = std::max(issued, tasks[ti].issued_by_end);
      ++ti, started = false;
    }
    if (moving) r.comm_s += dt;  // host_calls: an op waiting for the host is not busy
    if (moving && dt_m <= dt_c) {
      done[oi++] = true;
      communicating = false;
    }
  }
  r.step_s = t;
  return r;
}

}  // namespace vitscale::scaling
