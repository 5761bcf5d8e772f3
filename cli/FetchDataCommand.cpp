// kmidi fetch-data NAME|URL... [--to DIR]: downloads public data sets named in
// data/catalogue.yaml (or given by URL), verifies them and extracts them under
// DIR, printing each one's licence first (datasets/fetch/Fetch.h).

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cli/Commands.h"
#include "core/Errors.h"
#include "datasets/fetch/Catalogue.h"
#include "datasets/fetch/Fetch.h"

namespace kmidi::cli {
namespace {

struct FetchArgs {
  std::vector<std::string> targets;  // catalogue names or http(s) URLs
  std::string to, catalogue = KMIDI_CATALOGUE;
  fetch::DownloadOptions download;
  bool keep_archive = false, no_progress = false, list = false;
};

bool is_url(const std::string& s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }

/// --to, else $KMIDI_DATA_ROOT (where the configs look), else the configs' default.
std::string target_dir(const FetchArgs& args) {
  if (!args.to.empty()) return args.to;
  const char* root = std::getenv("KMIDI_DATA_ROOT");
  if (root != nullptr && *root != '\0') return root;
  return KMIDI_DEFAULT_DATA_ROOT;
}

void print_list(const fetch::Catalogue& catalogue) {
  for (const fetch::CatalogueEntry& e : catalogue.entries) {
    std::printf("%-14s %-34s %-16s %s%s\n", e.name.c_str(), e.title.c_str(), e.licence.c_str(),
                e.size_note.empty() ? "size not published" : e.size_note.c_str(),
                e.sha256.empty() ? "" : ", sha256 pinned");
  }
}

void run(const FetchArgs& args) {
  const fetch::Catalogue catalogue = fetch::load_catalogue(args.catalogue);
  if (args.list) {
    print_list(catalogue);
    return;
  }
  if (args.targets.empty()) throw UsageError("fetch-data: name a data set (" + catalogue.names() + ") or a URL, or --list");
  // Resolve every name before downloading anything.
  std::vector<fetch::CatalogueEntry> entries;
  for (const std::string& t : args.targets) {
    if (is_url(t)) {
      entries.push_back(fetch::entry_for_url(t));
    } else if (const fetch::CatalogueEntry* e = catalogue.find(t)) {
      entries.push_back(*e);
    } else {
      throw UsageError("fetch-data: '" + t + "' is neither an http(s) URL nor a data set of " + catalogue.path +
                       " (" + catalogue.names() + ")");
    }
  }
  fetch::FetchOptions options;
  options.to_dir = target_dir(args);
  options.download = args.download;
  options.download.progress = !args.no_progress;
  options.keep_archive = args.keep_archive;
  options.download.validate();
  for (const fetch::CatalogueEntry& e : entries) {
    std::printf("%s", fetch::licence_text(e).c_str());
    std::fflush(stdout);
    const fetch::FetchResult r = fetch::fetch_dataset(e, options);
    if (r.already_present) {
      std::printf("  already present: %s (delete it to fetch again)\n", r.path.c_str());
    } else {
      std::printf("  fetched %s: %lld files, sha256 %s (%s)%s\n", r.path.c_str(), static_cast<long long>(r.files),
                  r.sha256.c_str(),
                  r.digest_checked_against.empty() ? "first download: recorded in the lock file"
                                                   : ("matches the " + r.digest_checked_against).c_str(),
                  r.download.resumed_from > 0 ? (" resumed at byte " + std::to_string(r.download.resumed_from)).c_str()
                                              : "");
    }
    std::fflush(stdout);
  }
}

}  // namespace

void register_fetch_data(CLI::App& app) {
  auto args = std::make_shared<FetchArgs>();
  auto* cmd = add_command(app, "fetch-data");
  cmd->add_option("targets", args->targets, "catalogue names (see --list) or http(s) URLs of zip/tar/tar.gz archives");
  cmd->add_option("--to", args->to,
                  "folder that receives the data sets (default: $KMIDI_DATA_ROOT, else ../shared/data beside the repo)");
  cmd->add_option("--catalogue", args->catalogue, "catalogue file")->capture_default_str()->check(CLI::ExistingFile);
  cmd->add_option("--connect-timeout", args->download.connect_timeout_s, "seconds to connect")->capture_default_str();
  cmd->add_option("--low-speed-timeout", args->download.low_speed_timeout_s,
                  "seconds without data after which an attempt ends (and is retried)")
      ->capture_default_str();
  cmd->add_option("--retries", args->download.retries,
                  "further attempts after a timeout, dropped connection or HTTP 5xx; each resumes the partial file")
      ->capture_default_str();
  cmd->add_option("--retry-wait", args->download.retry_wait_s, "seconds before the first retry, doubled each time")
      ->capture_default_str();
  cmd->add_flag("--keep-archive", args->keep_archive, "keep the verified archive in DIR/.kmidi-downloads/");
  cmd->add_flag("--no-progress", args->no_progress, "no progress bar");
  cmd->add_flag("--list", args->list, "list the catalogue and exit");
  cmd->callback([args] { run(*args); });
}

}  // namespace kmidi::cli
