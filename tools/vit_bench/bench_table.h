// bench_table.h — vit_bench's result rows and their report, shared by the
// CUDA and the CPU benchmarks: one markdown table (stdout and results.md) and
// results.csv, each row's rate set against the ceiling measured in the same
// run (GEMM-like rows: FLOP/s over the GEMM ceiling; the others: bytes read +
// written over the copy ceiling).
#pragma once

#include <string>
#include <vector>

namespace vitscale::bench {

struct BenchRow {
  std::string model, op, dtype, shape;
  double us = 0, bytes = 0, flops = 0;  // median µs per call; bytes moved and FLOPs per call (0: not counted)
  double torch_us = -1;                 // LibTorch's time (-1: none)
  std::string note;
};

// A copy's rate at one size: its bytes read + written, and GB/s.
struct CopyPoint {
  double bytes = 0, gbs = 0;
};

struct Ceilings {
  double copy_gbs = 0;  // GB/s, bytes read + written, of the largest copy
  // Optional: the copy's rate by size (ascending). A row that moves B bytes is
  // set against the fastest copy that moves at least B (an op whose data sits
  // in cache is compared with copies that fit there too); empty: copy_gbs.
  std::vector<CopyPoint> copy_curve;
  double compute_flops = 0;    // FLOP/s of the large GEMM
  std::string compute_source;  // whose GEMM set it ("OpenBLAS", "vitscale"); may be empty
  double flop_unit = 1e12;     // the table's compute column: 1e12 (TFLOP/s) or 1e9 (GFLOP/s)
  std::string flop_unit_name = "TFLOP/s";
};

std::string fmt(double v, int prec = 1);                   // "-" for a negative (missing) value
double copy_ceiling_gbs(const Ceilings& c, double bytes);  // the bandwidth ceiling for a row moving `bytes`

// Prints the table to stdout; with `dir`, also writes results.md and results.csv there.
void write_reports(const std::vector<BenchRow>& rows, const Ceilings& ceilings, const std::string& dir,
                   const std::string& header);

}  // namespace vitscale::bench
