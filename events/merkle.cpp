#include "events/merkle.h"

#include <sodium.h>

#include <initializer_list>
#include <stdexcept>

namespace tokenledger::merkle {
namespace {

// BLAKE2b-256 of `tag` followed by `parts` (RFC 9162: 0x00 for leaves, 0x01 for
// inner nodes, so a leaf never passes for a node).
Digest hashTagged(unsigned char tag, std::initializer_list<const Digest*> parts) {
  Digest out{};
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, out.size());
  crypto_generichash_update(&st, &tag, 1);
  for (const Digest* d : parts) crypto_generichash_update(&st, d->data(), d->size());
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

Digest hashLeaf(const Digest& d) {
  return hashTagged(0x00, {&d});
}
Digest hashNode(const Digest& left, const Digest& right) {
  return hashTagged(0x01, {&left, &right});
}

// The largest power of two below n (n > 1).
size_t split(size_t n) {
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

Digest treeHash(const std::vector<Digest>& leaves, size_t from, size_t to) {
  if (to - from == 1) return hashLeaf(leaves[from]);
  size_t k = split(to - from);
  return hashNode(treeHash(leaves, from, from + k), treeHash(leaves, from + k, to));
}

void path(const std::vector<Digest>& leaves, size_t index, size_t from, size_t to,
          std::vector<Digest>& out) {
  if (to - from <= 1) return;
  size_t k = split(to - from);
  if (index < from + k) {
    path(leaves, index, from, from + k, out);
    out.push_back(treeHash(leaves, from + k, to));
  } else {
    path(leaves, index, from + k, to, out);
    out.push_back(treeHash(leaves, from, from + k));
  }
}

}  // namespace

Digest root(const std::vector<Digest>& leaves) {
  if (leaves.empty()) throw std::invalid_argument("a Merkle tree needs at least one leaf");
  return treeHash(leaves, 0, leaves.size());
}

std::vector<Digest> proof(const std::vector<Digest>& leaves, size_t index) {
  std::vector<Digest> out;
  path(leaves, index, 0, leaves.size(), out);
  return out;
}

std::optional<Digest> rootFrom(const Digest& leaf, size_t index, size_t size,
                               const std::vector<Digest>& path) {
  // RFC 9162, 2.1.3.2.
  if (size == 0 || index >= size) return std::nullopt;
  size_t fn = index, sn = size - 1;
  Digest r = hashLeaf(leaf);
  for (const Digest& p : path) {
    if (sn == 0) return std::nullopt;
    if ((fn & 1) == 1 || fn == sn) {
      r = hashNode(p, r);
      if ((fn & 1) == 0)
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
    } else {
      r = hashNode(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return std::nullopt;
  return r;
}

}  // namespace tokenledger::merkle
