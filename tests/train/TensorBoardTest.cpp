#include "train/io/TensorBoard.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "tests/train/EventFileReader.h"
#include "tests/support/TestSupport.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;

TEST(TensorBoard, RecordFramingByteByByte) {
  const std::string data = "hello";
  const std::string record = tensorboard::frame_record(data);
  ASSERT_EQ(record.size(), 8u + 4u + data.size() + 4u);
  // uint64 little-endian length.
  EXPECT_EQ(record.substr(0, 8), std::string("\x05\0\0\0\0\0\0\0", 8));
  uint32_t length_crc, data_crc;
  std::memcpy(&length_crc, record.data() + 8, 4);
  std::memcpy(&data_crc, record.data() + 12 + data.size(), 4);
  const uint32_t raw_length_crc = hash::crc32c(std::string_view(record.data(), 8));
  EXPECT_EQ(length_crc, ((raw_length_crc >> 15) | (raw_length_crc << 17)) + 0xa282ead8u);
  EXPECT_EQ(record.substr(12, 5), "hello");
  const uint32_t raw_data_crc = hash::crc32c(data);
  EXPECT_EQ(data_crc, ((raw_data_crc >> 15) | (raw_data_crc << 17)) + 0xa282ead8u);
}

TEST(TensorBoard, WriterEventsDecodeWithProtobuf) {
  const fs::path dir = fs::path(test::scratch_dir("tensorboard")) / "tb";
  std::string path;
  {
    TensorBoardWriter w(dir.string());
    path = w.path();
    w.add_scalars(10, {{"train/loss", 2.5}, {"train/lr", 3e-4}});
    w.add_scalars(20, {{"train/loss", 1.25}});
    w.session_start(21);
    w.add_scalars(1234567890123LL, {{"validation/accuracy", 0.875}});
    w.flush();
  }
  EXPECT_NE(fs::path(path).filename().string().find("events.out.tfevents."), std::string::npos);
  const auto events = test::read_event_file(path);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_GT(events[0].wall_time(), 1.6e9);  // seconds since 1970, after 2020
  ASSERT_TRUE(events[1].has_summary());
  EXPECT_EQ(events[1].step(), 10);
  ASSERT_EQ(events[1].summary().value_size(), 2);
  EXPECT_EQ(events[1].summary().value(0).tag(), "train/loss");
  EXPECT_EQ(events[1].summary().value(0).simple_value(), 2.5f);
  EXPECT_EQ(events[1].summary().value(1).tag(), "train/lr");
  EXPECT_EQ(events[1].summary().value(1).simple_value(), 3e-4f);
  EXPECT_EQ(events[2].step(), 20);
  EXPECT_EQ(events[2].summary().value(0).simple_value(), 1.25f);
  ASSERT_TRUE(events[3].has_session_log());
  EXPECT_EQ(events[3].step(), 21);
  EXPECT_EQ(events[3].session_log().status(), kmidi_test::tensorboard::SessionLog::START);
  EXPECT_EQ(events[4].step(), 1234567890123LL);  // multi-byte varint
  EXPECT_EQ(events[4].summary().value(0).tag(), "validation/accuracy");
  EXPECT_EQ(events[4].summary().value(0).simple_value(), 0.875f);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kmidi::train
