// How the read model applies a batch of records in one write transaction: three
// passes over the batch (look up everything it touches in key order, apply the
// events in log order in memory, write every change in key order). Sorted access
// walks each B-tree once instead of jumping around it per event, which is what
// bounds rebuilds (token keys are random). Big batches (rebuilds, catching up)
// share the memory work with a second thread; the write transaction stays on the
// caller's, as LMDB requires. Internal to projections/: read_model.h is the
// interface.
#pragma once

#include <cstddef>
#include <vector>

#include "events/event_log.h"
#include "events/lmdb.h"
#include "events/own_events.h"
#include "events/trust.h"
#include "projections/read_model.h"

namespace tokenledger::batch {

// The read model's databases (read_model_layout.h), opened in one transaction.
struct Dbs {
  MDB_dbi tokens, byOwner, history, eventIds, positions, meta, verify, writers, idempotency,
      idempotencyByTime;
};
// Throws lmdb::LmdbError (MDB_NOTFOUND when `create` is false and one is missing).
Dbs openDbs(lmdb::Txn& txn, bool create);

// Batches from this size on use a second thread for decoding, sorting and
// encoding: below it, starting the thread costs more than it saves.
constexpr size_t kParallelBatch = 4096;

// Applies `recs` (records not applied before, in log order; they must outlive the
// call) in `txn`, counting into `out` and reporting each skipped record. The
// applied positions are the caller's to store. With `trust` (null: every
// well-formed event is taken), only events it trusts change state, and the
// certificates accepted on the way are added to it and stored: the caller keeps
// the updated trust only once the transaction commits. Envelopes in `own` (this
// process signed them: events/own_events.h) count as validly signed by its key
// without a check. Throws lmdb::LmdbError with the transaction to be aborted.
void apply(lmdb::Txn& txn, const Dbs& dbs, std::vector<const LogRecord*> recs,
           const SkipReporter& report, ApplyReport& out, WriterTrust* trust,
           const OwnEvents* own = nullptr);

// Faults in the whole pages of [p, p + size) for writing, at once rather than one
// fault per page on first use (MADV_POPULATE_WRITE: Linux 5.14 on; a no-op before).
// Leaves their content alone.
void populate(const void* p, size_t size);

}  // namespace tokenledger::batch
