#include "datasets/shards/detail/Hdf5.h"

#include <mutex>

#include "core/Errors.h"

namespace kmidi::shards::detail {

herr_t Handle::close() {
  herr_t status = 0;
  if (id_ >= 0 && closer_) status = closer_(id_);
  id_ = -1;
  return status;
}

void quiet_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

void bound_free_lists() {
  static std::once_flag once;
  // HDF5 keeps freed blocks for reuse, up to 16 MB per kind by default; a
  // long shard write would fill them. 256 KB each is plenty for appends.
  std::call_once(once, [] { H5set_free_list_limits(256 << 10, 64 << 10, 256 << 10, 64 << 10, 256 << 10, 64 << 10); });
}

namespace {

herr_t keep_innermost(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && err && err->desc) *out = err->desc;
  return 0;
}

}  // namespace

std::string last_error() {
  std::string message;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, &message);
  H5Eclear2(H5E_DEFAULT);
  return message;
}

void check(herr_t status, const std::string& where, const std::string& what) {
  if (status >= 0) return;
  const std::string detail = last_error();
  throw DataError(where + ": " + what + (detail.empty() ? "" : ": " + detail));
}

hid_t check_id(hid_t id, const std::string& where, const std::string& what) {
  if (id < 0) check(-1, where, what);
  return id;
}

Handle file_handle(hid_t id, const std::string& w, const std::string& what) { return Handle(check_id(id, w, what), H5Fclose); }
Handle dataset_handle(hid_t id, const std::string& w, const std::string& what) { return Handle(check_id(id, w, what), H5Dclose); }
Handle space_handle(hid_t id, const std::string& w, const std::string& what) { return Handle(check_id(id, w, what), H5Sclose); }
Handle type_handle(hid_t id, const std::string& w, const std::string& what) { return Handle(check_id(id, w, what), H5Tclose); }
Handle plist_handle(hid_t id, const std::string& w, const std::string& what) { return Handle(check_id(id, w, what), H5Pclose); }
Handle group_handle(hid_t id, const std::string& w, const std::string& what) { return Handle(check_id(id, w, what), H5Gclose); }
Handle attribute_handle(hid_t id, const std::string& w, const std::string& what) { return Handle(check_id(id, w, what), H5Aclose); }

Handle vl_string_type(const std::string& where) {
  Handle t = type_handle(H5Tcopy(H5T_C_S1), where, "cannot create a string type");
  check(H5Tset_size(t.get(), H5T_VARIABLE), where, "cannot size a string type");
  check(H5Tset_cset(t.get(), H5T_CSET_UTF8), where, "cannot set UTF-8 on a string type");
  return t;
}

void write_attribute(hid_t object, const std::string& name, const std::string& value, const std::string& where) {
  const std::string what = "cannot write attribute '" + name + "'";
  Handle type = type_handle(H5Tcopy(H5T_C_S1), where, what);
  check(H5Tset_size(type.get(), value.empty() ? 1 : value.size()), where, what);
  check(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), where, what);
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), where, what);
  Handle space = space_handle(H5Screate(H5S_SCALAR), where, what);
  Handle attr = attribute_handle(H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                                 where, what);
  const std::string padded = value.empty() ? std::string(1, '\0') : value;
  check(H5Awrite(attr.get(), type.get(), padded.data()), where, what);
}

void write_attribute(hid_t object, const std::string& name, int64_t value, const std::string& where) {
  const std::string what = "cannot write attribute '" + name + "'";
  Handle space = space_handle(H5Screate(H5S_SCALAR), where, what);
  Handle attr = attribute_handle(
      H5Acreate2(object, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), where, what);
  check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), where, what);
}

bool has_attribute(hid_t object, const std::string& name) {
  const htri_t r = H5Aexists(object, name.c_str());
  if (r < 0) H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

std::string read_string_attribute(hid_t object, const std::string& name, const std::string& where) {
  if (!has_attribute(object, name)) throw DataError(where + ": missing attribute '" + name + "'");
  const std::string what = "cannot read attribute '" + name + "'";
  Handle attr = attribute_handle(H5Aopen(object, name.c_str(), H5P_DEFAULT), where, what);
  Handle type = type_handle(H5Aget_type(attr.get()), where, what);
  if (H5Tget_class(type.get()) != H5T_STRING) throw DataError(where + ": attribute '" + name + "' is not a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    char* text = nullptr;
    Handle mem = vl_string_type(where);
    check(H5Aread(attr.get(), mem.get(), &text), where, what);
    std::string out = text ? text : "";
    H5free_memory(text);
    return out;
  }
  const size_t size = H5Tget_size(type.get());
  std::string buffer(size, '\0');
  check(H5Aread(attr.get(), type.get(), buffer.data()), where, what);
  const size_t nul = buffer.find('\0');
  if (nul != std::string::npos) buffer.resize(nul);
  return buffer;
}

int64_t read_int_attribute(hid_t object, const std::string& name, const std::string& where) {
  if (!has_attribute(object, name)) throw DataError(where + ": missing attribute '" + name + "'");
  const std::string what = "cannot read attribute '" + name + "'";
  Handle attr = attribute_handle(H5Aopen(object, name.c_str(), H5P_DEFAULT), where, what);
  Handle type = type_handle(H5Aget_type(attr.get()), where, what);
  if (H5Tget_class(type.get()) != H5T_INTEGER) throw DataError(where + ": attribute '" + name + "' is not an integer");
  int64_t value = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), where, what);
  return value;
}

int64_t dataset_length(hid_t dataset, const std::string& where, const std::string& name) {
  const std::string what = "cannot read the shape of '" + name + "'";
  Handle space = space_handle(H5Dget_space(dataset), where, what);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) throw DataError(where + ": '" + name + "' is not one-dimensional");
  hsize_t dims[1] = {0};
  check(H5Sget_simple_extent_dims(space.get(), dims, nullptr), where, what);
  return static_cast<int64_t>(dims[0]);
}

}  // namespace kmidi::shards::detail
