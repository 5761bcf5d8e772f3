#include "datasets/corpus/PrepareConfig.h"

namespace kmidi::corpus {

midi::ReadOptions ReaderConfig::options() const {
  midi::ReadOptions o;
  o.strict = strict;
  o.max_file_bytes = max_file_bytes;
  return o;
}

void ReaderConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("strict", strict, Spec("reject malformed files as mido does; false repairs what it safely can (and counts it)"));
  v.field("max_file_bytes", max_file_bytes, Spec("larger files are refused before reading").positive());
}

void OutputConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("dir", dir, Spec("folder for the shards (<split>.h5), tokenizer.json and prepare_report.json").required());
  v.field("deflate_level", deflate_level, Spec("HDF5 deflate level for shards; 0 stores them uncompressed").min(0).max(9));
  v.field("chunk_elements", chunk_elements,
          Spec("token chunk size; small chunks keep random access by sequence fast").min(256).max(1 << 24));
  v.field("segment_files", segment_files,
          Spec("files per segment of <dir>/.prepare-work: an interrupted prepare resumes after its last finished "
               "segment")
              .min(1)
              .max(int64_t{1} << 24));
  v.field("max_buffer_mb", max_buffer_mb,
          Spec("memory for files parsed ahead of the shard writer, counted at 8x their size on disk (bytes, notes, "
               "tokens); bounds prepare's memory whatever the corpus size")
              .min(1)
              .max(int64_t{1} << 20));
  v.field("run_id", run_id,
          Spec("run id written into the shards; empty: UTC time and random bits, new each run (a resumed run keeps "
               "its own). Fix it for byte-identical rebuilds"));
  v.check(run_id.find_first_of("\n\r") == std::string::npos, "run_id", "must be one line");
}

void ValidateThresholds::visit(config::Visitor& v) {
  using config::Spec;
  auto limit = [&](const char* key, int64_t& value, const char* what) {
    v.field(key, value, Spec(std::string("most ") + what + " allowed; -1: no limit").min(-1));
  };
  limit("max_parse_failures", max_parse_failures, "files that fail to parse");
  limit("max_missing_files", max_missing_files, "manifest rows whose file does not exist");
  limit("max_empty_files", max_empty_files, "files without notes");
  limit("max_silent_files", max_silent_files, "files whose notes all have zero length");
  limit("max_encode_failures", max_encode_failures, "parsed files the tokenizer refuses");
  limit("max_label_problems", max_label_problems, "manifest rows with missing or malformed fields or labels");
  limit("max_split_problems", max_split_problems, "files without a valid split or song id");
  limit("max_song_leaks", max_song_leaks, "songs found in more than one split");
  limit("max_duplicates_within_split", max_duplicates_within_split, "extra copies of identical files within a split");
  limit("max_duplicates_across_splits", max_duplicates_across_splits, "contents found in more than one split");
  limit("max_shard_problems", max_shard_problems, "shard problems (unreadable, stale, leaking)");
  limit("max_out_of_range_tokens", max_out_of_range_tokens, "shard token ids outside the vocabulary");
}

void DatasetInfo::visit(config::Visitor& v) {
  using config::Spec;
  v.field("id", id, Spec("the data set's name, lower case (registry training.dataset_id), e.g. pop909"));
  v.field("license", license, Spec("its licence, an SPDX identifier where one exists (registry training.dataset_license)"));
  v.field("version", version, Spec("its release, when it has one (registry training.dataset_version)"));
  v.check(id.empty() == license.empty(), id.empty() ? "id" : "license",
          "dataset needs both id and license (the registry requires the pair)");
}

void PrepareConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("data_root", data_root, Spec("folder that data paths (corpus.root, manifests, split lists) resolve against; unset: the config's "
                                         "folder. The shipped configs set ${KMIDI_DATA_ROOT:-../../shared/data}"));
  v.section("dataset", dataset, Spec("what the corpus is, for the registry entries of models trained on it"));
  v.section("corpus", corpus, Spec().required());
  v.section("split", split);
  v.section("tokenizer", tokenizer);
  v.section("reader", reader);
  v.field("on_error", on_error,
          Spec("fail: stop at the first unreadable, unparsable or untokenizable file; skip: leave it out and list it in "
               "the report")
              .one_of({"fail", "skip"}));
  v.field("on_duplicate", on_duplicate,
          Spec("drop: keep one copy of identical files (preferring test, then validation, then train); keep: keep all")
              .one_of({"drop", "keep"}));
  v.field("dedup_key", dedup_key,
          Spec("what identical means for on_duplicate and dedup_against: file (sha256 of the file's bytes) or tokens "
               "(sha256 of its token ids: the same music re-saved with other metadata, tempo map or tick rate "
               "that the tokenizer does not see)")
              .one_of({"file", "tokens"}));
  v.field("dedup_against", dedup_against,
          Spec("prepared folders (kmidi prepare outputs) whose pieces are left out of this corpus and listed as "
               "duplicates with the copy they repeat; dedup_key tokens needs their tokenizer to be this one"));
  v.field("min_notes", min_notes, Spec("files with fewer notes are left out and listed").min(0));
  v.field("num_workers", num_workers, Spec("threads for parsing and tokenizing; 0: all cores").min(0).max(1024));
  v.section("output", output, Spec().required());
  v.section("validate", validate);
  if (!v.reading()) return;
  if (split.method == "manifest") {
    v.check(!corpus.manifest.path.empty() && !corpus.manifest.split_column.empty(), "split",
            "method manifest needs corpus.manifest.path and corpus.manifest.split_column");
  }
}

PrepareConfig load_prepare_config(const std::string& path, const std::vector<std::string>& overrides) {
  config::Document doc = config::Document::load_file(path);
  doc.apply_overrides(overrides);
  PrepareConfig c;
  doc.read_into(c);
  return c;
}

}  // namespace kmidi::corpus
