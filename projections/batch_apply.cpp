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
#include "projections/idempotency.h"
#include "projections/read_model_layout.h"
#include "projections/token.h"

namespace tokenledger::batch {
namespace {

inline void prefetch(const void* p) {
  __builtin_prefetch(p);
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

// One per thread: a group's root signature is verified once per thread.
SignatureVerifier& threadVerifier() {
  thread_local SignatureVerifier verifier;
  return verifier;
}

class Applier {
 public:
  Applier(const Dbs& dbs, WriterTrust* trust, const OwnEvents* own)
      : dbs_(dbs), trust_(trust), own_(own) {}

  void run(lmdb::Txn& txn, std::vector<const LogRecord*> recs, const SkipReporter& report,
           ApplyReport& out) {
    Batch batch;
    batch.recs = std::move(recs);
    batch.parallel = batch.recs.size() >= kParallelBatch;
    decode(batch);
    judgeTrust(batch, out);
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
    // Its stored history entries: [historyFrom, +historyBytes) of Batch::storedHistory.
    size_t historyFrom = 0;
    size_t historyBytes = 0;
  };

  // An idempotency key (owner \0 key) during one apply(): its claim as stored, then
  // as the batch changes it.
  struct Claim {
    std::string key;
    std::optional<IdempotencyRecord> stored;  // as read (its time index to replace)
    std::optional<IdempotencyRecord> record;  // as the batch leaves it
    bool dirty = false;
  };

  static constexpr uint32_t kNone = UINT32_MAX;
  // Loops that read memory scattered over the batch ask for it kAhead entries
  // early, which overlaps the cache misses they would wait on one by one.
  static constexpr size_t kAhead = 8;

  // One apply()'s working state; each pass fills in what the next reads.
  struct Batch {
    std::vector<const LogRecord*> recs;  // the new records, in log order
    bool parallel = false;               // big enough for the second thread
    std::vector<DecodedView> events;     // per record: views into it
    std::vector<SignatureCheck> checks;  // per record, with a trust policy
    std::vector<bool> untrusted;         // per record: refused by the trust policy
    std::vector<std::pair<uint32_t, std::string>> refusals;  // (record, why), log order
    std::vector<std::pair<Partition, PublicKey>> certified;  // certificates accepted
    std::vector<Claim> claims;            // per idempotency key the batch uses, key order
    std::vector<uint32_t> claimOf;        // per event: its claim, or kNone
    std::optional<Timestamp> newest;      // the newest applied event's time
    std::string keys;                     // the slots' keys, in key order
    std::vector<Slot> slots;              // per token the batch mentions, key order
    std::string storedHistory;            // the slots' stored history entries
    std::vector<uint32_t> slotOf;         // per event: its token's slot
    std::vector<uint32_t> predecessorOf;  // per event: the slot of the token it replaces
    std::vector<bool> duplicate;          // per event: id stored or seen before
    std::vector<std::pair<std::string_view, uint32_t>> newIds;  // (id, event), key order
    struct HistoryRef {
      uint32_t slot, seq, event;
    };
    std::vector<HistoryRef> history;  // per applied event: its entry
    // Entries past a record's kInlineHistory, for the history database: each one
    // and its ref, in key order.
    std::vector<std::string> spilled;
    std::vector<HistoryRef> spilledRefs;
    std::vector<std::pair<std::string_view, uint32_t>> owners;  // (owner, slot) per creation
  };

  static std::string_view firstOf(const std::pair<std::string_view, uint32_t>& pair) {
    return pair.first;
  }

  // Decodes every record and, with a trust policy, checks its signature against
  // every key the trust knows (the expensive part, so on both threads).
  void decode(Batch& b) {
    const size_t n = b.recs.size();
    b.events.resize(n);
    if (trust_) b.checks.resize(n);
    auto decode = [&](size_t from, size_t to) {
      SignatureVerifier& verifier = threadVerifier();
      for (size_t i = from; i < to; ++i) {
        b.events[i] = decodeEventView(b.recs[i]->value);
        if (!trust_ || !std::holds_alternative<EventView>(b.events[i])) continue;
        // This process's own envelopes are validly signed by construction.
        if (own_ && own_->contains(b.recs[i]->value)) {
          b.checks[i] = SignatureCheck{};
          b.checks[i].status = SignatureStatus::valid;
          b.checks[i].keyId = own_->keyId();
        } else {
          b.checks[i] = verifier.check(b.recs[i]->value, trust_->knownKeys());
        }
      }
    };
    auto upper = besides(b.parallel, [&] { decode(n / 2, n); });
    decode(0, n / 2);
    upper.get();
  }

  // In log order: certificates extend the trust from where they lie in their
  // partition, and each token event is trusted or not where it lies.
  void judgeTrust(Batch& b, ApplyReport& out) {
    const size_t n = b.recs.size();
    b.untrusted.assign(n, false);
    if (!trust_) return;
    for (size_t i = 0; i < n; ++i) {
      const LogRecord& rec = *b.recs[i];
      const Partition p = rec.position.partition;
      if (auto* err = std::get_if<DecodeError>(&b.events[i])) {
        if (err->kind != DecodeError::Kind::notTokenEvent) continue;
        auto decoded = decodeEvent(rec.value);
        const Event* e = std::get_if<Event>(&decoded);
        if (!e) {  // a broken certificate: reported as malformed
          b.events[i] = std::get<DecodeError>(std::move(decoded));
          continue;
        }
        auto admitted = trust_->admitCertificate(p, *e);
        if (auto* key = std::get_if<PublicKey>(&admitted)) {
          b.certified.emplace_back(p, *key);
          out.certificates++;
        } else {
          b.untrusted[i] = true;
          b.refusals.emplace_back(static_cast<uint32_t>(i),
                                  "untrusted: " + std::get<std::string>(admitted));
        }
        continue;
      }
      SignatureCheck& check = b.checks[i];
      // Signed by a key certified earlier in this batch: checked now that it is known.
      if (check.status == SignatureStatus::unknownKey && trust_->knownKeys().find(check.keyId))
        check = threadVerifier().check(rec.value, trust_->knownKeys());
      if (auto why = trust_->refusal(p, check)) {
        b.untrusted[i] = true;
        b.refusals.emplace_back(static_cast<uint32_t>(i), std::move(*why));
      }
    }
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
        if (const EventView* e = std::get_if<EventView>(&b.events[i]); e && !b.untrusted[i])
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
    std::vector<std::pair<std::string, uint32_t>> claimRefs;  // (owner \0 key, event)
    for (uint32_t i = 0; i < n; ++i) {
      const EventView* e = std::get_if<EventView>(&b.events[i]);
      if (!e || b.untrusted[i]) continue;
      if (!e->idempotencyKey.empty()) {
        std::string k;
        claimRefs.emplace_back(layout::idempotencyKey(k, e->owner, e->idempotencyKey), i);
      }
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
        if (auto raw = noTokens ? std::nullopt : txn.get(dbs_.tokens, r.key)) {
          Slot& slot = b.slots.back();
          TokenRecord stored = decodeTokenRecord(r.key, *raw);
          slot.state = std::move(stored.token);
          slot.historyFrom = b.storedHistory.size();
          slot.historyBytes = stored.history.size();
          b.storedHistory.append(stored.history);
        }
      }
      (r.predecessor ? b.predecessorOf : b.slotOf)[r.event] =
          static_cast<uint32_t>(b.slots.size() - 1);
    }
    // Idempotency keys: few (only requests that sent one), so plainly sorted.
    std::sort(claimRefs.begin(), claimRefs.end());
    b.claimOf.assign(n, kNone);
    for (auto& [k, event] : claimRefs) {
      if (b.claims.empty() || b.claims.back().key != k) {
        Claim c;
        if (auto raw = txn.get(dbs_.idempotency, k))
          c.stored = layout::decodeIdempotencyRecord(*raw);
        c.record = c.stored;
        c.key = std::move(k);
        b.claims.push_back(std::move(c));
      }
      b.claimOf[event] = static_cast<uint32_t>(b.claims.size() - 1);
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
    size_t refusal = 0;  // the next of b.refusals
    for (uint32_t i = 0; i < n; ++i) {
      // Slots are in key order, events in log order: each event's slot is a miss.
      if (i + kAhead < n && b.slotOf[i + kAhead] != kNone)
        prefetch(&b.slots[b.slotOf[i + kAhead]], sizeof(Slot));
      const LogRecord& rec = *b.recs[i];
      if (b.untrusted[i]) {
        out.untrusted++;
        if (report) report(rec.position, b.refusals[refusal].second);
        refusal++;
        continue;
      }
      if (auto* err = std::get_if<DecodeError>(&b.events[i])) {
        // A certificate is the trust's (judgeTrust): nothing for the token state.
        if (err->kind == DecodeError::Kind::notTokenEvent) continue;
        out.skipped++;
        if (report) report(rec.position, err->message);
        continue;
      }
      if (b.duplicate[i]) {
        // A copy of an event applied before (a replayed or copied record).
        out.duplicates++;
        if (report)
          report(rec.position, "duplicate: an event with this id was applied before; ignored");
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
      Claim* claim = b.claimOf[i] != kNone ? &b.claims[b.claimOf[i]] : nullptr;
      const Token* predecessor = nullptr;
      if (b.predecessorOf[i] != kNone && b.slots[b.predecessorOf[i]].state)
        predecessor = &*b.slots[b.predecessorOf[i]].state;
      // Conditional events whose state no longer holds, and repeated requests, change
      // nothing anywhere: counted, not reported (they are the losers of races).
      if ((claim && claimHolds(claim->record, event.occurredAt)) ||
          conflictOf(current, predecessor, event) != Conflict::none) {
        out.conflicts++;
        continue;
      }
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
      if (claim) {
        claim->record = IdempotencyRecord{event.occurredAt, std::string(event.requestDigest),
                                          std::string(event.tokenKey)};
        claim->dirty = true;
      }
      if (!b.newest || event.occurredAt > *b.newest) b.newest = event.occurredAt;
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

  // Pass 3: every change, in key order per database. Encoding the token records
  // (state and history) goes to the second thread meanwhile.
  void write(lmdb::Txn& txn, Batch& b) {
    writeTrustAndClaims(txn, b);
    const std::vector<Slot>& slots = b.slots;
    Packed tokenValues;
    auto encoded = besides(b.parallel, [&] {
      // Each token's new entries in log order, after its stored ones.
      std::sort(b.history.begin(), b.history.end(), [](const auto& x, const auto& y) {
        return x.slot != y.slot ? x.slot < y.slot : x.seq < y.seq;
      });
      auto eventOf = [&](const Batch::HistoryRef& h) -> const EventView& {
        return std::get<EventView>(b.events[h.event]);
      };
      size_t bytes = 0;  // exact: no reallocation, each page touched once
      for (const Slot& slot : slots)
        if (slot.dirty) bytes += encodedTokenSize(*slot.state) + slot.historyBytes;
      for (const auto& h : b.history)
        if (h.seq < layout::kInlineHistory) bytes += historyEntrySize(eventOf(h));
      tokenValues.reserve(bytes, slots.size());
      std::string record;  // reused: no allocation per token
      for (size_t i = 0, h = 0; i < slots.size(); ++i) {
        if (i + kAhead < slots.size() && slots[i + kAhead].dirty) {
          const Token& t = *slots[i + kAhead].state;
          prefetch(t.owner.data());
          prefetch(t.description.data());
        }
        if (!slots[i].dirty) continue;
        record.clear();
        appendToken(record, *slots[i].state);
        record.append(b.storedHistory, slots[i].historyFrom, slots[i].historyBytes);
        for (; h < b.history.size() && b.history[h].slot == i; ++h) {
          if (b.history[h].seq < layout::kInlineHistory) {
            appendHistoryEntry(record, eventOf(b.history[h]));
          } else {  // beyond the record: its own entry in history (key order)
            b.spilled.emplace_back();
            appendHistoryEntry(b.spilled.back(), eventOf(b.history[h]));
            b.spilledRefs.push_back(b.history[h]);
          }
        }
        tokenValues.add(record);
      }
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
    // By owner, then by creation time, then by token key (slots are in key order):
    // ownerKey order.
    sortByKey(b.owners, firstOf, [&slots](const auto& x, const auto& y) {
      Timestamp a = slots[x.second].state->createdAt, b = slots[y.second].state->createdAt;
      return a != b ? a < b : x.second < y.second;
    });
    SortedWriter ownersOut(txn, dbs_.byOwner);
    std::string key;  // reused: no allocation per entry
    for (size_t i = 0; i < b.owners.size(); ++i) {
      if (i + kAhead < b.owners.size()) {
        prefetch(b.owners[i + kAhead].first.data());
        prefetch(slots[b.owners[i + kAhead].second].key.data());
      }
      const Slot& s = slots[b.owners[i].second];
      ownersOut.put(layout::ownerKey(key, b.owners[i].first, s.state->createdAt, s.key), "");
    }
    encoded.get();
    SortedWriter tokensOut(txn, dbs_.tokens);
    for (size_t i = 0, v = 0; i < slots.size(); ++i)
      if (slots[i].dirty) tokensOut.put(slots[i].key, tokenValues[v++]);
    SortedWriter historyOut(txn, dbs_.history);
    for (size_t i = 0; i < b.spilled.size(); ++i) {
      const auto& h = b.spilledRefs[i];
      historyOut.put(layout::historyKey(key, slots[h.slot].key, h.seq), b.spilled[i]);
    }
  }

  // The certificates accepted, and the idempotency claims made, by the batch; then
  // claims old enough to be purged (projections/idempotency.h). Few entries: plain
  // puts.
  void writeTrustAndClaims(lmdb::Txn& txn, Batch& b) {
    for (const auto& [p, key] : b.certified)
      txn.put(dbs_.writers, layout::writerKey(p, key.keyId), key.key);
    if (b.newest) purgeClaims(txn, *b.newest);
    for (const Claim& c : b.claims) {
      if (!c.dirty) continue;
      if (c.stored)
        txn.del(dbs_.idempotencyByTime, layout::idempotencyTimeKey(c.stored->recordedAt, c.key));
      txn.put(dbs_.idempotency, c.key, layout::encodeIdempotencyRecord(*c.record));
      txn.put(dbs_.idempotencyByTime, layout::idempotencyTimeKey(c.record->recordedAt, c.key), "");
    }
  }

  // Removes the claims recorded kIdempotencyPurgeAfter before the newest event
  // applied so far (kept in meta, so that the cut does not depend on how the log
  // was split into batches).
  void purgeClaims(lmdb::Txn& txn, Timestamp newestInBatch) {
    Timestamp newest = newestInBatch;
    if (auto raw = txn.get(dbs_.meta, layout::kNewestEventKey))
      if (auto stored = layout::timeOf(*raw)) newest = std::max(newest, *stored);
    txn.put(dbs_.meta, layout::kNewestEventKey, layout::timeValue(newest));
    const Timestamp cut = newest - kIdempotencyPurgeAfter;
    std::vector<std::string> expired;
    {
      lmdb::Cursor c(txn, dbs_.idempotencyByTime);
      for (bool ok = c.first(); ok; ok = c.next()) {
        auto k = layout::splitIdempotencyTimeKey(c.key());
        if (!k || k->first >= cut) break;
        expired.emplace_back(c.key());
      }
    }
    for (const auto& k : expired) {
      std::string_view ownerAndKey = std::string_view(k).substr(8);
      txn.del(dbs_.idempotencyByTime, k);
      auto raw = txn.get(dbs_.idempotency, ownerAndKey);
      auto rec = raw ? layout::decodeIdempotencyRecord(*raw) : std::nullopt;
      if (rec && layout::idempotencyTimeKey(rec->recordedAt, ownerAndKey) == k)
        txn.del(dbs_.idempotency, ownerAndKey);
    }
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
  WriterTrust* trust_;    // null: every well-formed event is taken
  const OwnEvents* own_;  // null: every signature is checked
};

}  // namespace

Dbs openDbs(lmdb::Txn& txn, bool create) {
  using namespace layout;
  return Dbs{txn.openDb(kTokens, 0, create),      txn.openDb(kByOwner, 0, create),
             txn.openDb(kHistory, 0, create),     txn.openDb(kEventIds, 0, create),
             txn.openDb(kPositions, 0, create),   txn.openDb(kMeta, 0, create),
             txn.openDb(kVerify, 0, create),      txn.openDb(kWriters, 0, create),
             txn.openDb(kIdempotency, 0, create), txn.openDb(kIdempotencyByTime, 0, create)};
}

void apply(lmdb::Txn& txn, const Dbs& dbs, std::vector<const LogRecord*> recs,
           const SkipReporter& report, ApplyReport& out, WriterTrust* trust, const OwnEvents* own) {
  Applier(dbs, trust, own).run(txn, std::move(recs), report, out);
}

void populate(const void* p, size_t size) {
  constexpr uintptr_t kPage = 4096;
  auto from = (reinterpret_cast<uintptr_t>(p) + kPage - 1) / kPage * kPage;
  auto to = (reinterpret_cast<uintptr_t>(p) + size) / kPage * kPage;
  if (to > from) madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE);
}

}  // namespace tokenledger::batch
