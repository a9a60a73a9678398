// Merkle trees over event digests, as Certificate Transparency builds them
// (RFC 9162, section 2.1, with BLAKE2b-256): a writer signs one root per append
// group instead of every event, and each event carries the path from its leaf to
// that root, so it stays verifiable on its own (events/signing.h).
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "events/signing.h"

namespace tokenledger::merkle {

// The root of the tree over `leaves` (the events' digests, in group order). The
// leaves are hashed with a 0x00 prefix and inner nodes with 0x01, so a leaf can
// never pass for a node. Throws std::invalid_argument for no leaves.
Digest root(const std::vector<Digest>& leaves);

// The audit path of leaf `index`: the sibling hashes from the leaf up to the root.
std::vector<Digest> proof(const std::vector<Digest>& leaves, size_t index);

// The root that leaf `leaf` at `index` of a tree of `size` leaves reaches through
// `path`; nullopt when the path cannot belong to such a tree (wrong length).
std::optional<Digest> rootFrom(const Digest& leaf, size_t index, size_t size,
                               const std::vector<Digest>& path);

}  // namespace tokenledger::merkle
