#include "events/own_events.h"

#include <sodium.h>

namespace tokenledger {

std::string OwnEvents::fingerprint(std::string_view envelope) {
  std::string out(16, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(),
                     reinterpret_cast<const unsigned char*>(envelope.data()), envelope.size(),
                     nullptr, 0);
  return out;
}

void OwnEvents::add(std::string_view envelope) {
  std::string f = fingerprint(envelope);
  std::lock_guard lock(mutex_);
  if (!set_.insert(f).second) return;
  order_.push_back(std::move(f));
  if (order_.size() > kCapacity) {
    set_.erase(order_.front());
    order_.pop_front();
  }
}

bool OwnEvents::contains(std::string_view envelope) const {
  std::string f = fingerprint(envelope);
  std::lock_guard lock(mutex_);
  return set_.count(f) > 0;
}

}  // namespace tokenledger
