#pragma once
// The catalogue of public data sets kmidi can fetch (data/catalogue.yaml):
// where each one is published, what it weighs, its digest where the
// publisher (or a registry that pins it) gives one, its licence, and how its
// archive is laid out.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kmidi::fetch {

/// One data set of the catalogue.
struct CatalogueEntry {
  std::string name;         ///< the key users type: `kmidi fetch-data emopia`
  std::string title;        ///< human name, e.g. "EMOPIA 1.0"
  std::string url;          ///< http(s) address of the archive
  std::string archive;      ///< "zip", "tar.gz", "tar" or "file" (a single file, not extracted)
  std::optional<int64_t> size_bytes;  ///< exact size where published; checked after download
  std::string size_note;    ///< the publisher's rounded size, for display ("about 57 MB")
  std::string sha256;       ///< lower-case hex; empty where none is published
  std::string sha256_source;  ///< where the digest was published
  std::string licence;      ///< short licence name, e.g. "CC BY-NC-SA 4.0"
  std::string notice;       ///< the licence notice printed before use
  bool non_commercial = false;  ///< research / non-commercial use only
  std::string dest;         ///< folder under --to, e.g. "emopia/EMOPIA_1.0" (the layout configs expect)
  std::string archive_root; ///< the folder inside the archive that becomes `dest`; empty: the archive's single top folder
  std::string layout;       ///< what the data set holds, for humans
};

struct Catalogue {
  std::string path;  ///< the file it was read from
  std::vector<CatalogueEntry> entries;

  /// The entry named `name`, or nullptr.
  const CatalogueEntry* find(const std::string& name) const;
  /// "a, b, c": the names, for error messages.
  std::string names() const;
};

/// Reads and validates a catalogue file; throws config::ConfigError naming
/// FILE:LINE and the entry for every mistake (missing url, bad digest, ...).
Catalogue load_catalogue(const std::string& path);

/// The archive kind a URL's file name implies ("zip", "tar.gz", "tar", or
/// "file" for anything else).
std::string archive_kind_from_url(const std::string& url);

/// The file name at the end of a URL's path (no query), e.g. "lmd_full.tar.gz".
std::string url_file_name(const std::string& url);

}  // namespace kmidi::fetch
