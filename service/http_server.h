// The HTTP transport: libh2o event loops (one per thread, each with its own
// SO_REUSEPORT listening socket on the one port) that feed requests to Api and carry
// responses back. Commands run on the
// CommandExecutor's pool; their responses return to the request's loop through h2o's
// multithread queue. If the client went away meanwhile, the response is dropped
// (the command itself still completes: nothing acknowledged is lost).
#pragma once

#include <memory>
#include <string>

#include "projections/projector.h"
#include "projections/read_model.h"
#include "service/api.h"
#include "service/executor.h"

namespace tokenledger {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 picks a free port
  int threads = 2;
  // Open connections across all loops; past it new ones get a 503 and are closed.
  size_t maxConnections = 1024;
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // "HOST:PORT" actually bound.
  virtual std::string address() const = 0;
  // Serves until stop(), then stops accepting, finishes in-flight commands, closes
  // the connections left and returns. Call once.
  virtual void run() = 0;
  // Thread-safe; returns at once.
  virtual void stop() = 0;
  // Open connections across all loops (for GET /metrics). Thread-safe.
  virtual size_t openConnections() const = 0;
};

// Binds the listening socket now (throws std::runtime_error with a clear message if
// it cannot). `api`, `model`, `projector` and `executor` must outlive the server.
std::unique_ptr<HttpServer> createHttpServer(const HttpServerOptions& options, Api& api,
                                             ReadModel& model, Projector& projector,
                                             CommandExecutor& executor, Logger logger);

}  // namespace tokenledger
