#pragma once
// Test helper: reads a TensorBoard event file record by record, checking the
// TFRecord framing independently of the writer, and decodes each record with
// protobuf's generated parser (tensorboard_event.proto).

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/Files.h"
#include "tensorboard_event.pb.h"
#include "core/Crc32c.h"

namespace kmidi::test {

inline std::vector<kmidi_test::tensorboard::Event> read_event_file(const std::string& path) {
  const std::string bytes = files::read_all(path);
  std::vector<kmidi_test::tensorboard::Event> events;
  size_t pos = 0;
  while (pos < bytes.size()) {
    EXPECT_GE(bytes.size() - pos, 12u) << "record header cut at byte " << pos;
    if (bytes.size() - pos < 12) break;
    uint64_t length = 0;
    uint32_t length_crc = 0, data_crc = 0;
    std::memcpy(&length, bytes.data() + pos, 8);
    std::memcpy(&length_crc, bytes.data() + pos + 8, 4);
    EXPECT_EQ(length_crc, hash::mask_crc32c(hash::crc32c(std::string_view(bytes.data() + pos, 8))))
        << "length CRC of the record at byte " << pos;
    EXPECT_LE(pos + 12 + length + 4, bytes.size()) << "record data cut at byte " << pos;
    if (pos + 12 + length + 4 > bytes.size()) break;
    const std::string data = bytes.substr(pos + 12, length);
    std::memcpy(&data_crc, bytes.data() + pos + 12 + length, 4);
    EXPECT_EQ(data_crc, hash::mask_crc32c(hash::crc32c(data))) << "data CRC of the record at byte " << pos;
    kmidi_test::tensorboard::Event event;
    EXPECT_TRUE(event.ParseFromString(data)) << "record at byte " << pos << " is not an Event";
    EXPECT_TRUE(event.GetReflection()->GetUnknownFields(event).empty()) << "unknown fields at byte " << pos;
    events.push_back(event);
    pos += 12 + length + 4;
  }
  return events;
}

}  // namespace kmidi::test
