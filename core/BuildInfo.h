#pragma once
// Facts about the build that files written by kmidi record (checkpoints,
// ONNX metadata, the registry manifest).

namespace kmidi::build {

/// The git commit the binary was built from (40 hex digits, "-dirty" appended
/// when tracked files differed from it), or "unknown" when the sources were
/// not a git checkout. Refreshed on every build (cmake/GitCommit.cmake).
const char* git_commit();

}  // namespace kmidi::build
