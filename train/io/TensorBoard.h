#pragma once
// TensorBoard event files written without TensorFlow: TFRecord framing
// around hand-encoded `Event` protocol buffers (field numbers from
// tensorboard/compat/proto/event.proto and summary.proto).
//
// Record framing (little-endian):
//   uint64 length | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
// Events written:
//   Event{wall_time=1: double, step=2: int64, file_version=3: "brain.Event:2"}   (first record)
//   Event{wall_time, step, summary=5: Summary{value=1: Value{tag=1, simple_value=2: float}...}}
//   Event{wall_time, step, session_log=7: SessionLog{status=1: START}}          (after a resume)

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kmidi::train {

namespace tensorboard {

/// One scalar of a summary: TensorBoard shows `tag` as a chart.
using Scalars = std::vector<std::pair<std::string, double>>;

/// The bytes of one TFRecord holding `data`.
std::string frame_record(std::string_view data);
/// Event{wall_time, file_version: "brain.Event:2"}.
std::string file_version_event(double wall_time);
/// Event{wall_time, step, summary{value{tag, simple_value}...}}; values are stored as float32.
std::string scalars_event(double wall_time, int64_t step, const Scalars& values);
/// Event{wall_time, step, session_log{status: START}}: TensorBoard drops data
/// from earlier runs at steps >= `step`, which keeps curves clean after a resume.
std::string session_start_event(double wall_time, int64_t step);

}  // namespace tensorboard

/// Appends events to `dir`/events.out.tfevents.<seconds>.<host>.<pid>.<n>. An
/// event file is an append-only log (TensorBoard tolerates a truncated last
/// record), so it is flushed, not written atomically.
class TensorBoardWriter {
 public:
  /// Creates the folder and the file and writes the file_version record.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void add_scalars(int64_t step, const tensorboard::Scalars& values);
  void session_start(int64_t step);
  /// Pushes buffered records to the OS (at log steps, so a viewer sees them).
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& event);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace kmidi::train
