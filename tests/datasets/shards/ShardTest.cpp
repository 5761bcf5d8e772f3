// Shards: write/read equality, h5dump (an independent HDF5 reader) agrees on
// layout and values, random access, version checks, and atomic commits.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/shards/ShardReader.h"
#include "datasets/shards/ShardWriter.h"
#include "datasets/shards/detail/Hdf5.h"
#include "tests/support/TestSupport.h"

namespace kmidi::shards {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) { return test::scratch_dir("shards_" + name); }

std::string sha_of(int i) {
  char buf[65];
  std::snprintf(buf, sizeof buf, "%064x", i * 7919);
  return buf;
}

struct Truth {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<ShardItem> items;
};

const std::vector<LabelColumn> kLabels{{"quadrant", LabelKind::kNumber}, {"style", LabelKind::kText}};

/// `park_every` > 0 parks the writer after every that many items.
Truth write_random(const std::string& path, int items, int32_t vocab, uint32_t seed, ShardWriterOptions options = {},
                   int park_every = 0) {
  Truth t;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> len(0, 3000), id(0, vocab - 1), q(0, 4);
  ShardWriter w(path, "train", ShardVocab{vocab, 0, std::string(64, 'a')}, kLabels, options);
  for (int i = 0; i < items; ++i) {
    std::vector<int32_t> ids(static_cast<size_t>(i % 17 == 0 ? 0 : len(rng)));
    for (auto& x : ids) x = id(rng);
    ShardItem item;
    item.source = "dir/ü " + std::to_string(i) + ".mid";  // non-ASCII and spaces survive
    item.song_id = "song" + std::to_string(i / 3);
    item.sha256 = sha_of(i);
    item.num_notes = i * 11;
    item.duration_s = i * 0.5;
    const int quadrant = q(rng);
    item.labels = {quadrant == 0 ? LabelValue{} : LabelValue::of(double(quadrant)),
                   LabelValue::of(i % 5 == 0 ? std::string() : "funk/groove" + std::to_string(i % 4))};
    w.add(ids.data(), ids.size(), item);
    t.tokens.push_back(std::move(ids));
    t.items.push_back(item);
    if (park_every > 0 && (i + 1) % park_every == 0) w.park();
  }
  w.commit();
  return t;
}

void expect_equal(const ShardReader& r, const Truth& t) {
  ASSERT_EQ(r.size(), static_cast<int64_t>(t.items.size()));
  int64_t total = 0;
  for (size_t i = 0; i < t.items.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(r.read(static_cast<int64_t>(i)), t.tokens[i]);
    const ShardItem& a = r.item(static_cast<int64_t>(i));
    const ShardItem& b = t.items[i];
    EXPECT_EQ(a.source, b.source);
    EXPECT_EQ(a.song_id, b.song_id);
    EXPECT_EQ(a.sha256, b.sha256);
    EXPECT_EQ(a.num_notes, b.num_notes);
    EXPECT_DOUBLE_EQ(a.duration_s, b.duration_s);
    ASSERT_EQ(a.labels.size(), 2u);
    if (std::isnan(b.labels[0].number)) EXPECT_TRUE(std::isnan(a.labels[0].number));
    else EXPECT_EQ(a.labels[0].number, b.labels[0].number);
    EXPECT_EQ(a.labels[1].text, b.labels[1].text);
    total += static_cast<int64_t>(t.tokens[i].size());
  }
  EXPECT_EQ(r.num_tokens(), total);
}

TEST(Shards, WriteReadEqualityInt16AndInt32) {
  const fs::path dir = scratch("equality");
  for (int32_t vocab : {531, 70000}) {
    const std::string path = (dir / ("v" + std::to_string(vocab) + ".h5")).string();
    const Truth t = write_random(path, 120, vocab, 7, ShardWriterOptions{4096, 4, "run-1"});
    const ShardReader r(path);
    EXPECT_EQ(r.token_bits(), vocab <= 32767 ? 16 : 32);
    EXPECT_EQ(r.split(), "train");
    EXPECT_EQ(r.vocab_size(), vocab);
    EXPECT_EQ(r.pad_id(), 0);
    EXPECT_EQ(r.tokenizer_sha256(), std::string(64, 'a'));
    EXPECT_EQ(r.run_id(), "run-1");
    EXPECT_EQ(r.format_version(), 1);
    EXPECT_EQ(r.label_columns(), kLabels);
    EXPECT_EQ(r.label_index("style"), 1);
    EXPECT_EQ(r.label_index("bpm"), -1);
    expect_equal(r, t);
  }
  // No temporary files left behind.
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().extension(), ".h5") << e.path();
}

TEST(Shards, EmptyShardIsValid) {
  const fs::path dir = scratch("empty");
  const std::string path = (dir / "test.h5").string();
  {
    ShardWriter w(path, "test", ShardVocab{10, 0, "x"}, {});
    w.commit();
  }
  const ShardReader r(path);
  EXPECT_EQ(r.size(), 0);
  EXPECT_EQ(r.num_tokens(), 0);
  EXPECT_TRUE(r.label_columns().empty());
}

std::string run(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

/// The integers inside h5dump's DATA { ... } block, skipping "(i):" index marks.
std::vector<int64_t> numbers_in_data(const std::string& dump) {
  std::vector<int64_t> out;
  const size_t open = dump.find("DATA {");
  if (open == std::string::npos) return out;
  const size_t close = dump.find('}', open);
  std::string word;
  auto flush = [&] {
    if (!word.empty() && word[0] != '(') out.push_back(std::stoll(word));
    word.clear();
  };
  for (size_t i = open + 6; i < close; ++i) {
    const char c = dump[i];
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) flush();
    else word += c;
  }
  flush();
  return out;
}

TEST(Shards, IndependentReaderAgreesOnLayout) {
  const fs::path dir = scratch("h5dump");
  const std::string path = (dir / "train.h5").string();
  const Truth t = write_random(path, 5, 531, 3, ShardWriterOptions{4096, 4, "r"});
  // Storage properties: small chunks, shuffle and deflate, int16 for a small vocabulary.
  const std::string header = run("h5dump -p -H -d /tokens '" + path + "'");
  EXPECT_NE(header.find("H5T_STD_I16LE"), std::string::npos) << header;
  EXPECT_NE(header.find("CHUNKED ( 4096 )"), std::string::npos) << header;
  EXPECT_NE(header.find("SHUFFLE"), std::string::npos) << header;
  EXPECT_NE(header.find("DEFLATE { LEVEL 4 }"), std::string::npos) << header;
  std::vector<int64_t> flat;
  for (const auto& v : t.tokens) flat.insert(flat.end(), v.begin(), v.end());
  EXPECT_EQ(numbers_in_data(run("h5dump -y -w 0 -d /tokens '" + path + "'")), flat);
  std::vector<int64_t> offsets{0};
  for (const auto& v : t.tokens) offsets.push_back(offsets.back() + static_cast<int64_t>(v.size()));
  EXPECT_EQ(numbers_in_data(run("h5dump -y -w 0 -d /offsets '" + path + "'")), offsets);
  EXPECT_NE(run("h5dump -a /format '" + path + "'").find("\"kmidi.token_shard\""), std::string::npos);
  EXPECT_EQ(numbers_in_data(run("h5dump -a /format_version '" + path + "'")), std::vector<int64_t>{1});
    // h5dump escapes the non-ASCII bytes; the rest of the name is plain.
  EXPECT_NE(run("h5dump -y -d /items/source '" + path + "'").find(" 4.mid\""), std::string::npos);
}

// Over a million tokens: the writer compresses whole chunks on several threads
// (at the 1M-token flush and at commit) and writes them itself; h5dump, which
// decodes them with HDF5's own filters, and the reader must see every id.
TEST(Shards, ChunksCompressedOnManyThreadsDecodeWithHdf5sFilters) {
  const fs::path dir = scratch("parallel_chunks");
  for (int32_t vocab : {531, 70000}) {
    SCOPED_TRACE(vocab);
    const std::string path = (dir / ("v" + std::to_string(vocab) + ".h5")).string();
    const Truth t = write_random(path, 800, vocab, 11, ShardWriterOptions{4096, 4, "r"});
    std::vector<int64_t> flat;
    for (const auto& v : t.tokens) flat.insert(flat.end(), v.begin(), v.end());
    ASSERT_GT(flat.size(), size_t{1} << 20);
    EXPECT_EQ(numbers_in_data(run("h5dump -y -w 0 -d /tokens '" + path + "'")), flat);
    expect_equal(ShardReader(path), t);
  }
}

TEST(Shards, AParkedWriterCarriesOnWhereItStopped) {
  // Parking writes the whole chunks and frees the buffers; the partial chunk
  // and items past the last park must still land in order, with any chunk
  // size and with or without deflate.
  const fs::path dir = scratch("parked");
  for (const ShardWriterOptions& options : {ShardWriterOptions{1000, 4, "r"}, ShardWriterOptions{777, 0, "r"}}) {
    SCOPED_TRACE(options.chunk_elements);
    const std::string path = (dir / ("c" + std::to_string(options.chunk_elements) + ".h5")).string();
    // 5000 items: past the 4096-item metadata flush too. HDF5's own filters decode what libdeflate wrote.
    const Truth t = write_random(path, 5000, 531, 13, options, 333);
    expect_equal(ShardReader(path), t);
  }
}

/// Whether this process has `path` open (a file descriptor linked to it).
bool process_has_open(const std::string& path) {
  const fs::path target = fs::absolute(path);
  for (const auto& fd : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (fs::read_symlink(fd.path(), ec) == target) return true;
  }
  return false;
}

TEST(Shards, AParkedWriterHoldsItsFileClosedUntilItsNextItem) {
  // Prepare keeps one split's writer open at a time: a parked writer must
  // have closed its file (and with it HDF5's caches for it).
  const fs::path dir = scratch("parked_closed");
  const std::string path = (dir / "train.h5").string();
  ShardWriter w(path, "train", ShardVocab{300, 0, std::string(64, 'a')}, kLabels);
  const std::vector<int32_t> ids{1, 2, 3};
  ShardItem item;
  item.source = "a.mid";
  item.song_id = "a";
  item.sha256 = sha_of(1);
  item.labels = {LabelValue::of(1.0), LabelValue::of(std::string("x"))};
  EXPECT_TRUE(process_has_open(w.temp_path()));
  w.park();
  EXPECT_FALSE(process_has_open(w.temp_path()));
  w.add(ids.data(), ids.size(), item);
  EXPECT_TRUE(process_has_open(w.temp_path()));
  w.park();
  w.commit();
  const ShardReader r(path);
  ASSERT_EQ(r.size(), 1);
  EXPECT_EQ(r.read(0), ids);
}

TEST(Shards, RandomAccessBySequence) {
  const fs::path dir = scratch("random");
  const std::string path = (dir / "train.h5").string();
  const Truth t = write_random(path, 1500, 531, 11);
  const ShardReader r(path);
  std::mt19937 rng(5);
  std::uniform_int_distribution<int64_t> pick(0, r.size() - 1);
  const int reads = 1500;
  int64_t tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int k = 0; k < reads; ++k) {
    const int64_t i = pick(rng);
    const int64_t len = r.length(i);
    const int64_t from = len > 512 ? len / 3 : 0;  // a window inside the piece, as a cropping dataset reads
    const int64_t count = std::min<int64_t>(512, len - from);
    std::vector<int32_t> window(static_cast<size_t>(count));
    r.read(i, from, count, window.data());
    ASSERT_TRUE(std::equal(window.begin(), window.end(), t.tokens[static_cast<size_t>(i)].begin() + from)) << i;
    tokens += count;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("random access: %.0f windows/s (%.1f M tokens/s) from a %lld-token shard\n", reads / seconds,
              tokens / seconds / 1e6, static_cast<long long>(r.num_tokens()));

  ShardReader preloaded(path);
  preloaded.preload();
  EXPECT_TRUE(preloaded.preloaded());
  expect_equal(preloaded, t);

  std::vector<int32_t> out(10);
  try {
    r.read(3, r.length(3) - 5, 10, out.data());
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("leave item 3 of length"), std::string::npos) << e.what();
  }
}

void set_int_attribute(const std::string& path, const std::string& name, int64_t value) {
  detail::Handle f = detail::file_handle(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), path, "open");
  detail::Handle a = detail::attribute_handle(H5Aopen(f.get(), name.c_str(), H5P_DEFAULT), path, "attr");
  detail::check(H5Awrite(a.get(), H5T_NATIVE_INT64, &value), path, "write");
}

std::string open_error(const std::string& path) {
  try {
    ShardReader r(path);
  } catch (const DataError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(Shards, ReaderChecksFormatAndConsistency) {
  const fs::path dir = scratch("version");
  const std::string path = (dir / "train.h5").string();
  write_random(path, 4, 531, 1);
  set_int_attribute(path, "format_version", 2);
  EXPECT_EQ(open_error(path), path + ": format_version 2 was written by a newer kmidi; this build reads up to 1");
  set_int_attribute(path, "format_version", 1);
  EXPECT_EQ(open_error(path), "<no error>");
  set_int_attribute(path, "num_tokens", 5);
  EXPECT_NE(open_error(path).find("entries but num_tokens says 5"), std::string::npos);

  const std::string plain = (dir / "plain.h5").string();
  files::write_atomic(plain, "not hdf5 at all");
  EXPECT_EQ(open_error(plain), plain + ": not an HDF5 file (or unreadable)");
  EXPECT_EQ(open_error((dir / "missing.h5").string()), (dir / "missing.h5").string() + ": no such shard file");
  {
    detail::Handle f = detail::file_handle(H5Fcreate((dir / "other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                                           "other", "create");
  }
  EXPECT_NE(open_error((dir / "other.h5").string()).find("not a kmidi token shard"), std::string::npos);
}

TEST(Shards, AddRejectsBadInput) {
  const fs::path dir = scratch("bad");
  ShardWriter w((dir / "a.h5").string(), "train", ShardVocab{10, 0, "x"}, kLabels);
  ShardItem item;
  item.source = "x.mid";
  item.sha256 = sha_of(1);
  item.labels = {LabelValue::of(1.0), LabelValue::of("a")};
  const int32_t bad[] = {1, 2, 10};
  try {
    w.add(bad, 3, item);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("token id 10 at position 2 of 'x.mid' is outside [0, 10)"), std::string::npos);
  }
  item.labels.pop_back();
  try {
    w.add(bad, 2, item);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("has 1 label values for 2 label columns"), std::string::npos);
  }
}

TEST(Shards, AbandonedWriteLeavesPreviousShard) {
  const fs::path dir = scratch("abandon");
  const std::string path = (dir / "train.h5").string();
  const Truth good = write_random(path, 6, 531, 2);
  {
    ShardWriter w(path, "train", ShardVocab{531, 0, "b"}, kLabels);
    const int32_t ids[] = {1, 2, 3};
    ShardItem item;
    item.sha256 = sha_of(0);
    item.labels = {LabelValue{}, LabelValue{}};
    w.add(ids, 3, item);
    EXPECT_TRUE(fs::exists(w.temp_path()));
    // destroyed without commit, as when an exception unwinds prepare
  }
  expect_equal(ShardReader(path), good);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(Shards, KilledCommitLeavesPreviousShard) {
  const fs::path dir = scratch("kill");
  const std::string path = (dir / "train.h5").string();
  const Truth good = write_random(path, 6, 531, 2);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("KMIDI_FAULT", "shard_commit:train.h5", 1);
    write_random(path, 50, 531, 9);  // dies inside commit, before the rename
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  expect_equal(ShardReader(path), good);
  // The dead writer's complete temporary file is the only other entry; never a shard name.
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path() != path) EXPECT_NE(e.path().filename().string().find(".h5.tmp."), std::string::npos);
  }
}

}  // namespace
}  // namespace kmidi::shards
