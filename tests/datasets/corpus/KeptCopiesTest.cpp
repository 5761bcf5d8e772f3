#include <gtest/gtest.h>

#include <map>
#include <random>

#include "datasets/corpus/detail/KeptCopies.h"

namespace kmidi::corpus::detail {
namespace {

Key key_with(uint64_t prefix, uint8_t tail) {
  Key k{};
  std::memcpy(k.data(), &prefix, sizeof prefix);
  k[31] = tail;
  return k;
}

TEST(KeptCopies, KeysSharingTheirFirst64BitsAreToldApartByTheFullKey) {
  // Two different files whose sha256 begin alike: the table keeps only 64
  // bits, so it must ask for the full keys and keep both.
  std::map<uint32_t, Key> full;
  int asked = 0;
  KeptCopies table(8);
  auto keep = [&](const Key& k, uint32_t file) {
    const auto kept = table.keep_first(k, file, [&](uint32_t other) {
      ++asked;
      return full.at(other) == k;
    });
    if (!kept) full[file] = k;
    return kept;
  };
  const Key a = key_with(0x1234, 1), b = key_with(0x1234, 2), c = key_with(0x9999, 3);
  EXPECT_EQ(keep(a, 0), std::nullopt);
  EXPECT_EQ(keep(c, 1), std::nullopt);
  EXPECT_EQ(asked, 0);  // different prefixes never reach the full comparison
  EXPECT_EQ(keep(b, 2), std::nullopt);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(keep(a, 3), std::optional<uint32_t>(0));
  EXPECT_EQ(keep(b, 4), std::optional<uint32_t>(2));
  EXPECT_EQ(keep(c, 5), std::optional<uint32_t>(1));
}

TEST(KeptCopies, HoldsAsManyKeysAsItWasSizedForAndFindsEachFirstCopy) {
  const uint32_t n = 5000;
  KeptCopies table(n);
  std::mt19937_64 rng(7);
  std::vector<Key> keys;
  for (uint32_t i = 0; i < n; ++i) {
    Key k{};
    for (auto& byte : k) byte = static_cast<uint8_t>(rng());
    keys.push_back(k);
    ASSERT_EQ(table.keep_first(k, i, [](uint32_t) { return true; }), std::nullopt) << i;
  }
  for (uint32_t i = 0; i < n; i += 97) {
    EXPECT_EQ(table.keep_first(keys[i], n + i, [&](uint32_t kept) { return keys[kept] == keys[i]; }),
              std::optional<uint32_t>(i));
  }
}

}  // namespace
}  // namespace kmidi::corpus::detail
