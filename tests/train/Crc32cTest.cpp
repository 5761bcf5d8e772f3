#include "core/Crc32c.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kmidi::hash {
namespace {

struct Vector {
  std::vector<unsigned char> bytes;
  uint32_t crc;
};

/// RFC 3720 (iSCSI) appendix B.4 test vectors, plus the common "123456789" check value.
std::vector<Vector> rfc3720_vectors() {
  std::vector<Vector> v;
  v.push_back({std::vector<unsigned char>(32, 0x00), 0x8A9136AAu});
  v.push_back({std::vector<unsigned char>(32, 0xFF), 0x62A8AB43u});
  std::vector<unsigned char> up(32), down(32);
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<unsigned char>(i);
    down[i] = static_cast<unsigned char>(31 - i);
  }
  v.push_back({up, 0x46DD794Eu});
  v.push_back({down, 0x113FDB5Cu});
  const unsigned char pdu[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                                 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  v.push_back({std::vector<unsigned char>(pdu, pdu + 48), 0xD9963A56u});
  const std::string check = "123456789";
  v.push_back({std::vector<unsigned char>(check.begin(), check.end()), 0xE3069283u});
  return v;
}

TEST(Crc32c, Rfc3720VectorsBothPaths) {
  for (const auto& v : rfc3720_vectors()) {
    EXPECT_EQ(crc32c_extend(0, v.bytes.data(), v.bytes.size()), v.crc);
    EXPECT_EQ(crc32c_extend_portable(0, v.bytes.data(), v.bytes.size()), v.crc);
  }
}

TEST(Crc32c, ExtendingInPiecesEqualsOneGo) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>((i * 131) & 0xFF);
  const uint32_t whole = crc32c(data);
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{500}, size_t{999}}) {
    const uint32_t first = crc32c_extend(0, data.data(), cut);
    EXPECT_EQ(crc32c_extend(first, data.data() + cut, data.size() - cut), whole) << "cut " << cut;
    EXPECT_EQ(crc32c_extend_portable(crc32c_extend_portable(0, data.data(), cut), data.data() + cut, data.size() - cut),
              whole);
  }
}

TEST(Crc32c, MaskMatchesTfRecordDefinition) {
  // masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8, modulo 2^32.
  EXPECT_EQ(mask_crc32c(0), 0xa282ead8u);
  EXPECT_EQ(mask_crc32c(0x8A9136AAu), static_cast<uint32_t>(((0x8A9136AAu >> 15) | (0x8A9136AAu << 17)) + 0xa282ead8u));
}

}  // namespace
}  // namespace kmidi::hash
