#include "service/daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sodium.h>

#include "events/certificate.h"
#include "events/event_log.h"
#include "events/kafka_log.h"
#include "events/secrets.h"
#include "events/signed_appender.h"
#include "projections/read_model.h"
#include "service/api.h"
#include "service/executor.h"
#include "service/files.h"
#include "service/http_server.h"
#include "service/token_service.h"
#include "service/unique_fd.h"

namespace tokenledger {
namespace fs = std::filesystem;
namespace {

// How long a command waits for its event to show in the read model before 503.
constexpr std::chrono::milliseconds kVisibilityTimeout{10000};

// An exclusive lock on DATA_DIR/LOCK for the life of the object.
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    std::string path = dir + "/LOCK";
    fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd_) throw std::runtime_error("cannot open " + path + ": " + strerror(errno));
    if (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0)
      throw std::runtime_error("data directory " + dir +
                               " is in use by another tokenledgerd; stop it or use another "
                               "--data-dir");
  }

 private:
  UniqueFd fd_;  // closing it releases the lock
};

// The gid of --reader-group (a name or a number).
gid_t readerGid(const std::string& group) {
  if (!group.empty() && group.find_first_not_of("0123456789") == std::string::npos)
    return static_cast<gid_t>(std::stoul(group));
  std::vector<char> buf(16384);
  struct group g {};
  struct group* found = nullptr;
  if (getgrnam_r(group.c_str(), &g, buf.data(), buf.size(), &found) != 0 || found == nullptr)
    throw std::runtime_error("--reader-group " + group + ": no such group; create it (groupadd " +
                             group + ") or give a numeric gid");
  return found->gr_gid;
}

// chgrp + chmod of one path; throws saying what to do.
void setAccess(const std::string& path, std::optional<gid_t> gid, mode_t mode) {
  if (gid && ::chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0)
    throw std::runtime_error("cannot give " + path + " to group " + std::to_string(*gid) +
                             " (--reader-group): " + strerror(errno) +
                             "; the daemon's user must be a member of that group "
                             "(usermod -aG GROUP USER)");
  if (::chmod(path.c_str(), mode) != 0)
    throw std::runtime_error("cannot chmod " + path + ": " + strerror(errno));
}

// DATA_DIR is the daemon's alone (0700), or with --reader-group traversable by the
// group (0710: it may reach DATA_DIR/projection, list nothing, and every other file
// there stays 0600/0700).
void prepareDataDir(const DaemonOptions& o) {
  const std::string& dir = o.dataDir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create data directory " + dir + ": " + ec.message());
  if (o.readerGroup.empty()) {
    ::chmod(dir.c_str(), 0700);
  } else {
    setAccess(dir, readerGid(o.readerGroup), 0710);
  }
}

std::unique_ptr<EventLog> openLog(const DaemonOptions& o) {
  if (o.log == "embedded") return openEmbeddedLog(o.dataDir + "/log", {o.mapSizeBytes});
  if (o.log == "kafka") {
    KafkaLogOptions k;
    k.brokers = o.kafkaBrokers;
    k.topic = o.topic;
    k.partitions = o.partitions;
    k.replicationFactor = o.replicationFactor;
    k.minInsyncReplicas = o.minInsyncReplicas;
    k.appendTimeoutMs = o.appendTimeoutMs;
    return openKafkaLog(k);
  }
  throw std::runtime_error("unknown --log " + o.log + "; use embedded or kafka");
}

std::string readText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The contents of a file the operator named: throws when it cannot be read.
std::string readNamedFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + what + " " + path + ": " + strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Appends `cert` to every partition of `log`, so that replicas trust this writer's
// events wherever they lie (events/trust.h): before this writer appends anything.
void publishCertificate(EventLog& log, const WriterCertificate& cert, const Clock& clock) {
  for (int32_t p = 0; p < log.partitionCount(); ++p) {
    Event e;
    e.eventId = randomBytes(16);
    e.actor = "writer " + writerKeyIdOf(cert);
    e.occurredAt = clock.now();
    e.body = cert;
    log.appendToPartition(Partition{p}, {encodeEvent(e)});
  }
}

// How to certify `key`, for error messages.
std::string certifyHint(const DaemonOptions& o, const SigningKey& key) {
  return "certify it where the root key is kept: `ledger-audit keys certify --root ROOT_KEY "
         "--writer-key '" +
         key.publicKeyLine() + "' --out " + o.dataDir +
         "/writer.cert`, then start again (docs/kafka.md, \"Trusted writers\")";
}

// Replaces DATA_DIR/signing-state. No fsync: the state is a hint that may lag behind
// the log, never run ahead of it (see openSigner).
void writeState(const std::string& path, const std::string& text) {
  writeFileAtomically(path, text, 0600, Sync::no);
}

uint64_t openFilesLimit() {
  rlimit l{};
  if (getrlimit(RLIMIT_NOFILE, &l) != 0 || l.rlim_cur == RLIM_INFINITY) return 1u << 20;
  return l.rlim_cur;
}

// The connection limit for `o`, logged with how it was chosen.
size_t chooseMaxConnections(const DaemonOptions& o, const Logger& logger) {
  uint64_t files = openFilesLimit();
  uint64_t fitting = connectionsFitting(files);
  if (o.maxConnections == 0) {
    uint64_t n = defaultMaxConnections(files);
    logger("accepting at most " + std::to_string(n) + " connections (the default for " +
           std::to_string(files) + " open files; set it with --max-connections)");
    return n;
  }
  logger("accepting at most " + std::to_string(o.maxConnections) +
         " connections (--max-connections)");
  if (o.maxConnections > fitting)
    logger("warning: --max-connections " + std::to_string(o.maxConnections) +
           " is above what the open-files limit of " + std::to_string(files) +
           " leaves for connections (" + std::to_string(fitting) +
           "); past that, accepts pause on EMFILE. Raise the hard limit (ulimit -Hn, systemd "
           "LimitNOFILE=) or lower --max-connections");
  return o.maxConnections;
}

class DaemonImpl final : public Daemon {
 public:
  DaemonImpl(const DaemonOptions& o, const Clock& clock, Logger logger)
      : lock_((prepareDataDir(o), o.dataDir)), logger_(std::move(logger)) {
    std::string secret = o.operatorSecret;
    if (secret.empty()) {
      secret = loadOrCreateOperatorSecret(o.dataDir);
      secretSource_ = fs::absolute(o.dataDir + "/operator-secret").lexically_normal().string();
    } else {
      secretSource_ = "the TOKENLEDGER_OPERATOR_SECRET environment variable";
    }
    bool keyCreated = false;
    SigningKey key = loadOrCreateSigningKey(o.dataDir, keyCreated);
    DaemonTrust trust = daemonTrust(o, key);
    logger_("trusted writers: " +
            (trust.policy ? trust.policy->describe()
                          : std::string("every writer of this data directory's log (embedded "
                                        "mode without --trust-root or --trust-keys)")));
    log_ = openLog(o);
    if (trust.certificate) {
      publishCertificate(*log_, *trust.certificate, clock);
      logger_("published this writer's certificate (key " + key.keyId() + ", root " +
              trust.certificate->rootKeyId + ") to every partition of the " + log_->describe());
    }
    // With a trust policy the projection checks signatures, except of the envelopes
    // this writer signed (own_events.h).
    std::shared_ptr<OwnEvents> own;
    if (trust.policy) own = std::make_shared<OwnEvents>(key.keyId());
    signer_ = openSigner(o.dataDir, std::move(key), keyCreated, own);
    // Lazy commits, synced at close (see ReadModelOptions).
    ReadModelOptions modelOptions;
    modelOptions.mapSizeBytes = o.mapSizeBytes;
    modelOptions.syncEachCommit = false;
    modelOptions.trust = trust.policy;
    modelOptions.ownEvents = own;
    if (auto why = readModelRebuildReason(o.dataDir + "/projection", modelOptions)) {
      logger_(*why + "; rebuilding it from the log");
      logger_(replaceProjection(*log_, o, logger_));
    }
    model_ = openReadModel(o.dataDir + "/projection", modelOptions, {logger_, nullptr});
    // After the open, which makes the directory 0700 again; before anything is served.
    shareProjection(o.dataDir + "/projection", o.readerGroup);
    if (!o.readerGroup.empty())
      logger_("group " + o.readerGroup + " may read the read model in " + o.dataDir +
              "/projection (--reader-group; docs/verify-library.md)");
    projector_ = startProjector(*log_, *model_, logger_);
    api_ = std::make_unique<Api>(secret, *projector_, clock);
    KeyRing published;
    published.addLines(readText(o.dataDir + "/signing-keys.pub"), "signing-keys.pub");
    api_->setSigningKeys(published, signer_->key().keyId());
    api_->startCreatesOn(*signer_, kVisibilityTimeout);
    api_->setMaxPositionWaiters(o.maxPositionWaiters);
    api_->setLog(*log_);
    logger_("events are signed with key " + signer_->key().keyId() + " (public keys in " +
            o.dataDir + "/signing-keys.pub and at GET /v1/keys)");
    if (o.lastUsed) startLastUsed(o, clock);
    auto locks = std::make_shared<KeyLocks>();
    executor_ = std::make_unique<CommandExecutor>(o.commandThreads, [&, locks] {
      return std::make_unique<TokenService>(*log_, *model_, *projector_, clock, kVisibilityTimeout,
                                            locks, signer_);
    });
    HttpServerOptions http{o.listenHost, o.listenPort, o.httpThreads,
                           chooseMaxConnections(o, logger_)};
    server_ = createHttpServer(http, *api_, *model_, *projector_, *executor_, logger_);
    api_->metrics().setCollector(
        [this, dataFile = o.dataDir + "/projection/data.mdb",
         limit = o.mapSizeBytes](Exposition& e) { collectMetrics(e, dataFile, limit); });
  }

  ~DaemonImpl() override {
    server_.reset();
    if (executor_) executor_->stop();
    if (projector_) projector_->stop();
  }

  std::string address() const override { return server_->address(); }
  std::string operatorSecretSource() const override { return secretSource_; }
  void setCommandLog(LineLogger log) { api_->setCommandLog(std::move(log)); }

  void run() override {
    server_->run();
    executor_->stop();
    projector_->stop();
    if (flusher_) flusher_->stop();  // writes what the last verifications recorded
  }

  void stop() override { server_->stop(); }

 private:
  // Last used (issue 17): DATA_DIR/usage, its own LMDB environment so that rebuilds
  // of the read model (which is made from the log alone) keep it; on Kafka also the
  // compacted usage topic, read whole into it.
  void startLastUsed(const DaemonOptions& o, const Clock& clock) {
    std::string replica = loadOrCreateReplicaId(o.dataDir);
    usageStore_ = std::make_unique<UsageStore>(o.dataDir + "/usage");
    std::string where = o.dataDir + "/usage";
    if (o.log == "kafka") {
      UsageTopicOptions t;
      t.brokers = o.kafkaBrokers;
      t.topic = o.usageTopic.empty() ? o.topic + ".usage" : o.usageTopic;
      t.partitions = o.partitions;
      t.replicationFactor = o.replicationFactor;
      usageTopic_ = std::make_unique<UsageTopic>(t, [store = usageStore_.get(), log = logger_,
                                                     clock = &clock](const UsageStore::Rows& rows) {
        try {
          if (size_t refused = store->putRows(rows, clock->now()))
            log("last used: refused " + std::to_string(refused) +
                " row(s) of the usage topic (no token key, or a minute in the future); "
                "whoever writes them can write to the topic: check its ACLs");
        } catch (const std::exception& e) {
          log(std::string("last used: cannot store rows from the usage topic: ") + e.what() +
              "; they count again when the topic is read at the next start");
        }
      });
      where += " and " + usageTopic_->describe();
    }
    flusher_ =
        std::make_unique<LastUsedFlusher>(recorder_, *usageStore_, usageTopic_.get(), replica,
                                          std::chrono::milliseconds(o.lastUsedFlushMs), logger_);
    api_->setLastUsed(recorder_, *usageStore_);
    logger_("last used: recorded per minute, flushed every " + std::to_string(o.lastUsedFlushMs) +
            " ms to " + where + " as replica " + replica + " (--last-used)");
  }

  // The gauges of GET /metrics that the server, projector, log and read model own
  // (docs/operations.md lists them). On a command thread, at each scrape.
  void collectMetrics(Exposition& e, const std::string& dataFile, uint64_t mapLimit) {
    if (flusher_) {
      e.family("tokenledger_last_used_flushes_total", "counter",
               "Flushes of last-used data (--last-used-flush-ms) since start.");
      e.sample("tokenledger_last_used_flushes_total", "", flusher_->flushes());
      e.family("tokenledger_last_used_pending_tokens", "gauge",
               "Tokens verified since the last flush of last-used data.");
      e.sample("tokenledger_last_used_pending_tokens", "", uint64_t{recorder_.pending()});
    }
    e.family("tokenledger_http_connections", "gauge", "Open HTTP connections.");
    e.sample("tokenledger_http_connections", "", uint64_t{server_->openConnections()});

    Offsets applied = projector_->applied();
    std::optional<Offsets> end;
    try {
      end = log_->endOffsets();
    } catch (const std::exception& ex) {
      logger_(std::string("metrics: cannot read the log's end offsets: ") + ex.what());
    }
    size_t partitions = std::max(applied.next.size(), end ? end->next.size() : 0);
    e.family("tokenledger_projector_applied_offset", "gauge",
             "Next offset the projector applies, per partition of the log.");
    for (size_t p = 0; p < partitions; ++p)
      e.sample("tokenledger_projector_applied_offset",
               Exposition::label("partition", std::to_string(p)),
               static_cast<double>(applied.of(Partition{static_cast<int32_t>(p)}).value));
    if (end) {
      e.family("tokenledger_log_end_offset", "gauge",
               "Next offset the log appends at, per partition.");
      int64_t lag = 0;
      for (size_t p = 0; p < partitions; ++p) {
        Partition part{static_cast<int32_t>(p)};
        e.sample("tokenledger_log_end_offset", Exposition::label("partition", std::to_string(p)),
                 static_cast<double>(end->of(part).value));
        lag += std::max<int64_t>(0, end->of(part).value - applied.of(part).value);
      }
      e.family("tokenledger_projector_lag_records", "gauge",
               "Records in the log that the read model has not applied yet, over all "
               "partitions.");
      e.sample("tokenledger_projector_lag_records", "", static_cast<double>(lag));
    }
    e.family("tokenledger_projector_ready", "gauge",
             "1 once the read model caught up with the log at start, while applying works.");
    e.sample("tokenledger_projector_ready", "", uint64_t{projector_->ready() ? 1u : 0u});

    ApplyReport t = projector_->totals();
    e.family("tokenledger_projector_events_total", "counter",
             "Log records the projector handled since start, by outcome: applied, duplicate, "
             "conflict (lost a race), certificate, skipped (malformed or of an unknown type), "
             "untrusted (refused by the trust policy).");
    const std::pair<std::string_view, size_t> outcomes[] = {
        {"applied", t.applied},          {"duplicate", t.duplicates}, {"conflict", t.conflicts},
        {"certificate", t.certificates}, {"skipped", t.skipped},      {"untrusted", t.untrusted}};
    for (const auto& [outcome, n] : outcomes)
      e.sample("tokenledger_projector_events_total", Exposition::label("outcome", outcome),
               uint64_t{n});

    struct stat st {};
    if (::stat(dataFile.c_str(), &st) == 0) {
      uint64_t disk = static_cast<uint64_t>(st.st_blocks) * 512;
      e.family("tokenledger_read_model_disk_bytes", "gauge",
               "Disk space the read model's data file takes (allocated blocks).");
      e.sample("tokenledger_read_model_disk_bytes", "", disk);
      e.family("tokenledger_read_model_map_bytes", "gauge",
               "The read model's memory map now (its data file's size; grows on demand).");
      e.sample("tokenledger_read_model_map_bytes", "", static_cast<uint64_t>(st.st_size));
      e.family("tokenledger_read_model_map_used_ratio", "gauge",
               "Disk space of the read model over --map-size-mb: near 1, commands get 503 "
               "read_model_full.");
      e.sample("tokenledger_read_model_map_used_ratio", "",
               static_cast<double>(disk) / static_cast<double>(mapLimit));
    }
    e.family("tokenledger_read_model_map_limit_bytes", "gauge",
             "The most the read model's file may hold (--map-size-mb).");
    e.sample("tokenledger_read_model_map_limit_bytes", "", mapLimit);
  }

  DirLock lock_;
  Logger logger_;
  std::string secretSource_;
  // Where this writer's sequence stands (DATA_DIR/signing-state): recovered from the
  // log after the last recorded batch, so a restart continues the sequence.
  std::shared_ptr<SignedAppender> openSigner(const std::string& dir, SigningKey key, bool fresh,
                                             std::shared_ptr<OwnEvents> own) {
    std::string statePath = dir + "/signing-state";
    std::optional<WriterState> state;
    if (fresh) {
      // A new key has signed nothing yet: only events appended from now on matter.
      state = WriterState{0, "", log_->openReader(Offsets{})->endOffsets()};
    } else {
      state = parseWriterState(readText(statePath), key.keyId());
      if (!state) {
        logger_("signing state for key " + key.keyId() + " not found in " + statePath +
                "; scanning the whole " + log_->describe() + " for its last event");
        state = WriterState{};
      }
      state = recoverWriterState(*log_, key.keyId(), *state);
    }
    std::string keyId = key.keyId();
    writeState(statePath, formatWriterState(keyId, *state));
    return std::make_shared<SignedAppender>(
        *log_, std::move(key), *state,
        [statePath, keyId](const WriterState& st) {
          writeState(statePath, formatWriterState(keyId, st));
        },
        logger_, steadyClock(), std::move(own));
  }

  std::unique_ptr<EventLog> log_;
  std::shared_ptr<SignedAppender> signer_;
  std::unique_ptr<ReadModel> model_;
  std::unique_ptr<Projector> projector_;
  // Before api_, which points at them; the flusher's last flush comes after the
  // server's end.
  UsageRecorder recorder_;
  std::unique_ptr<UsageStore> usageStore_;
  std::unique_ptr<UsageTopic> usageTopic_;
  std::unique_ptr<LastUsedFlusher> flusher_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<CommandExecutor> executor_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace

uint64_t connectionsFitting(uint64_t openFilesLimit) {
  // A small limit keeps half for connections rather than leaving none.
  return openFilesLimit > 2 * kReservedFiles ? openFilesLimit - kReservedFiles : openFilesLimit / 2;
}

uint64_t defaultMaxConnections(uint64_t openFilesLimit) {
  return std::min(connectionsFitting(openFilesLimit), kDefaultMaxConnectionsCap);
}

std::string raiseOpenFilesLimit() {
  rlimit l{};
  if (getrlimit(RLIMIT_NOFILE, &l) != 0)
    return std::string("open files: cannot read the limit: ") + strerror(errno);
  rlim_t target = l.rlim_max;
  if (target == RLIM_INFINITY) {
    // Linux refuses more than fs.nr_open descriptors whatever the hard limit says.
    std::ifstream nrOpen("/proc/sys/fs/nr_open");
    uint64_t n = 0;
    target = (nrOpen >> n) && n > 0 ? n : 1u << 20;
  }
  if (l.rlim_cur != RLIM_INFINITY && l.rlim_cur >= target)
    return "open files: limit " + std::to_string(l.rlim_cur) + " (already the hard limit)";
  rlim_t before = l.rlim_cur;
  l.rlim_cur = target;
  if (setrlimit(RLIMIT_NOFILE, &l) != 0)
    return "open files: cannot raise the soft limit from " + std::to_string(before) + " to " +
           std::to_string(target) + ": " + strerror(errno) + "; connections are capped to fit " +
           std::to_string(before);
  return "open files: soft limit raised from " + std::to_string(before) + " to " +
         std::to_string(target);
}

std::string loadOrCreateOperatorSecret(const std::string& dataDir) {
  std::string path = dataDir + "/operator-secret";
  if (::access(path.c_str(), F_OK) != 0) {
    // Linked into place: never over a secret that is there already.
    std::string secret = "tlop_" + randomBase62(43);
    if (writeFileAtomically(path, secret + "\n", 0600, Sync::yes, IfExists::keep)) return secret;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    throw std::runtime_error(path + " is readable by other users; run `chmod 600 " + path + "`");
  std::ifstream in(path);
  std::string secret;
  std::getline(in, secret);
  while (!secret.empty() && (secret.back() == '\r' || secret.back() == ' ')) secret.pop_back();
  if (secret.size() < 16)
    throw std::runtime_error(path +
                             " holds no usable secret (under 16 characters); delete it to "
                             "have a new one generated");
  return secret;
}

SigningKey loadOrCreateSigningKey(const std::string& dataDir, bool& created) {
  std::string path = dataDir + "/signing-key";
  std::string pubPath = dataDir + "/signing-keys.pub";
  created = false;
  std::optional<SigningKey> key;
  if (::access(path.c_str(), F_OK) != 0) {
    // Written under a temporary name and linked into place, so a crash never leaves
    // a half-written key and two starts never make two keys (the second link fails).
    SigningKey fresh = SigningKey::generate();
    std::string text = fresh.toFileText();
    struct Wipe {
      std::string& text;
      ~Wipe() { sodium_memzero(text.data(), text.size()); }
    } wipe{text};
    if (writeFileAtomically(path, text, 0600, Sync::yes, IfExists::keep)) {
      created = true;
      key = std::move(fresh);
    }
  }
  if (!key) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
      throw std::runtime_error(path + " is readable by other users; run `chmod 600 " + path + "`");
    std::string text = readText(path);
    key = parseSigningKeyFile(text);
    sodium_memzero(text.data(), text.size());
    if (!key)
      throw std::runtime_error(path +
                               " holds no usable signing key; restore it from a backup, "
                               "or move it away to have a new key generated (docs/audit.md)");
  }
  // Publish the public key (append: keys used before stay listed).
  KeyRing listed;
  if (auto err = listed.addLines(readText(pubPath), pubPath)) throw std::runtime_error(*err);
  if (!listed.find(key->keyId()))
    appendToFile(pubPath, key->publicKeyLine() + "\n", 0644, Sync::yes);
  return std::move(*key);
}

std::optional<TrustPolicy> trustPolicy(const DaemonOptions& o, const SigningKey* key) {
  TrustPolicy p;
  std::vector<std::string> roots = o.trustRootFiles;
  if (roots.empty() && fs::exists(o.dataDir + "/trust-root.pub"))
    roots.push_back(o.dataDir + "/trust-root.pub");
  if (o.log == "embedded" && roots.empty() && o.trustKeysFiles.empty()) return std::nullopt;
  if (roots.empty() && o.trustKeysFiles.empty())
    throw std::runtime_error(
        "--log kafka needs a trust root, so that replicas apply only the events of writers "
        "you certified (anyone who can write to the topic could mint tokens otherwise). Make "
        "one once with `ledger-audit keys new-root --out ROOT_KEY` (keep ROOT_KEY offline), "
        "give every replica ROOT_KEY.pub with --trust-root (or copy it to " +
        o.dataDir + "/trust-root.pub), and " +
        (key ? certifyHint(o, *key)
             : std::string("certify each writer's key (`tokenledgerd --print-writer-key`, then "
                           "`ledger-audit keys certify`; docs/kafka.md, \"Trusted writers\")")));
  for (const auto& f : roots)
    if (auto err = p.roots.addLines(readNamedFile(f, "trust root"), f))
      throw std::runtime_error(*err);
  for (const auto& f : o.trustKeysFiles)
    if (auto err = p.writers.addLines(readNamedFile(f, "trusted keys file"), f))
      throw std::runtime_error(*err);
  // One machine: the data directory's own keys (every key it ever signed with) are
  // trusted with no setup. Never on Kafka: every replica must reach the same
  // verdicts, so none may trust what the others do not.
  if (o.log == "embedded") {
    std::string own = o.dataDir + "/signing-keys.pub";
    if (auto err = p.writers.addLines(readText(own), own)) throw std::runtime_error(*err);
  }
  return p;
}

DaemonTrust daemonTrust(const DaemonOptions& o, const SigningKey& key) {
  DaemonTrust t{trustPolicy(o, &key), std::nullopt};
  if (!t.policy) return t;
  std::string certPath = o.writerCertFile.empty() ? o.dataDir + "/writer.cert" : o.writerCertFile;
  if (fs::exists(certPath)) {
    auto cert = parseCertificateFile(readNamedFile(certPath, "writer certificate"));
    if (!cert)
      throw std::runtime_error(certPath + " is not a writer certificate; " + certifyHint(o, key));
    if (cert->writerKey != key.publicKey())
      throw std::runtime_error(certPath + " certifies key " + writerKeyIdOf(*cert) +
                               ", not this writer's key " + key.keyId() + "; " +
                               certifyHint(o, key));
    const PublicKey* root = t.policy->roots.find(cert->rootKeyId);
    if (!root)
      throw std::runtime_error(certPath + " is signed by root key " + cert->rootKeyId +
                               ", which this replica does not trust; give its public key with "
                               "--trust-root, or " +
                               certifyHint(o, key));
    if (!certificateValid(*cert, *root))
      throw std::runtime_error(certPath + " has an invalid root signature; " + certifyHint(o, key));
    t.certificate = std::move(*cert);
  }
  if (!t.certificate && !t.policy->writers.find(key.keyId())) {
    throw std::runtime_error("this writer's key " + key.keyId() +
                             " is not certified by a trusted root, so every replica (this one "
                             "too) would refuse its events; " +
                             certifyHint(o, key));
  }
  return t;
}

std::unique_ptr<Daemon> openDaemon(const DaemonOptions& options, const Clock& clock, Logger logger,
                                   LineLogger commandLog) {
  if (!commandLog)
    commandLog = [logger, &clock](const LogLine& line) {
      // The text format without the time, which `logger` adds.
      std::string text = formatLogLine(line, clock.now(), LogFormat::text);
      logger(text.substr(text.find(' ') + 1));
    };
  auto daemon = std::make_unique<DaemonImpl>(options, clock, std::move(logger));
  daemon->setCommandLog(std::move(commandLog));
  return daemon;
}

std::string replaceProjection(EventLog& log, const DaemonOptions& o, const Logger& logger) {
  std::string target = o.dataDir + "/projection";
  std::string fresh = o.dataDir + "/projection.rebuilding";
  fs::remove_all(fresh);
  ReadModelOptions options;
  options.mapSizeBytes = o.mapSizeBytes;
  options.trust = trustPolicy(o);
  auto report = rebuildReadModel(log, fresh,
                                 [&](const Position& p, const std::string& why) {
                                   logger("rebuild: skipped event at " + toString(p) + ": " + why);
                                 },
                                 options, {logger, nullptr});
  // Readable by --reader-group from the moment it is in place.
  shareProjection(fresh, o.readerGroup);
  std::string old = o.dataDir + "/projection.old";
  fs::remove_all(old);
  if (fs::exists(target)) fs::rename(target, old);
  fs::rename(fresh, target);
  fs::remove_all(old);
  return "rebuilt the read model from the " + log.describe() + ": " +
         std::to_string(report.applied) + " events applied, " + std::to_string(report.skipped) +
         " skipped, " + std::to_string(report.untrusted) + " untrusted, " +
         std::to_string(report.conflicts) + " conflicts, " + std::to_string(report.duplicates) +
         " duplicates";
}

void shareProjection(const std::string& projectionDir, const std::string& group) {
  std::optional<gid_t> gid;
  if (!group.empty()) gid = readerGid(group);
  // x, not r, on the directory: LMDB opens its two files by name, nobody lists it.
  setAccess(projectionDir, gid, gid ? 0710 : 0700);
  setAccess(projectionDir + "/data.mdb", gid, gid ? 0640 : 0600);
  setAccess(projectionDir + "/lock.mdb", gid, gid ? 0660 : 0600);
}

std::string rebuildProjection(const DaemonOptions& o, Logger logger) {
  prepareDataDir(o);
  DirLock lock(o.dataDir);
  auto log = openLog(o);
  return replaceProjection(*log, o, logger);
}

}  // namespace tokenledger
