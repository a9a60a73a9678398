#include "projections/room.h"

#include <fcntl.h>

#include <cerrno>

#include <algorithm>
#include <cstring>

namespace tokenledger {
namespace {

constexpr uint64_t kMB = 1 << 20;
// The bound's parts (see boundFor). Each event dirties at most a few pages per tree
// it touches (tokens, verify, by_owner, event_ids) and adds its entries.
// Every transaction copies the paths to what it changes, the free list and the DB
// records: about 24 pages for one event on trees of depth 3, more as the trees
// deepen. Pages a transaction frees are reused once no reader holds an older
// snapshot, which readers release within about 50 ms, so the last few
// transactions' copies stay in the file: the per-transaction share is 256 KB (ten
// times one copy) to 4 MB, in proportion to the file.
constexpr uint64_t kPagesPerEvent = 24 << 10;
constexpr uint64_t kDataPerEvent = 2 << 10;
// The map starts with this much room beyond the data (or the limit, if smaller).
constexpr uint64_t kInitialRoom = 64 * kMB;

std::string mb(uint64_t bytes) {
  return std::to_string((bytes + kMB - 1) / kMB) + " MB";
}

}  // namespace

Room::Room(lmdb::Env& env, Options options, WithoutReaders withoutReaders)
    : env_(env), options_(std::move(options)), withoutReaders_(std::move(withoutReaders)) {
  highWater_ = env_.usedBytes();
  uint64_t want = std::min(options_.limitBytes, highWater() + kInitialRoom);
  // Never below what LMDB already holds (it would refuse to shrink anyway).
  want = std::max(want, highWater());
  if (want != env_.mapSize()) env_.setMapSize(want);
  map_ = env_.mapSize();
  reserved_ = options_.reserveDisk ? 0 : map_.load();
  committed();  // reserves disk ahead of the first batch
}

uint64_t Room::boundFor(uint64_t events) const {
  uint64_t perTransaction = std::clamp<uint64_t>(highWater() / 16, 256 << 10, 4 * kMB);
  return perTransaction + std::min(events * kPagesPerEvent, highWater() + events * kDataPerEvent);
}

RoomProblem Room::full() const {
  return RoomProblem{"read_model_full",
                     "the read model in " + options_.dir + " reached its size limit of " +
                         mb(options_.limitBytes) +
                         " (--map-size-mb); nothing was recorded. Restart tokenledgerd with a "
                         "larger --map-size-mb"};
}

RoomProblem Room::diskFull() const {
  std::lock_guard lock(mutex_);
  return RoomProblem{"disk_full", "the disk holding the read model in " + options_.dir +
                                      " is full (" + diskError_ +
                                      "); nothing was recorded. Free disk space; commands "
                                      "are accepted again once the read model can grow"};
}

bool Room::diskRefused() const {
  std::lock_guard lock(mutex_);
  return !diskError_.empty();
}

std::optional<RoomProblem> Room::check(uint64_t events) const {
  uint64_t need = highWater() + boundFor(events);
  if (need > options_.limitBytes) return full();
  if (options_.reserveDisk && need > reservedBytes() && diskRefused()) return diskFull();
  return std::nullopt;
}

std::optional<RoomProblem> Room::claim(uint64_t events) {
  uint64_t need = highWater() + boundFor(events);
  if (need > options_.limitBytes) return full();
  if (!options_.reserveDisk || need <= reservedBytes()) return std::nullopt;
  // A burst beyond what was reserved ahead: reserve now, with room for more.
  uint64_t ahead = std::min(options_.limitBytes, need + boundFor(64));
  int rc = reserve(ahead);
  if (rc != 0) rc = reserve(need);
  if (rc == 0) return std::nullopt;
  setDiskError(rc);
  return diskFull();
}

bool Room::growMap(uint64_t atLeast) {
  // Doubling keeps remaps rare; each one waits for every reader to step out.
  uint64_t want = std::min(options_.limitBytes, std::max(atLeast, 2 * mapBytes()));
  bool grown = withoutReaders_([&] { env_.setMapSize(want); });
  if (!grown) return false;
  map_ = env_.mapSize();
  if (!options_.reserveDisk) reserved_ = map_.load();
  if (options_.log)
    options_.log("read model map grown to " + mb(mapBytes()) + " (limit " +
                 mb(options_.limitBytes) + ")");
  return true;
}

int Room::reserve(uint64_t bytes) {
  std::lock_guard lock(reserving_);
  if (bytes <= reservedBytes()) return 0;
  int fd = -1;
  lmdb::check(mdb_env_get_fd(env_.get(), &fd), "mdb_env_get_fd");
  if (options_.reserve) {
    int rc = options_.reserve(fd, bytes);
    if (rc == 0) reserved_ = std::max(reservedBytes(), bytes);
    return rc;
  }
  // Allocates only the holes, also beyond the end of the file (the map grows into
  // them later) without changing its size; blocks in use are left as they are.
  int rc = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(bytes)) == 0 ? 0 : errno;
  if (rc == EOPNOTSUPP) {
    // A file system without fallocate: glibc's emulation writes, so only up to
    // the map (the file's size); beyond it the next growth tries again.
    bytes = std::min(bytes, mapBytes());
    rc = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  }
  if (rc == 0) reserved_ = std::max(reservedBytes(), bytes);
  return rc;
}

void Room::setDiskError(int rc) {
  std::lock_guard lock(mutex_);
  std::string now = rc == 0 ? "" : std::strerror(rc);
  if (now == diskError_) return;
  if (options_.log)
    options_.log(rc != 0 ? "cannot reserve disk for the read model in " + options_.dir + " (" +
                               now + "); commands are refused until there is room"
                         : "the read model in " + options_.dir + " has disk room again");
  diskError_ = now;
}

void Room::makeRoomFor(uint64_t events) {
  uint64_t need = highWater() + boundFor(events);
  if (need > options_.limitBytes) throw RoomExhausted(full());
  if (need > mapBytes() && !growMap(need))
    throw std::runtime_error(
        "the read model's map could not grow now: a reader kept its "
        "snapshot; retrying");
  if (!options_.reserveDisk) return;
  // (Whether the disk counts as full is committed()'s to say: this batch fitting
  // does not mean the next 64 events do.)
  if (int rc = reserve(need); rc != 0) {
    setDiskError(rc);
    throw RoomExhausted(diskFull());
  }
}

void Room::growAfterMapFull() {
  if (mapBytes() >= options_.limitBytes) throw RoomExhausted(full());
  if (!growMap(2 * mapBytes()))
    throw std::runtime_error(
        "the read model's map could not grow now: a reader kept its "
        "snapshot; retrying");
  if (!options_.reserveDisk) return;
  if (int rc = reserve(mapBytes()); rc != 0) {
    setDiskError(rc);
    throw RoomExhausted(diskFull());
  }
}

void Room::committed() {
  highWater_ = env_.usedBytes();
  if (!options_.reserveDisk) return;
  // Renewed when less is left than 64 events in flight need: then an eighth of the
  // file ahead (1 to 64 MB), or twice that least, whichever is more. A disk without
  // that much room gives what it has left, down to 16 events' worth; it counts as
  // full (for check()) while it cannot give the least.
  const uint64_t least = std::min(highWater() + boundFor(64), options_.limitBytes);
  int refused = 0;  // posix_fallocate's error for the last size the disk refused
  if (reservedBytes() < least) {
    uint64_t ahead = std::max(std::clamp(highWater() / 8, kMB, 64 * kMB), 2 * boundFor(64));
    uint64_t target = std::min(highWater() + ahead, options_.limitBytes);
    if (target > mapBytes() && !growMap(target)) return;  // the next batch tries again
    for (uint64_t bytes : {target, least, highWater() + boundFor(16)}) {
      int rc = reserve(bytes);
      if (rc == 0) break;
      refused = rc;
    }
  }
  setDiskError(reservedBytes() >= least ? 0 : refused);
}

}  // namespace tokenledger
