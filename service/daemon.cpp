#include "service/daemon.h"

#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "events/event_log.h"
#include "events/kafka_log.h"
#include "events/secrets.h"
#include "projections/read_model.h"
#include "service/api.h"
#include "service/executor.h"
#include "service/http_server.h"
#include "service/token_service.h"

namespace tokenledger {
namespace fs = std::filesystem;
namespace {

// An exclusive lock on DATA_DIR/LOCK for the life of the object.
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    std::string path = dir + "/LOCK";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw std::runtime_error("data directory " + dir +
                               " is in use by another tokenledgerd; stop it or use another "
                               "--data-dir");
    }
  }
  ~DirLock() { ::close(fd_); }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

void prepareDataDir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create data directory " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
}

std::unique_ptr<EventLog> openLog(const DaemonOptions& o) {
  if (o.log == "embedded") return openEmbeddedLog(o.dataDir + "/log", {o.mapSizeBytes});
  if (o.log == "kafka") {
    KafkaLogOptions k;
    k.brokers = o.kafkaBrokers;
    k.topic = o.topic;
    k.partitions = o.partitions;
    return openKafkaLog(k);
  }
  throw std::runtime_error("unknown --log " + o.log + "; use embedded or kafka");
}

class DaemonImpl final : public Daemon {
 public:
  DaemonImpl(const DaemonOptions& o, const Clock& clock, Logger logger)
      : lock_((prepareDataDir(o.dataDir), o.dataDir)), logger_(std::move(logger)) {
    std::string secret = o.operatorSecret;
    if (secret.empty()) {
      secret = loadOrCreateOperatorSecret(o.dataDir);
      secretSource_ = fs::absolute(o.dataDir + "/operator-secret").lexically_normal().string();
    } else {
      secretSource_ = "the TOKENLEDGER_OPERATOR_SECRET environment variable";
    }
    log_ = openLog(o);
    model_ = openReadModel(o.dataDir + "/projection", {o.mapSizeBytes});
    projector_ = startProjector(*log_, *model_, logger_);
    api_ = std::make_unique<Api>(secret, *projector_, clock);
    auto locks = std::make_shared<KeyLocks>();
    executor_ = std::make_unique<CommandExecutor>(o.commandThreads, [&, locks] {
      return std::make_unique<TokenService>(*log_, *model_, *projector_, clock,
                                            std::chrono::seconds(10), locks);
    });
    server_ = createHttpServer(HttpServerOptions{o.listenHost, o.listenPort, o.httpThreads}, *api_,
                               *model_, *projector_, *executor_, logger_);
  }

  ~DaemonImpl() override {
    server_.reset();
    if (executor_) executor_->stop();
    if (projector_) projector_->stop();
  }

  std::string address() const override { return server_->address(); }
  std::string operatorSecretSource() const override { return secretSource_; }

  void run() override {
    server_->run();
    executor_->stop();
    projector_->stop();
  }

  void stop() override { server_->stop(); }

 private:
  DirLock lock_;
  Logger logger_;
  std::string secretSource_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<ReadModel> model_;
  std::unique_ptr<Projector> projector_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<CommandExecutor> executor_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace

std::string loadOrCreateOperatorSecret(const std::string& dataDir) {
  std::string path = dataDir + "/operator-secret";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    std::string secret = "tlop_" + randomBase62(43);
    std::string line = secret + "\n";
    bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
              ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) throw std::runtime_error("cannot write " + path + ": " + strerror(errno));
    return secret;
  }
  if (errno != EEXIST) throw std::runtime_error("cannot create " + path + ": " + strerror(errno));
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    throw std::runtime_error(path + " is readable by other users; run `chmod 600 " + path + "`");
  std::ifstream in(path);
  std::string secret;
  std::getline(in, secret);
  while (!secret.empty() && (secret.back() == '\r' || secret.back() == ' ')) secret.pop_back();
  if (secret.size() < 16)
    throw std::runtime_error(path + " holds no usable secret (under 16 characters); delete it to "
                             "have a new one generated");
  return secret;
}

std::unique_ptr<Daemon> openDaemon(const DaemonOptions& options, const Clock& clock,
                                   Logger logger) {
  return std::make_unique<DaemonImpl>(options, clock, std::move(logger));
}

std::string rebuildProjection(const DaemonOptions& o, Logger logger) {
  prepareDataDir(o.dataDir);
  DirLock lock(o.dataDir);
  auto log = openLog(o);
  std::string target = o.dataDir + "/projection";
  std::string fresh = o.dataDir + "/projection.rebuilding";
  fs::remove_all(fresh);
  size_t skipped = 0;
  auto report = rebuildReadModel(*log, fresh,
                                 [&](const Position& p, const std::string& why) {
                                   skipped++;
                                   logger("rebuild: skipped event at " + toString(p) + ": " + why);
                                 },
                                 {o.mapSizeBytes});
  std::string old = o.dataDir + "/projection.old";
  fs::remove_all(old);
  if (fs::exists(target)) fs::rename(target, old);
  fs::rename(fresh, target);
  fs::remove_all(old);
  return "rebuilt the read model from the " + log->describe() + ": " +
         std::to_string(report.applied) + " events applied, " + std::to_string(report.skipped) +
         " skipped, " + std::to_string(report.duplicates) + " duplicates";
}

}  // namespace tokenledger
