// Writing the daemon's small files (operator secret, signing key and public keys,
// signing state) so that a crash never leaves half of one.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace tokenledger {

// Whether a write is flushed to the disk (fsync) before it counts as done.
enum class Sync { no, yes };
// What writeFileAtomically does when `path` exists already.
enum class IfExists {
  replace,  // rename() over it
  keep,     // link() into place, which fails on an existing file: of two writers, one wins
};

// Writes `text` to `path` so that no reader ever sees part of it: into `path`.tmp
// (created anew with `mode`, less the umask), fsync'd if `sync` says so, then
// moved into place as `ifExists` says; the temporary name is gone afterwards. The
// directory is not fsync'd. Returns false only with IfExists::keep when `path`
// existed (nothing written); throws std::runtime_error ("cannot write PATH: why")
// when the file system refuses.
bool writeFileAtomically(const std::string& path, std::string_view text, mode_t mode, Sync sync,
                         IfExists ifExists = IfExists::replace);

// Appends `text` to `path` (created with `mode`, less the umask, if missing),
// fsync'd if `sync` says so. Throws std::runtime_error ("cannot write PATH: why").
void appendToFile(const std::string& path, std::string_view text, mode_t mode, Sync sync);

}  // namespace tokenledger
