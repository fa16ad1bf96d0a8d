#include "runtime/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "runtime/vit_model.h"

namespace vitscale {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + ")";
}

namespace {

float bf16_to_float(std::uint16_t h) { return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16); }

float f16_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  if (exp == 0) return std::bit_cast<float>(sign) + (sign ? -1.f : 1.f) * std::ldexp(static_cast<float>(mant), -24);
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

}  // namespace

const NamedTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<std::uint64_t>(in.tellg());
  in.seekg(0);
  std::uint64_t header_len = 0;
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(&header_len), 8))
    fail(path, "truncated: shorter than the 8-byte header length");
  if (header_len > file_size - 8)
    fail(path, "truncated: header of " + std::to_string(header_len) + " bytes but file has " +
                   std::to_string(file_size) + " bytes");
  std::string header(static_cast<std::size_t>(header_len), '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  const std::uint64_t data_size = file_size - 8 - header_len;

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const std::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(path, "header is not a JSON object");

  struct Entry {
    std::string name, dtype;
    std::vector<std::int64_t> shape;
    std::uint64_t begin, end;
  };
  std::vector<Entry> entries;
  SafetensorsFile out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m->is_string()) out.metadata[m.key()] = m->get<std::string>();
      continue;
    }
    try {
      Entry e{it.key(), it->at("dtype").get<std::string>(), it->at("shape").get<std::vector<std::int64_t>>(),
              it->at("data_offsets").at(0).get<std::uint64_t>(), it->at("data_offsets").at(1).get<std::uint64_t>()};
      entries.push_back(std::move(e));
    } catch (const std::exception& ex) {
      fail(path, "tensor '" + it.key() + "' has a malformed header entry: " + ex.what());
    }
  }
  // Tensors in data order, so the file is read front to back.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  std::uint64_t expected_begin = 0;
  std::vector<char> raw;
  for (const Entry& e : entries) {
    std::size_t elem = 0;
    if (e.dtype == "F32")
      elem = 4;
    else if (e.dtype == "BF16" || e.dtype == "F16")
      elem = 2;
    else
      fail(path, "tensor '" + e.name + "' has unsupported dtype " + e.dtype + " (F32, BF16, F16 are read)");
    std::uint64_t numel = 1;
    for (auto d : e.shape) {
      if (d < 0) fail(path, "tensor '" + e.name + "' has a negative dimension");
      numel *= static_cast<std::uint64_t>(d);
    }
    if (e.begin != expected_begin || e.end < e.begin)
      fail(path, "tensor '" + e.name + "' has data offsets that overlap or leave a gap");
    if (e.end - e.begin != numel * elem)
      fail(path, "tensor '" + e.name + "' " + shape_str(e.shape) + " " + e.dtype + " needs " +
                     std::to_string(numel * elem) + " bytes but its offsets span " + std::to_string(e.end - e.begin));
    if (e.end > data_size) fail(path, "truncated: tensor '" + e.name + "' ends past the end of the file");
    expected_begin = e.end;
    raw.resize(static_cast<std::size_t>(e.end - e.begin));
    in.seekg(static_cast<std::streamoff>(8 + header_len + e.begin));
    if (!in.read(raw.data(), static_cast<std::streamsize>(raw.size())))
      fail(path, "read error in tensor '" + e.name + "'");
    NamedTensor t{e.name, e.shape, std::vector<float>(static_cast<std::size_t>(numel))};
    for (std::size_t i = 0; i < t.values.size(); ++i) {
      if (elem == 4) {
        std::memcpy(&t.values[i], raw.data() + 4 * i, 4);
      } else {
        std::uint16_t h;
        std::memcpy(&h, raw.data() + 2 * i, 2);
        t.values[i] = e.dtype == "BF16" ? bf16_to_float(h) : f16_to_float(h);
      }
    }
    out.tensors.push_back(std::move(t));
  }
  if (expected_begin != data_size)
    fail(path, "over-long: " + std::to_string(data_size - expected_begin) + " bytes after the last tensor");
  return out;
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string tmp = (dir / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()))).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error(path + ": cannot create temporary file " + tmp + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string err = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error(path + ": write failed: " + err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error(path + ": fsync/close failed: " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw std::runtime_error(path + ": rename from temporary file failed: " + err);
  }
  // Make the rename itself durable.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  nlohmann::ordered_json header;
  if (!file.metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : file.metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::uint64_t offset = 0;
  for (const auto& t : file.tensors) {
    std::uint64_t numel = 1;
    for (auto d : t.shape) numel *= static_cast<std::uint64_t>(d);
    if (numel != t.values.size())
      throw std::invalid_argument(path + ": tensor '" + t.name + "' shape " + shape_str(t.shape) +
                                  " does not match its " + std::to_string(t.values.size()) + " values");
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 4 * numel}}};
    offset += 4 * numel;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // pad so the data starts 8-byte aligned
  std::string bytes;
  bytes.reserve(8 + h.size() + offset);
  const std::uint64_t n = h.size();
  bytes.append(reinterpret_cast<const char*>(&n), 8);
  bytes += h;
  for (const auto& t : file.tensors)
    bytes.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
  write_file_atomically(path, bytes);
}

void save_weights(const ViTModel& model, const std::string& path, const std::map<std::string, std::string>& metadata) {
  std::vector<float> flat(static_cast<std::size_t>(model.table().total_numel()));
  model.read_params(flat);
  SafetensorsFile f;
  f.metadata = metadata;
  f.metadata["format"] = "pt";  // what timm / safetensors.torch expect
  f.metadata["vitscale_config"] = model.config().describe();
  for (const ParamInfo& p : model.table().params()) {
    const auto first = flat.begin() + p.offset;
    f.tensors.push_back(NamedTensor{p.name, p.shape, std::vector<float>(first, first + p.numel)});
  }
  write_safetensors(path, f);
}

bool is_training_state(const std::string& name) {
  for (const char* prefix : {"optimizer.", kWeightAveragePrefix, "state."})
    if (name.rfind(prefix, 0) == 0) return true;
  return false;
}

bool has_weight_average(const SafetensorsFile& file, const ParamTable& table) {
  return !table.params().empty() && file.find(kWeightAveragePrefix + table.params().front().name) != nullptr;
}

std::vector<float> read_flat_params(const SafetensorsFile& file, const ParamTable& table, const std::string& what,
                                    const std::string& model_description, const std::string& prefix) {
  std::vector<float> flat(static_cast<std::size_t>(table.total_numel()), 0.f);
  std::set<std::string> known;
  for (const ParamInfo& p : table.params()) {
    known.insert(p.name);
    const NamedTensor* t = file.find(prefix + p.name);
    if (!t) throw std::runtime_error(what + ": missing tensor '" + prefix + p.name + "' " + shape_str(p.shape));
    if (t->shape != p.shape)
      throw std::runtime_error(what + ": tensor '" + prefix + p.name + "' has shape " + shape_str(t->shape) +
                               ", the model needs " + shape_str(p.shape));
    std::copy(t->values.begin(), t->values.end(), flat.begin() + p.offset);
  }
  for (const auto& t : file.tensors)
    if (!known.count(t.name) && !is_training_state(t.name))
      throw std::runtime_error(what + ": unexpected tensor '" + t.name + "' " + shape_str(t.shape) +
                               " (not a parameter of " + model_description + ")");
  return flat;
}

void load_weights(ViTModel& model, const SafetensorsFile& file, const std::string& what, const std::string& prefix) {
  model.write_params(read_flat_params(file, model.table(), what, model.config().describe(), prefix));
}

void load_weights(ViTModel& model, const std::string& path) { load_weights(model, read_safetensors(path), path); }

}  // namespace vitscale
