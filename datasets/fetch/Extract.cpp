#include "datasets/fetch/Extract.h"

#include <archive.h>
#include <archive_entry.h>

#include <memory>

#include "core/Errors.h"

namespace kmidi::fetch {
namespace {

using Reader = std::unique_ptr<archive, decltype(&archive_read_free)>;
using Writer = std::unique_ptr<archive, decltype(&archive_write_free)>;

std::string error_of(archive* a) {
  const char* s = archive_error_string(a);
  return s ? s : "unknown libarchive error";
}

void copy_data(archive* in, archive* out, const std::string& where) {
  const void* buf = nullptr;
  size_t size = 0;
  la_int64_t offset = 0;
  for (;;) {
    const int r = archive_read_data_block(in, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) return;
    if (r < ARCHIVE_WARN) throw DataError(where + ": " + error_of(in));
    if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN) throw DataError(where + ": " + error_of(out));
  }
}

/// A relative path without ".." parts: it stays under the folder it is joined to.
bool inside(const std::string& path) {
  if (path.empty() || path.front() == '/') return false;
  size_t start = 0;
  for (;;) {
    const size_t slash = path.find('/', start);
    if (path.compare(start, slash == std::string::npos ? std::string::npos : slash - start, "..") == 0) return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

}  // namespace

ExtractSummary extract_archive(const std::string& archive_path, const std::string& dir) {
  Reader in(archive_read_new(), &archive_read_free);
  Writer out(archive_write_disk_new(), &archive_write_free);
  if (!in || !out) throw std::runtime_error("libarchive: cannot allocate a reader or writer");
  archive_read_support_format_zip(in.get());
  archive_read_support_format_tar(in.get());
  archive_read_support_format_gnutar(in.get());
  archive_read_support_filter_gzip(in.get());
  archive_read_support_filter_bzip2(in.get());
  archive_read_support_filter_xz(in.get());
  // Never write outside `dir`: entry names are checked below (no absolute path, no ".."), and
  // libarchive refuses "..", and writing through a symlink, in the prefixed paths too.
  archive_write_disk_set_options(out.get(),
                                 ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS);
  archive_write_disk_set_standard_lookup(out.get());
  if (archive_read_open_filename(in.get(), archive_path.c_str(), 1 << 16) != ARCHIVE_OK) {
    throw DataError(archive_path + ": cannot open as an archive: " + error_of(in.get()));
  }
  ExtractSummary summary;
  for (;;) {
    archive_entry* entry = nullptr;
    const int r = archive_read_next_header(in.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw DataError(archive_path + ": corrupt archive: " + error_of(in.get()));
    const std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    const std::string where = archive_path + ": entry '" + name + "'";
    if (!inside(name)) throw DataError(where + ": a path outside the data set's folder is refused");
    archive_entry_set_pathname(entry, (dir + "/" + name).c_str());
    if (const char* link = archive_entry_hardlink(entry)) {
      if (!inside(link)) throw DataError(where + ": a hard link outside the data set's folder is refused");
      archive_entry_set_hardlink(entry, (dir + "/" + link).c_str());
    }
    if (archive_write_header(out.get(), entry) < ARCHIVE_WARN) throw DataError(where + ": " + error_of(out.get()));
    if (archive_entry_size(entry) > 0) copy_data(in.get(), out.get(), where);
    if (archive_write_finish_entry(out.get()) < ARCHIVE_WARN) throw DataError(where + ": " + error_of(out.get()));
    if (archive_entry_filetype(entry) == AE_IFREG) {
      ++summary.files;
      summary.bytes += archive_entry_size(entry);
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) throw DataError(dir + ": " + error_of(out.get()));
  return summary;
}

}  // namespace kmidi::fetch
