#include "projections/batch_apply.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <future>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "events/rules.h"
#include "projections/read_model_layout.h"
#include "projections/token.h"

namespace tokenledger::batch {
namespace {

inline void prefetch(const void* p) {
  __builtin_prefetch(p);
}

template <typename T>
void release(std::vector<T>& v) {
  std::vector<T>().swap(v);
}

// Every cache line of p[0, size).
inline void prefetch(const void* p, size_t size) {
  auto* b = static_cast<const char*>(p);
  for (size_t at = 0; at < size; at += 64) __builtin_prefetch(b + at);
}

// The verify database's record of a token (read_model_layout.h), into `out`.
const std::string& encodeVerifyRecord(std::string& out, const Token& t) {
  static_assert(kMaxIdLength <= 255, "the verify record holds an owner's length in one byte");
  return layout::encodeVerifyRecord(
      out, layout::VerifyRecord{t.secretHash, t.active, static_cast<uint8_t>(t.kind), t.expiresAt,
                                t.deactivateAt, t.owner, t.destinationId});
}

class Applier {
 public:
  explicit Applier(const Dbs& dbs) : dbs_(dbs) {}

  void run(lmdb::Txn& txn, std::vector<const LogRecord*> recs, const SkipReporter& report,
           ApplyReport& out) {
    Batch batch;
    batch.recs = std::move(recs);
    batch.parallel = batch.recs.size() >= kParallelBatch;
    decode(batch);
    lookUp(txn, batch);
    applyInLogOrder(batch, report, out);
    write(txn, batch);
  }

 private:
  static size_t entries(const lmdb::Txn& txn, MDB_dbi dbi) {
    MDB_stat st{};
    lmdb::check(mdb_stat(txn.get(), dbi, &st), "mdb_stat");
    return st.ms_entries;
  }

  // Runs `work` on another thread when `parallel`, else at once; get() on the
  // result waits for it and rethrows what it threw.
  template <typename Work>
  static std::future<void> besides(bool parallel, Work work) {
    if (parallel) return std::async(std::launch::async, std::move(work));
    std::promise<void> done;
    work();
    done.set_value();
    return done.get_future();
  }

  // Byte strings packed one after another: one allocation for a batch's values.
  class Packed {
   public:
    void reserve(size_t bytes, size_t count) {
      bytes_.reserve(bytes);
      ends_.reserve(count);
    }
    void add(std::string_view s) {
      bytes_.append(s);
      ends_.push_back(bytes_.size());
    }
    std::string_view operator[](size_t i) const {
      size_t from = i == 0 ? 0 : ends_[i - 1];
      return std::string_view(bytes_).substr(from, ends_[i] - from);
    }

   private:
    std::string bytes_;
    std::vector<size_t> ends_;
  };

  // A token's state during one apply(): as stored, then as the batch changes it.
  struct Slot {
    std::string_view key;
    std::optional<Token> state;
    bool dirty = false;
  };

  static constexpr uint32_t kNone = UINT32_MAX;
  // Loops that read memory scattered over the batch ask for it kAhead entries
  // early, which overlaps the cache misses they would wait on one by one.
  static constexpr size_t kAhead = 8;

  // One apply()'s working state; each pass fills in what the next reads.
  struct Batch {
    std::vector<const LogRecord*> recs;   // the new records, in log order
    bool parallel = false;                // big enough for the second thread
    std::vector<DecodedView> events;      // per record: views into it
    std::string keys;                     // the slots' keys, in key order
    std::vector<Slot> slots;              // per token the batch mentions, key order
    std::vector<uint32_t> slotOf;         // per event: its token's slot
    std::vector<uint32_t> predecessorOf;  // per event: the slot of the token it replaces
    std::vector<bool> duplicate;          // per event: id stored or seen before
    std::vector<std::pair<std::string_view, uint32_t>> newIds;  // (id, event), key order
    struct HistoryRef {
      uint32_t slot, seq, event;
    };
    std::vector<HistoryRef> history;                            // per applied event
    std::vector<std::pair<std::string_view, uint32_t>> owners;  // (owner, slot) per creation
  };

  static std::string_view firstOf(const std::pair<std::string_view, uint32_t>& pair) {
    return pair.first;
  }

  static void decode(Batch& b) {
    const size_t n = b.recs.size();
    b.events.resize(n);
    auto decode = [&](size_t from, size_t to) {
      for (size_t i = from; i < to; ++i) b.events[i] = decodeEventView(b.recs[i]->value);
    };
    auto upper = besides(b.parallel, [&] { decode(n / 2, n); });
    decode(0, n / 2);
    upper.get();
  }

  // Pass 1: one slot per token the batch mentions (its own key, or a successor's
  // predecessor), in key order, with its stored state; which events are duplicates
  // (an id stored before, or seen earlier in the batch).
  void lookUp(const lmdb::Txn& txn, Batch& b) {
    const auto n = static_cast<uint32_t>(b.recs.size());
    std::vector<std::pair<std::string_view, uint32_t>> idRefs;  // (id, event)
    auto sortedIds = besides(b.parallel, [&] {
      idRefs.reserve(n);
      for (uint32_t i = 0; i < n; ++i)
        if (const EventView* e = std::get_if<EventView>(&b.events[i]))
          idRefs.emplace_back(e->eventId, i);
      sortByKey(idRefs, firstOf);
    });
    struct Ref {
      std::string_view key;
      uint32_t event;
      bool predecessor;
    };
    std::vector<Ref> refs;
    refs.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      const EventView* e = std::get_if<EventView>(&b.events[i]);
      if (!e) continue;
      refs.push_back(Ref{e->tokenKey, i, false});
      if (const auto* c = std::get_if<CreatedView>(&e->body); c && !c->replaces.empty())
        refs.push_back(Ref{c->replaces, i, true});
    }
    b.slots.reserve(refs.size());  // moving slots would copy their tokens
    // Tens of MB in a rebuild: their pages are faulted in on another thread while
    // this one sorts.
    auto slotsFaulted = besides(
        b.parallel,
        [p = b.slots.data(), size = b.slots.capacity() * sizeof(Slot)] { populate(p, size); });
    sortByKey(refs, [](const Ref& r) { return r.key; });
    // A rebuild starts from empty databases: nothing to look up there.
    const bool noTokens = entries(txn, dbs_.tokens) == 0;
    const bool noIds = entries(txn, dbs_.eventIds) == 0;
    // The slots' keys, copied next to each other in key order: every later pass
    // walks them in that order, and reading them where they lie in the records
    // (log order) would miss the cache on each one.
    size_t keyBytes = 0;
    for (const Ref& r : refs) keyBytes += r.key.size();
    b.keys.reserve(keyBytes);  // never reallocates: the views below stay valid
    b.slotOf.assign(n, kNone);
    b.predecessorOf.assign(n, kNone);
    for (const Ref& r : refs) {
      if (b.slots.empty() || b.slots.back().key != r.key) {
        b.keys.append(r.key);
        b.slots.push_back(Slot{std::string_view(b.keys).substr(b.keys.size() - r.key.size()),
                               std::nullopt, false});
        if (auto raw = noTokens ? std::nullopt : txn.get(dbs_.tokens, r.key))
          b.slots.back().state = decodeToken(*raw);
      }
      (r.predecessor ? b.predecessorOf : b.slotOf)[r.event] =
          static_cast<uint32_t>(b.slots.size() - 1);
    }
    sortedIds.get();
    b.duplicate.assign(n, true);
    for (size_t from = 0, to = 0; from < idRefs.size(); from = to) {
      uint32_t earliest = idRefs[from].second;
      for (to = from + 1; to < idRefs.size() && idRefs[to].first == idRefs[from].first; ++to)
        earliest = std::min(earliest, idRefs[to].second);
      if (!noIds && txn.get(dbs_.eventIds, idRefs[from].first)) continue;
      b.duplicate[earliest] = false;
      b.newIds.emplace_back(idRefs[from].first, earliest);
    }
    slotsFaulted.get();
  }

  // Pass 2: the events in log order, against the slots.
  static void applyInLogOrder(Batch& b, const SkipReporter& report, ApplyReport& out) {
    const auto n = static_cast<uint32_t>(b.recs.size());
    b.history.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      // Slots are in key order, events in log order: each event's slot is a miss.
      if (i + kAhead < n && b.slotOf[i + kAhead] != kNone)
        prefetch(&b.slots[b.slotOf[i + kAhead]], sizeof(Slot));
      const LogRecord& rec = *b.recs[i];
      if (auto* err = std::get_if<DecodeError>(&b.events[i])) {
        out.skipped++;
        if (report) report(rec.position, err->message);
        continue;
      }
      if (b.duplicate[i]) {
        out.duplicates++;
        continue;
      }
      const EventView& event = std::get<EventView>(b.events[i]);
      // What the contract forbids (and the layouts above rely on, e.g. the owner's
      // length in one byte of the verify record) never reaches the databases.
      if (auto why = checkEvent(event)) {
        out.skipped++;
        if (report) report(rec.position, std::string(event.typeName()) + " event: " + *why);
        continue;
      }
      Slot& slot = b.slots[b.slotOf[i]];
      const std::optional<Token>& current = slot.state;
      auto applied = applyEvent(current, event);
      if (!applied) {
        out.skipped++;
        if (report)
          report(rec.position, std::string(event.typeName()) + " event for " +
                                   (current ? "an existing" : "an unknown") + " token " +
                                   std::string(event.tokenKey) + " of owner " +
                                   std::string(event.owner) + " does not apply");
        continue;
      }
      bool created = !current;
      if (created) b.owners.emplace_back(event.owner, b.slotOf[i]);
      b.history.push_back(Batch::HistoryRef{b.slotOf[i], applied->eventCount - 1, i});
      slot.state = std::move(applied);
      slot.dirty = true;
      // A successor records its predecessor; the predecessor learns its successor.
      if (created && b.predecessorOf[i] != kNone) {
        Slot& pred = b.slots[b.predecessorOf[i]];
        if (pred.state && pred.state->owner == slot.state->owner) {
          pred.state->replacedBy = slot.state->key;
          pred.dirty = true;
        }
      }
      out.applied++;
    }
  }

  // Pass 3: every change, in key order per database. Encoding tokens and sorting
  // the history go to the second thread meanwhile.
  void write(lmdb::Txn& txn, Batch& b) {
    const std::vector<Slot>& slots = b.slots;
    Packed tokenValues;
    std::promise<void> tokensEncoded;  // set (or failed) before the history sort
    auto encoded = besides(b.parallel, [&] {
      try {
        size_t bytes = 0;  // a close upper bound: no reallocation, each page touched once
        for (const Slot& slot : slots)
          if (slot.dirty) bytes += encodedTokenBound(*slot.state);
        tokenValues.reserve(bytes, slots.size());
        for (size_t i = 0; i < slots.size(); ++i) {
          if (i + kAhead < slots.size() && slots[i + kAhead].dirty) {
            const Token& t = *slots[i + kAhead].state;
            prefetch(t.key.data());
            prefetch(t.description.data());
          }
          if (slots[i].dirty) tokenValues.add(encodeToken(*slots[i].state));
        }
        tokensEncoded.set_value();
      } catch (...) {
        tokensEncoded.set_exception(std::current_exception());
        return;
      }
      std::sort(b.history.begin(), b.history.end(), [](const auto& x, const auto& y) {
        return x.slot != y.slot ? x.slot < y.slot : x.seq < y.seq;
      });
    });
    SortedWriter idsOut(txn, dbs_.eventIds);
    std::string value;  // reused: no allocation per entry
    for (size_t i = 0; i < b.newIds.size(); ++i) {
      if (i + kAhead < b.newIds.size()) {
        prefetch(b.newIds[i + kAhead].first.data());
        prefetch(b.recs[b.newIds[i + kAhead].second]);
      }
      idsOut.put(b.newIds[i].first, toString(b.recs[b.newIds[i].second]->position, value));
    }
    SortedWriter verifyOut(txn, dbs_.verify);
    for (size_t i = 0; i < slots.size(); ++i) {
      if (i + kAhead < slots.size() && slots[i + kAhead].dirty)
        prefetch(slots[i + kAhead].state->destinationId.data());
      if (slots[i].dirty) verifyOut.put(slots[i].key, encodeVerifyRecord(value, *slots[i].state));
    }
    // By owner, then by token key (slots are in key order): ownerKey order.
    sortByKey(b.owners, firstOf, [](const auto& x, const auto& y) { return x.second < y.second; });
    SortedWriter ownersOut(txn, dbs_.byOwner);
    std::string key;  // reused: no allocation per entry
    for (size_t i = 0; i < b.owners.size(); ++i) {
      if (i + kAhead < b.owners.size()) {
        prefetch(b.owners[i + kAhead].first.data());
        prefetch(slots[b.owners[i + kAhead].second].key.data());
      }
      ownersOut.put(layout::ownerKey(key, b.owners[i].first, slots[b.owners[i].second].key), "");
    }
    tokensEncoded.get_future().get();
    SortedWriter tokensOut(txn, dbs_.tokens);
    for (size_t i = 0, v = 0; i < slots.size(); ++i)
      if (slots[i].dirty) tokensOut.put(slots[i].key, tokenValues[v++]);
    encoded.get();  // the history sorted too
    // The history needs only the slots' keys and the records: the rest is freed on
    // the second thread meanwhile.
    auto freed = besides(b.parallel, [&] {
      for (Slot& slot : b.slots) slot.state.reset();
      release(b.events);
      release(b.newIds);
      release(b.owners);
      tokenValues = Packed();
    });
    SortedWriter historyOut(txn, dbs_.history);
    for (size_t i = 0; i < b.history.size(); ++i) {
      if (i + 2 * kAhead < b.history.size()) prefetch(b.recs[b.history[i + 2 * kAhead].event]);
      if (i + kAhead < b.history.size()) {
        const auto& h = b.history[i + kAhead];
        prefetch(slots[h.slot].key.data());
        prefetch(b.recs[h.event]->value.data(), b.recs[h.event]->value.size());
      }
      const auto& h = b.history[i];
      historyOut.put(layout::historyKey(key, slots[h.slot].key, h.seq), b.recs[h.event]->value);
    }
    freed.get();
  }

  // Puts keys in ascending order; those past the database's last key go in with
  // MDB_APPEND (no search, and pages fill up instead of splitting in half), which
  // is every key when a rebuild starts from empty.
  class SortedWriter {
   public:
    SortedWriter(lmdb::Txn& txn, MDB_dbi dbi) : cursor_(txn, dbi) {
      empty_ = !cursor_.last();
      if (!empty_) last_ = std::string(cursor_.key());
    }
    // Any order is correct; ascending keys are what makes it fast.
    void put(std::string_view key, std::string_view value) {
      bool append = empty_ || key > last_;
      cursor_.put(key, value, append ? MDB_APPEND : 0);
      if (append) {
        empty_ = false;
        last_.assign(key);
      }
    }

   private:
    lmdb::Cursor cursor_;  // one cursor: appends continue where the last one ended
    std::string last_;     // the database's largest key
    bool empty_ = true;
  };

  // Sorts `v` by key(element) without chasing every key on every comparison: the
  // sort moves 16-byte entries holding the 8 bytes that follow what all keys share
  // (random token keys and ids differ there), and reads whole keys only on ties.
  // Sorting the keys themselves cost more than the writes they order.
  template <typename T, typename KeyOf, typename TieLess = std::nullptr_t>
  static void sortByKey(std::vector<T>& v, KeyOf keyOf, TieLess tieLess = nullptr) {
    if (v.size() < 2) return;
    std::string_view first = keyOf(v[0]);
    size_t common = first.size();
    for (const auto& e : v) {
      std::string_view k = keyOf(e);
      size_t n = 0, m = std::min(common, k.size());
      while (n < m && k[n] == first[n]) ++n;
      common = n;
    }
    struct Entry {
      uint64_t prefix;
      uint32_t size;
      uint32_t index;
    };
    std::vector<Entry> entries(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      std::string_view k = keyOf(v[i]);
      uint64_t p = 0;
      for (size_t b = common; b < common + 8; ++b)
        p = (p << 8) | (b < k.size() ? static_cast<unsigned char>(k[b]) : 0u);
      entries[i] = Entry{p, static_cast<uint32_t>(k.size()), static_cast<uint32_t>(i)};
    }
    std::sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
      if (a.prefix != b.prefix) return a.prefix < b.prefix;
      // Equal prefixes of keys that end within them: equal keys, unless lengths differ.
      if (a.size <= common + 8 && b.size <= common + 8) {
        if (a.size != b.size) return a.size < b.size;
      } else if (int c = keyOf(v[a.index]).compare(keyOf(v[b.index])); c != 0) {
        return c < 0;
      }
      if constexpr (std::is_same_v<TieLess, std::nullptr_t>)
        return false;
      else
        return tieLess(v[a.index], v[b.index]);
    });
    std::vector<T> sorted;
    sorted.reserve(v.size());
    for (const auto& e : entries) sorted.push_back(std::move(v[e.index]));
    v.swap(sorted);
  }

  const Dbs& dbs_;
};

}  // namespace

Dbs openDbs(lmdb::Txn& txn, bool create) {
  using namespace layout;
  return Dbs{txn.openDb(kTokens, 0, create),    txn.openDb(kByOwner, 0, create),
             txn.openDb(kHistory, 0, create),   txn.openDb(kEventIds, 0, create),
             txn.openDb(kPositions, 0, create), txn.openDb(kMeta, 0, create),
             txn.openDb(kVerify, 0, create)};
}

void apply(lmdb::Txn& txn, const Dbs& dbs, std::vector<const LogRecord*> recs,
           const SkipReporter& report, ApplyReport& out) {
  Applier(dbs).run(txn, std::move(recs), report, out);
}

void populate(const void* p, size_t size) {
  constexpr uintptr_t kPage = 4096;
  auto from = (reinterpret_cast<uintptr_t>(p) + kPage - 1) / kPage * kPage;
  auto to = (reinterpret_cast<uintptr_t>(p) + size) / kPage * kPage;
  if (to > from) madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE);
}

}  // namespace tokenledger::batch
