#pragma once
// SHA-256 through OpenSSL, for manifests, content hashes and config hashes.

#include <string>
#include <string_view>

namespace kmidi::hash {

/// Lower-case hex digest of `bytes`.
std::string sha256_hex(std::string_view bytes);

/// Lower-case hex digest of a file's contents; throws DataError naming the file.
std::string sha256_file(const std::string& path);

}  // namespace kmidi::hash
