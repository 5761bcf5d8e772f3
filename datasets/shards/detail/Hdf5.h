#pragma once
// Thin RAII over the HDF5 C API for the shard writer and reader. HDF5's own
// error printing is switched off; failures throw DataError with the file, the
// operation and HDF5's innermost message.

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kmidi::shards::detail {

/// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      closer_ = o.closer_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }
  /// Closes now; reports failure (a close can be where data reaches the disk).
  herr_t close();
  void reset() { (void)close(); }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

/// Switches off HDF5's automatic error printing (once per process).
void quiet_errors();

/// Caps HDF5's free lists (memory it keeps for reuse) at 256 KB per kind, once
/// per process: a writer's memory must not grow with what it has written.
void bound_free_lists();

/// HDF5's innermost error message on this thread's stack, or "".
std::string last_error();

/// Throws DataError("<where>: <what>: <HDF5 message>") when `status` < 0.
void check(herr_t status, const std::string& where, const std::string& what);
/// Returns `id`, or throws like check() when it is negative.
hid_t check_id(hid_t id, const std::string& where, const std::string& what);

Handle file_handle(hid_t id, const std::string& where, const std::string& what);
Handle dataset_handle(hid_t id, const std::string& where, const std::string& what);
Handle space_handle(hid_t id, const std::string& where, const std::string& what);
Handle type_handle(hid_t id, const std::string& where, const std::string& what);
Handle plist_handle(hid_t id, const std::string& where, const std::string& what);
Handle group_handle(hid_t id, const std::string& where, const std::string& what);
Handle attribute_handle(hid_t id, const std::string& where, const std::string& what);

/// A variable-length UTF-8 string type.
Handle vl_string_type(const std::string& where);

// Attributes on a file, group or dataset.
void write_attribute(hid_t object, const std::string& name, const std::string& value, const std::string& where);
void write_attribute(hid_t object, const std::string& name, int64_t value, const std::string& where);
bool has_attribute(hid_t object, const std::string& name);
std::string read_string_attribute(hid_t object, const std::string& name, const std::string& where);
int64_t read_int_attribute(hid_t object, const std::string& name, const std::string& where);

/// Number of elements of a 1-D dataset.
int64_t dataset_length(hid_t dataset, const std::string& where, const std::string& name);

}  // namespace kmidi::shards::detail
