#include "tools/vit_bench/bench_table.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace vitscale::bench {

std::string fmt(double v, int prec) {
  if (v < 0) return "-";
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(prec);
  s << v;
  return s.str();
}

double copy_ceiling_gbs(const Ceilings& c, double bytes) {
  // The fastest copy that moves at least as much: a working set of this size
  // can move at least that fast (smaller copies are dominated by overheads).
  double best = 0;
  for (const CopyPoint& p : c.copy_curve)
    if (p.bytes >= bytes) best = std::max(best, p.gbs);
  if (best > 0) return best;
  return c.copy_curve.empty() ? c.copy_gbs : c.copy_curve.back().gbs;
}

void write_reports(const std::vector<BenchRow>& rows, const Ceilings& c, const std::string& dir,
                   const std::string& header) {
  const std::string unit = c.flop_unit_name;
  std::ostringstream md, csv;
  md << header << "\n\n| model | op | dtype | shape | ours µs | GB/s | " << unit
     << " | % of ceiling | LibTorch µs | speed-up | note |\n"
     << "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|\n";
  csv << "model,op,dtype,shape,us,gbs,flop_rate,frac_of_ceiling,torch_us,speedup,note\n";
  for (const BenchRow& r : rows) {
    const double gbs = r.bytes > 0 ? r.bytes / (r.us * 1e3) : -1;
    const double rate = r.flops > 0 ? r.flops / (r.us * 1e-6) / c.flop_unit : -1;  // in `unit`
    const double frac = r.flops > 0 ? rate * c.flop_unit / c.compute_flops : (r.bytes > 0 ? gbs / copy_ceiling_gbs(c, r.bytes) : -1);
    const double speedup = r.torch_us > 0 ? r.torch_us / r.us : -1;
    md << "| " << r.model << " | " << r.op << " | " << r.dtype << " | " << r.shape << " | " << fmt(r.us) << " | "
       << fmt(gbs, 0) << " | " << fmt(rate) << " | " << (frac > 0 ? fmt(100 * frac, 0) + "%" : "-") << " | "
       << fmt(r.torch_us) << " | " << (speedup > 0 ? fmt(speedup, 2) + "×" : "-") << " | " << r.note << " |\n";
    csv << r.model << ',' << r.op << ',' << r.dtype << ",\"" << r.shape << "\"," << r.us << ',' << gbs << ',' << rate
        << ',' << frac << ',' << r.torch_us << ',' << speedup << ",\"" << r.note << "\"\n";
  }
  std::cout << md.str();
  if (!dir.empty()) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/results.md") << md.str();
    std::ofstream(dir + "/results.csv") << csv.str();
    std::cout << "wrote " << dir << "/results.md and results.csv\n";
  }
}

}  // namespace vitscale::bench
