// Force-included (-include) in the fuzz build while Cap'n Proto is older than 1.0
// (Debian 12 ships 0.9.2): with C++20, clang 16 and later refuse capnp/blob.h's
// `const char* == kj::StringPtr`, which relied on a rewritten comparison that
// P2468R2 no longer allows (capnproto/capnproto#1622, fixed in 1.0). These are the
// comparisons kj/string.h declares before C++20, written so they cannot recurse.
#pragma once

#include <kj/string.h>

namespace kj {
inline bool operator==(const char* a, const StringPtr& b) {
  return b == StringPtr(a);
}
inline bool operator!=(const char* a, const StringPtr& b) {
  return !(b == StringPtr(a));
}
}  // namespace kj
