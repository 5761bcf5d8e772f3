#pragma once
// kmidi fetch-data's work: download a data set (resuming a partial
// download), verify its SHA-256, extract it, and only then move it under its
// final name, so that a data set folder is either complete and verified or
// absent.
//
// Under the target folder TO:
//   TO/<dest>/                 the data set (catalogue `dest`, e.g. emopia/EMOPIA_1.0)
//   TO/<dest>.fetch.lock       url, sha256, size of the download it came from; a later
//                              fetch of the same name must match this digest
//   TO/.kmidi-downloads/       partial downloads, kept after a failure for the next run
//   TO/<parent>/.<leaf>.fetching-<pid>/   extraction in progress (removed on failure)

#include <cstdint>
#include <string>

#include "datasets/fetch/Catalogue.h"
#include "datasets/fetch/Download.h"

namespace kmidi::fetch {

struct FetchOptions {
  std::string to_dir;        ///< where data sets go (REQUIRED)
  DownloadOptions download;  ///< timeouts, retries, progress
  bool keep_archive = false; ///< keep the verified archive in TO/.kmidi-downloads/
};

struct FetchResult {
  std::string path;              ///< the data set's folder
  bool already_present = false;  ///< the folder existed: nothing was done
  std::string sha256;            ///< digest of the download
  std::string digest_checked_against;  ///< "catalogue", "lock file" or "" (first download: recorded)
  int64_t files = 0;             ///< regular files extracted
  DownloadResult download;
};

/// An entry for a bare URL: named after its file (lmd_full.tar.gz -> lmd_full),
/// licence unknown, no digest (the first download's is recorded in the lock file).
CatalogueEntry entry_for_url(const std::string& url);

/// The licence lines to print before a data set is used.
std::string licence_text(const CatalogueEntry& entry);

/// Path of the lock file that records `entry`'s digest under `to_dir`.
std::string lock_path(const CatalogueEntry& entry, const std::string& to_dir);

/// Fetches one data set. Throws DataError (network, HTTP, corrupt archive,
/// unexpected layout: all naming the URL or the file), CheckFailed (the
/// digest or size differs from the catalogue's or the lock file's; the bad
/// download is deleted) or UsageError (bad options). After any failure no
/// folder exists under the data set's final name.
FetchResult fetch_dataset(const CatalogueEntry& entry, const FetchOptions& options);

}  // namespace kmidi::fetch
