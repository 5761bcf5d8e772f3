#include "datasets/spectocloud/SpectocloudCache.h"

#include <hdf5.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/shards/detail/Hdf5.h"
#include "datasets/spectocloud/CloudTarget.h"

namespace kmidi::spectocloud {

namespace h5 = shards::detail;
using h5::check;
using h5::Handle;

namespace {

constexpr const char* kFormat = "kmidi-spectocloud-cache";

/// Writes a whole array [N, ...] with one item per chunk.
void write_array(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type, const at::Tensor& tensor,
                 int deflate, const std::string& where) {
  const std::string what = "cannot write '" + name + "'";
  std::vector<hsize_t> dims(tensor.sizes().begin(), tensor.sizes().end());
  std::vector<hsize_t> chunk = dims;
  chunk[0] = 1;
  Handle space = h5::space_handle(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), where, what);
  Handle dcpl = h5::plist_handle(H5Pcreate(H5P_DATASET_CREATE), where, what);
  if (dims[0] > 0) {
    check(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), where, what);
    if (deflate > 0) {
      check(H5Pset_shuffle(dcpl.get()), where, what);
      check(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(deflate)), where, what);
    }
  }
  Handle d = h5::dataset_handle(H5Dcreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                                where, what);
  if (dims[0] > 0) {
    const at::Tensor c = tensor.contiguous();
    check(H5Dwrite(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, c.data_ptr()), where, what);
  }
  check(d.close(), where, what);
}

void write_strings(hid_t file, const std::string& name, const std::vector<std::string>& values, const std::string& where) {
  const std::string what = "cannot write '" + name + "'";
  Handle type = h5::vl_string_type(where);
  hsize_t dims[1] = {values.size()};
  Handle space = h5::space_handle(H5Screate_simple(1, dims, nullptr), where, what);
  Handle d = h5::dataset_handle(H5Dcreate2(file, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                                where, what);
  std::vector<const char*> raw;
  raw.reserve(values.size());
  for (const std::string& s : values) raw.push_back(s.c_str());
  if (!raw.empty()) check(H5Dwrite(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), where, what);
  check(d.close(), where, what);
}

at::Tensor read_array(hid_t file, const std::string& name, hid_t mem_type, at::ScalarType dtype,
                      const std::vector<int64_t>& expected, const std::string& where) {
  Handle d = h5::dataset_handle(H5Dopen2(file, name.c_str(), H5P_DEFAULT), where, "missing dataset '" + name + "'");
  Handle space = h5::space_handle(H5Dget_space(d.get()), where, "cannot read '" + name + "'");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  const std::vector<int64_t> shape(dims.begin(), dims.end());
  if (shape != expected) {
    auto text = [](const std::vector<int64_t>& s) {
      std::string t = "[";
      for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
      return t + "]";
    };
    throw DataError(where + ": '" + name + "' has shape " + text(shape) + ", expected " + text(expected));
  }
  at::Tensor out = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  if (out.numel() > 0) check(H5Dread(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()), where, "cannot read '" + name + "'");
  return out;
}

std::vector<std::string> read_strings(hid_t file, const std::string& name, int64_t expected, const std::string& where) {
  Handle d = h5::dataset_handle(H5Dopen2(file, name.c_str(), H5P_DEFAULT), where, "missing dataset '" + name + "'");
  const int64_t n = h5::dataset_length(d.get(), where, name);
  if (n != expected) {
    throw DataError(where + ": '" + name + "' has " + std::to_string(n) + " entries, expected " + std::to_string(expected));
  }
  std::vector<std::string> out(static_cast<size_t>(n));
  if (n == 0) return out;
  Handle mem = h5::vl_string_type(where);
  std::vector<char*> raw(static_cast<size_t>(n), nullptr);
  check(H5Dread(d.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), where, "cannot read '" + name + "'");
  for (size_t i = 0; i < raw.size(); ++i) out[i] = raw[i] ? raw[i] : "";
  Handle space = h5::space_handle(H5Dget_space(d.get()), where, "cannot read '" + name + "'");
  H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
  return out;
}

}  // namespace

CacheItems CacheItems::select(const std::vector<int64_t>& rows) const {
  CacheItems out;
  const at::Tensor index = torch::tensor(rows, torch::kLong);
  out.spectrogram = spectrogram.index_select(0, index);
  out.emotion = emotion.index_select(0, index);
  out.midi_features = midi_features.index_select(0, index);
  out.has_midi = has_midi.index_select(0, index);
  out.has_emotion = has_emotion.index_select(0, index);
  out.positions = positions.index_select(0, index);
  out.colors = colors.index_select(0, index);
  out.properties = properties.index_select(0, index);
  out.offset_s = offset_s.index_select(0, index);
  for (int64_t r : rows) {
    const auto i = static_cast<size_t>(r);
    out.id.push_back(id.at(i));
    out.split.push_back(split.at(i));
    out.song.push_back(song.at(i));
    out.audio.push_back(audio.at(i));
    out.midi.push_back(midi.at(i));
  }
  return out;
}

void write_cache(const std::string& path, const CacheHeader& header, const CacheItems& items, int deflate_level) {
  const int64_t n = items.size();
  const int64_t m = header.n_mels, t = header.frames, p = header.points;
  auto require = [&](const at::Tensor& x, std::vector<int64_t> shape, const char* name) {
    if (!x.defined() || x.sizes().vec() != shape) {
      throw UsageError(path + ": items." + name + " has the wrong shape for " + std::to_string(n) + " items");
    }
  };
  require(items.spectrogram, {n, m, t}, "spectrogram");
  require(items.emotion, {n, kEmotionDim}, "emotion");
  require(items.midi_features, {n, kMidiFeatureDim}, "midi_features");
  require(items.has_midi, {n}, "has_midi");
  require(items.has_emotion, {n}, "has_emotion");
  require(items.positions, {n, p, 3}, "positions");
  require(items.colors, {n, p, 4}, "colors");
  require(items.properties, {n, p, 3}, "properties");
  require(items.offset_s, {n}, "offset_s");
  for (const auto* column : {&items.split, &items.song, &items.audio, &items.midi}) {
    if (static_cast<int64_t>(column->size()) != n) throw UsageError(path + ": string columns differ in length");
  }
  if (deflate_level < 0 || deflate_level > 9) throw UsageError(path + ": deflate_level must be in 0..9");

  h5::quiet_errors();
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) files::ensure_dir(parent.string());
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  {
    Handle file = h5::file_handle(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), temp,
                                  "cannot create cache file");
    const hid_t f = file.get();
    h5::write_attribute(f, "format", std::string(kFormat), temp);
    h5::write_attribute(f, "format_version", kCacheFormatVersion, temp);
    h5::write_attribute(f, "target_version", header.target_version, temp);
    h5::write_attribute(f, "n_mels", m, temp);
    h5::write_attribute(f, "frames", t, temp);
    h5::write_attribute(f, "points", p, temp);
    h5::write_attribute(f, "sample_rate", header.sample_rate, temp);
    h5::write_attribute(f, "mel_config", header.mel_config, temp);
    auto floats = [&](const char* name, const at::Tensor& x) {
      write_array(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x.to(torch::kFloat), deflate_level, temp);
    };
    floats("spectrogram", items.spectrogram);
    floats("emotion", items.emotion);
    floats("midi_features", items.midi_features);
    write_array(f, "has_midi", H5T_STD_I8LE, H5T_NATIVE_INT8, items.has_midi.to(torch::kChar), deflate_level, temp);
    write_array(f, "has_emotion", H5T_STD_I8LE, H5T_NATIVE_INT8, items.has_emotion.to(torch::kChar), deflate_level, temp);
    floats("positions", items.positions);
    floats("colors", items.colors);
    floats("properties", items.properties);
    write_array(f, "offset_s", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, items.offset_s.to(torch::kDouble), deflate_level, temp);
    write_strings(f, "id", items.id, temp);
    write_strings(f, "split", items.split, temp);
    write_strings(f, "song", items.song, temp);
    write_strings(f, "audio", items.audio, temp);
    write_strings(f, "midi", items.midi, temp);
    check(H5Fflush(f, H5F_SCOPE_GLOBAL), temp, "cannot flush");
    check(file.close(), temp, "cannot close");
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(temp.c_str());
    throw DataError(path + ": cannot rename " + temp + " into place: " + reason);
  }
}

Cache read_cache(const std::string& path, const std::string& split) {
  h5::quiet_errors();
  if (!std::filesystem::is_regular_file(path)) {
    throw DataError(path + ": spectocloud cache not found; run `kmidi prepare` with a spectocloud config first");
  }
  Handle file = h5::file_handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path, "cannot open cache");
  const hid_t f = file.get();
  if (!h5::has_attribute(f, "format") || h5::read_string_attribute(f, "format", path) != kFormat) {
    throw DataError(path + ": not a spectocloud cache (no format attribute '" + std::string(kFormat) + "')");
  }
  const int64_t version = h5::read_int_attribute(f, "format_version", path);
  if (version != kCacheFormatVersion) {
    throw DataError(path + ": cache format version " + std::to_string(version) + ", this build reads " +
                    std::to_string(kCacheFormatVersion) + "; prepare it again");
  }
  Cache c;
  c.header.target_version = h5::read_int_attribute(f, "target_version", path);
  if (c.header.target_version != kCloudTargetVersion) {
    throw DataError(path + ": target version " + std::to_string(c.header.target_version) + ", this build defines " +
                    std::to_string(kCloudTargetVersion) + "; prepare it again");
  }
  c.header.n_mels = h5::read_int_attribute(f, "n_mels", path);
  c.header.frames = h5::read_int_attribute(f, "frames", path);
  c.header.points = h5::read_int_attribute(f, "points", path);
  c.header.sample_rate = h5::read_int_attribute(f, "sample_rate", path);
  c.header.mel_config = h5::read_string_attribute(f, "mel_config", path);
  Handle ids = h5::dataset_handle(H5Dopen2(f, "id", H5P_DEFAULT), path, "missing dataset 'id'");
  const int64_t n = h5::dataset_length(ids.get(), path, "id");
  const int64_t m = c.header.n_mels, t = c.header.frames, p = c.header.points;
  CacheItems& it = c.items;
  it.spectrogram = read_array(f, "spectrogram", H5T_NATIVE_FLOAT, torch::kFloat, {n, m, t}, path);
  it.emotion = read_array(f, "emotion", H5T_NATIVE_FLOAT, torch::kFloat, {n, kEmotionDim}, path);
  it.midi_features = read_array(f, "midi_features", H5T_NATIVE_FLOAT, torch::kFloat, {n, kMidiFeatureDim}, path);
  it.has_midi = read_array(f, "has_midi", H5T_NATIVE_INT8, torch::kChar, {n}, path);
  it.has_emotion = read_array(f, "has_emotion", H5T_NATIVE_INT8, torch::kChar, {n}, path);
  it.positions = read_array(f, "positions", H5T_NATIVE_FLOAT, torch::kFloat, {n, p, 3}, path);
  it.colors = read_array(f, "colors", H5T_NATIVE_FLOAT, torch::kFloat, {n, p, 4}, path);
  it.properties = read_array(f, "properties", H5T_NATIVE_FLOAT, torch::kFloat, {n, p, 3}, path);
  it.offset_s = read_array(f, "offset_s", H5T_NATIVE_DOUBLE, torch::kDouble, {n}, path);
  it.id = read_strings(f, "id", n, path);
  it.split = read_strings(f, "split", n, path);
  it.song = read_strings(f, "song", n, path);
  it.audio = read_strings(f, "audio", n, path);
  it.midi = read_strings(f, "midi", n, path);
  if (split.empty()) return c;
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < n; ++i) {
    if (it.split[static_cast<size_t>(i)] == split) rows.push_back(i);
  }
  c.items = it.select(rows);
  return c;
}

}  // namespace kmidi::spectocloud
