// loader_bench.cpp — how many images per second one worker thread of the data pipeline prepares.
//
// Workload: CIFAR-shaped (3x32x32) training augmentation, random crop with
// padding 4 + horizontal flip, as the loader does it. Measured three ways:
//   kernel        augment_sample into a batch buffer, per thread, no loader
//   + normalise   the same followed by normalize_image to float (what the CPU
//                 path's patchify does to each image after the loader)
//   loader        the prefetching Loader end to end (uint8 batches, ring of
//                 slots, the consumer releasing each batch at once)
// each with 1 and with 2 threads. Real CIFAR-10 is used when found (--data-dir
// or ./data/cifar-10-batches-bin), else synthetic 3x32x32 data; the output says which.
// The bar (docs/results/loader_bench.md): >= 50,000 images/s on one core.
#include <CLI/CLI.hpp>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset_registry.h"
#include "data/image_ops.h"
#include "data/loader.h"
#include "data/rng.h"

using namespace vitscale::data;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string dataset = "auto";
  std::string data_dir;
  int batch_size = 128;
  double seconds = 1.5;
  int randaugment_ops = 0;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU seconds used by this thread / this process: on a shared machine, images per
// CPU-second is the figure that does not depend on what else is running.
double cpu_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Rate {
  double per_wall_second = 0.0;  // images / wall-clock second, all threads together
  double per_cpu_second = 0.0;   // images / CPU-second of the working threads
};

// One thread's loop: augment (and normalise) batches of images for `seconds`; returns images
// done, and the thread's CPU seconds in `cpu`.
std::int64_t augment_loop(const Dataset& d, const AugmentConfig& config, int batch, bool normalise, int thread,
                          double seconds, double* cpu = nullptr) {
  const std::size_t image_bytes = d.image_bytes();
  std::vector<std::uint8_t> out(static_cast<std::size_t>(batch) * image_bytes);   // (B, C, H, W) uint8
  std::vector<float> normalised(normalise ? out.size() : 0);                       // (B, C, H, W) float
  AugmentScratch scratch;
  std::int64_t done = 0;
  std::int64_t index = thread * 7919 % d.count;
  const double cpu0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
  const auto t0 = Clock::now();
  while (seconds_since(t0) < seconds) {
    for (int j = 0; j < batch; ++j) {
      const std::uint64_t key = derive_key(1, RngStream::sample, 0, static_cast<std::uint64_t>(done + j));
      augment_sample(d.image(index), d.channels, d.height, d.width, config, key, out.data() + j * image_bytes,
                     scratch);
      index = index + 1 == d.count ? 0 : index + 1;
    }
    if (normalise)
      normalize_batch(out.data(), batch, d.channels, d.height, d.width, d.normalization, normalised.data());
    done += batch;
  }
  if (cpu) *cpu = cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - cpu0;
  return done;
}

// Images/s of `threads` threads running augment_loop side by side.
Rate run_kernel(const Dataset& d, const AugmentConfig& config, int batch, bool normalise, int threads,
                  double seconds) {
  augment_loop(d, config, batch, normalise, 0, 0.2);  // warm-up
  std::vector<std::int64_t> counts(static_cast<std::size_t>(threads), 0);
  std::vector<double> cpu(static_cast<std::size_t>(threads), 0.0);
  std::vector<std::thread> pool;
  const auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      const auto i = static_cast<std::size_t>(t);
      counts[i] = augment_loop(d, config, batch, normalise, t, seconds, &cpu[i]);
    });
  for (auto& th : pool) th.join();
  const double elapsed = seconds_since(t0);
  std::int64_t total = 0;
  double total_cpu = 0.0;
  for (int t = 0; t < threads; ++t) total += counts[static_cast<std::size_t>(t)], total_cpu += cpu[static_cast<std::size_t>(t)];
  return {static_cast<double>(total) / elapsed, static_cast<double>(total) / total_cpu};
}

// Images/s through the Loader with `workers` threads (CPU time: the whole process,
// consumer included, which only waits and releases).
Rate run_loader(const Dataset& d, const AugmentConfig& config, int batch, int workers, double seconds) {
  LoaderConfig lc;
  lc.batch_size = batch;
  lc.seed = 1;
  lc.augment = config;
  lc.num_workers = workers;
  lc.prefetch_batches = 4;
  Loader loader(d, lc);
  for (int i = 0; i < 8; ++i) loader.next();  // warm-up: threads started, ring filled once
  std::int64_t images = 0;
  const double cpu0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
  const auto t0 = Clock::now();
  while (seconds_since(t0) < seconds) {
    BatchLease lease = loader.next();
    images += lease->size;
  }
  const Rate rate{static_cast<double>(images) / seconds_since(t0),
                  static_cast<double>(images) / (cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0)};
  loader.stop();
  return rate;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"vit_loader_bench: images/s per worker thread of the data pipeline (crop+flip[+normalise])"};
  app.add_option("--dataset", opt.dataset, "cifar10, synthetic, or auto (cifar10 when found, else synthetic)");
  app.add_option("--data-dir", opt.data_dir, "where CIFAR-10 lives (default: the usual places)");
  app.add_option("--batch-size", opt.batch_size, "images per batch")->check(CLI::Range(1, 4096));
  app.add_option("--seconds", opt.seconds, "seconds per measurement")->check(CLI::Range(0.1, 60.0));
  app.add_option("--randaugment-ops", opt.randaugment_ops, "also apply RandAugment with N ops (magnitude 9)")
      ->check(CLI::Range(0, 4));
  CLI11_PARSE(app, argc, argv);

  try {
    Dataset d;
    std::string why;
    if (opt.dataset == "cifar10" || opt.dataset == "auto") {
      try {
        d = load_dataset("cifar10", opt.data_dir, Split::train);
      } catch (const std::exception& e) {
        if (opt.dataset == "cifar10") throw;
        why = e.what();
      }
    } else if (opt.dataset != "synthetic") {
      throw std::runtime_error("--dataset must be cifar10, synthetic or auto, got '" + opt.dataset + "'");
    }
    if (d.count == 0) {
      LoadOptions lo;  // 50000 images of 3x32x32, 10 classes: CIFAR-10's shape
      d = load_dataset("synthetic", "", Split::train, lo);
    }
    std::printf("data: %s\n", d.describe().c_str());
    if (!why.empty()) std::printf("      (CIFAR-10 not used: %s)\n", why.c_str());
    AugmentConfig config;
    config.crop_padding = 4;
    config.horizontal_flip = true;
    config.randaugment_ops = opt.randaugment_ops;
    std::printf("work: random crop (pad 4) + horizontal flip%s, batch %d, %.1f s per measurement, %u hardware threads\n\n",
                opt.randaugment_ops ? " + RandAugment" : "", opt.batch_size, opt.seconds,
                std::thread::hardware_concurrency());
    std::printf("%-36s %7s %12s %16s %16s\n", "measurement", "threads", "images/s", "images/s/thread",
                "images/CPU-s");
    const std::string suffix = opt.randaugment_ops ? " +RA" + std::to_string(opt.randaugment_ops) : "";
    auto row = [&suffix](const char* what, int threads, Rate r) {
      std::printf("%-36s %7d %12.0f %16.0f %16.0f\n", (what + suffix).c_str(), threads, r.per_wall_second,
                  r.per_wall_second / threads, r.per_cpu_second);
    };
    Rate one_thread{};
    for (int threads : {1, 2}) {
      const Rate r = run_kernel(d, config, opt.batch_size, false, threads, opt.seconds);
      if (threads == 1) one_thread = r;
      row("crop+flip", threads, r);
    }
    for (int threads : {1, 2})
      row("crop+flip+normalise(float)", threads, run_kernel(d, config, opt.batch_size, true, threads, opt.seconds));
    for (int workers : {1, 2})
      row("Loader end to end (uint8)", workers, run_loader(d, config, opt.batch_size, workers, opt.seconds));
    std::printf("\nimages/CPU-s: images per CPU-second actually used (unaffected by other load on the machine)\n");
    std::printf("bar: >= 50000 images/s on one core: %s (crop+flip%s uint8, 1 thread: %.0f images/s wall, %.0f per CPU-s)\n",
                std::min(one_thread.per_wall_second, one_thread.per_cpu_second) >= 50000.0 ? "met" : "NOT met",
                suffix.c_str(), one_thread.per_wall_second, one_thread.per_cpu_second);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit_loader_bench: %s\n", e.what());
    return 1;
  }
}
