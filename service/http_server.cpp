#include "service/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <h2o.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "events/secrets.h"
#include "service/unique_fd.h"

namespace tokenledger {
namespace {

constexpr size_t kH2oEntityLimit = 1024 * 1024;  // beyond our 64 KiB limit, h2o answers 413 itself
// After accept() runs out of descriptors (EMFILE), how long the listener rests: the
// pending connections wait in the kernel's queue instead of waking the loop at once.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr auto kLogInterval = std::chrono::seconds(10);  // for conditions that repeat fast

const char* reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

// Request framing. libh2o 2.2.5 frames a body by the first Content-Length, or by
// the last Transfer-Encoding when there is one, and keeps neither header in
// req->headers. It refuses values it cannot parse (non-digits, signs, lists, a
// Transfer-Encoding other than "chunked"), but serves a request with two
// Content-Lengths, or with both headers, as it read it, while a proxy in front may
// have read it otherwise and taken what follows for another request (smuggling).
// Such requests are answered 400 and the connection is closed.

struct FramingHeaders {
  int contentLength = 0;
  int transferEncoding = 0;
  bool folded = false;  // a line continuing the previous header (obs-fold)
};

bool equalsLower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != lower[i]) return false;
  return true;
}

// Counts the framing headers in a raw HTTP/1 request head (request line, header
// lines, blank line; CRLF or bare LF, as libh2o's parser accepts).
FramingHeaders scanFraming(std::string_view head) {
  FramingHeaders f;
  bool requestLine = true;
  while (!head.empty()) {
    size_t eol = head.find('\n');
    std::string_view line = head.substr(0, eol);
    head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      if (requestLine) continue;  // an empty line before the request is skipped
      break;
    }
    if (requestLine) {
      requestLine = false;
    } else if (line.front() == ' ' || line.front() == '\t') {
      f.folded = true;
    } else {
      std::string_view name = line.substr(0, line.find(':'));
      if (equalsLower(name, "content-length")) f.contentLength++;
      if (equalsLower(name, "transfer-encoding")) f.transferEncoding++;
    }
  }
  return f;
}

std::optional<std::string> framingProblem(const FramingHeaders& f) {
  if (f.contentLength > 0 && f.transferEncoding > 0)
    return "the request has both Content-Length and Transfer-Encoding headers; send only one of "
           "them";
  if (f.contentLength > 1)
    return "the request has " + std::to_string(f.contentLength) +
           " Content-Length headers; send exactly one";
  if (f.transferEncoding > 1)
    return "the request has " + std::to_string(f.transferEncoding) +
           " Transfer-Encoding headers; send one, Transfer-Encoding: chunked";
  if (f.folded)
    return "a header line starts with a space or tab (obsolete line folding); send each header "
           "on one line";
  return std::nullopt;
}

// The raw head of an HTTP/1 request that has a body. In libh2o 2.2.5 the head stays
// at the start of the socket's input buffer until the response is sent, and the body
// (Content-Length, or chunked decoded in place) starts right after it. Empty if the
// buffer does not look like that.
std::optional<std::string_view> rawHead(h2o_req_t* req) {
  h2o_socket_t* sock = req->conn->callbacks->get_socket(req->conn);
  if (sock == nullptr || sock->input == nullptr || sock->input->bytes == nullptr) return {};
  auto begin = reinterpret_cast<uintptr_t>(sock->input->bytes);
  auto body = reinterpret_cast<uintptr_t>(req->entity.base);
  if (body < begin || body > begin + sock->input->size) return {};
  return std::string_view(sock->input->bytes, body - begin);
}

// Lets a log line through at most once per kLogInterval; counts the ones held back.
class Throttle {
 public:
  // True if a line may be logged now; `held` is then how many were held back since.
  bool allow(uint64_t& held) {
    std::lock_guard lock(mutex_);
    auto now = std::chrono::steady_clock::now();
    ++count_;
    if (logged_ && now - last_ < kLogInterval) return false;
    held = count_ - 1;
    count_ = 0;
    last_ = now;
    logged_ = true;
    return true;
  }

 private:
  std::mutex mutex_;
  std::chrono::steady_clock::time_point last_;
  bool logged_ = false;
  uint64_t count_ = 0;
};

// Owners of libh2o's C objects. What libh2o 2.2.5 provides: h2o_config_init and
// h2o_config_dispose; h2o_evloop_create and h2o_evloop_destroy (it frees the loop and
// the sockets closed on it, not the loop's epoll descriptor: later libh2o closes it,
// 2.2.5 leaks one per loop per run); h2o_context_init and h2o_context_dispose (which
// asserts that no connection is left, see closeConnections);
// h2o_multithread_create_queue and h2o_multithread_destroy_queue (in the evloop
// build of 2.2.5 it closes the queue's pipe but never frees the queue: later libh2o
// does, so it is not freed here either).

// The global configuration: disposed last, after every context made from it
// (h2o_context_dispose reads its hosts).
class GlobalConfig {
 public:
  GlobalConfig() { h2o_config_init(&config_); }
  ~GlobalConfig() { h2o_config_dispose(&config_); }
  GlobalConfig(const GlobalConfig&) = delete;
  GlobalConfig& operator=(const GlobalConfig&) = delete;
  h2o_globalconf_t* get() { return &config_; }

 private:
  h2o_globalconf_t config_{};
};

struct EvloopDestroy {
  void operator()(h2o_evloop_t* loop) const { h2o_evloop_destroy(loop); }
};
using Evloop = std::unique_ptr<h2o_evloop_t, EvloopDestroy>;

// A loop's context: disposed before its loop is destroyed (it registers timeouts
// with the loop, and h2o_evloop_destroy asserts that none is left).
struct ContextDispose {
  void operator()(h2o_context_t* ctx) const {
    // h2o_context_dispose asserts that no timeout has an entry left. Once
    // h2o_context_request_shutdown ran, HTTP/2's graceful-shutdown timer has one for
    // a second, even with HTTP/2 off; with no HTTP/2 connection it would do nothing.
    h2o_timeout_unlink(&ctx->http2._graceful_shutdown_timeout);
    h2o_context_dispose(ctx);
    delete ctx;
  }
};
using Context = std::unique_ptr<h2o_context_t, ContextDispose>;

Context makeContext(h2o_evloop_t* loop, h2o_globalconf_t* config) {
  auto ctx = std::make_unique<h2o_context_t>();
  h2o_context_init(ctx.get(), loop, config);
  return Context(ctx.release());
}

// A loop's multithread queue with its one receiver (where other threads send a
// loop its finished commands); destroyed before its loop.
class MessageQueue {
 public:
  MessageQueue(h2o_evloop_t* loop, h2o_multithread_receiver_cb onMessages)
      : queue_(h2o_multithread_create_queue(loop)) {
    h2o_multithread_register_receiver(queue_, &receiver_, onMessages);
  }
  ~MessageQueue() {
    h2o_multithread_unregister_receiver(queue_, &receiver_);
    h2o_multithread_destroy_queue(queue_);
  }
  MessageQueue(const MessageQueue&) = delete;
  MessageQueue& operator=(const MessageQueue&) = delete;
  h2o_multithread_receiver_t* receiver() { return &receiver_; }

 private:
  h2o_multithread_queue_t* queue_;
  h2o_multithread_receiver_t receiver_{};
};

struct SocketClose {
  void operator()(h2o_socket_t* sock) const { h2o_socket_close(sock); }
};
using Socket = std::unique_ptr<h2o_socket_t, SocketClose>;

class Server;
struct Loop;

// A command in flight (on the executor, or Started). Created on its loop, it
// belongs to the command from the hand-off (onRequest releases it) until the
// command sends it back as its loop's message (sendBack), and then to the loop
// again (onMessages reclaims it). `req` is cleared by the request pool's dispose
// hook if the client goes away first.
struct PendingJob {
  h2o_multithread_message_t message{};  // first member: messages are linked through it
  Loop* loop = nullptr;
  h2o_req_t* req = nullptr;
  struct Guard* guard = nullptr;
  HttpResponse response;
  Finish finish;  // Started commands: builds `response` back on the loop

  static PendingJob* of(h2o_linklist_t* message) { return reinterpret_cast<PendingJob*>(message); }
};

// In the request's pool (h2o_mem_alloc_shared): disposed with the request.
struct Guard {
  PendingJob* job;
};

// An accepted connection, listed by its loop until libh2o closes its socket.
struct OpenConnection {
  Loop* loop;
  h2o_socket_t* sock;
  std::list<OpenConnection>::iterator self;
};

struct Loop {
  Server* server = nullptr;
  int index = 0;
  std::unique_ptr<ReadModelReader> reader;
  std::list<OpenConnection> connections;  // outlives the h2o objects below
  // libh2o's objects, made on the loop's thread in this order and destroyed in
  // reverse at the end of runLoop (or with the Loop): the context registers timeouts
  // with the event loop; the queue and the listener are sockets of it.
  Evloop evloop;
  Context ctx;
  h2o_accept_ctx_t accept{};
  std::unique_ptr<MessageQueue> queue;
  Socket listener;                                                       // null once draining
  std::optional<std::chrono::steady_clock::time_point> acceptResumesAt;  // set while paused
  size_t pending = 0;
  uint64_t requestCounter = 0;
  uint64_t headerGeneration = 0;
  std::string appliedHeader;
  std::thread thread;
};

// Sets what every listening socket of ours has, binds it to `addr` and listens:
// false (with errno) if that fails.
bool listenOn(int fd, const sockaddr* addr, socklen_t len) {
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Every event loop gets its own socket on this port (SO_REUSEPORT), so the kernel
  // spreads connections evenly instead of one loop taking most of them.
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  return ::bind(fd, addr, len) == 0 && ::listen(fd, 4096) == 0;
}

thread_local Loop* tlsLoop = nullptr;

class Server final : public HttpServer {
 public:
  Server(const HttpServerOptions& options, Api& api, ReadModel& model, Projector& projector,
         CommandExecutor& executor, Logger logger)
      : api_(api),
        model_(model),
        projector_(projector),
        executor_(executor),
        logger_(std::move(logger)),
        runId_(toHex(randomBytes(4))),
        maxConnections_(options.maxConnections),
        refusal_(refusalResponse()),
        listenFd_(bindListener(options.host, options.port)) {
    h2o_globalconf_t& config = *config_.get();
    config.server_name = h2o_iovec_init(H2O_STRLIT("tokenledger"));
    config.max_request_entity_size = kH2oEntityLimit;
    // HTTP/1.1 only: the framing check reads HTTP/1 request heads, and an h2c upgrade
    // would let a proxy that passes Upgrade through tunnel requests past its own rules.
    config.http1.upgrade_to_http2 = 0;
    auto* host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    auto* path = h2o_config_register_path(host, "/", 0);
    auto* handler = h2o_create_handler(path, sizeof(h2o_handler_t));
    handler->on_req = &Server::onRequest;
    int n = options.threads < 1 ? 1 : options.threads;
    for (int i = 0; i < n; ++i) {
      loops_.push_back(std::make_unique<Loop>());
      loops_.back()->server = this;
      loops_.back()->index = i;
    }
  }

  std::string address() const override { return address_; }

  void run() override {
    for (auto& l : loops_) {
      Loop* loop = l.get();
      loop->thread = std::thread([this, loop] { runLoop(*loop); });
    }
    for (auto& l : loops_) l->thread.join();
  }

  void stop() override { stopping_ = true; }

  size_t openConnections() const override { return connections_.load(std::memory_order_relaxed); }

 private:
  // The first loop's listening socket (the others bind their own to the same
  // address); sets address_ to where it listens.
  UniqueFd bindListener(const std::string& host, uint16_t port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    addrinfo* found = nullptr;
    std::string service = std::to_string(port);
    int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
    if (rc != 0)
      throw std::runtime_error("cannot resolve listen address " + host + ": " + gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> res(found, &freeaddrinfo);
    UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd || !listenOn(fd.get(), res->ai_addr, res->ai_addrlen)) {
      int err = errno;
      throw std::runtime_error("cannot listen on " + host + ":" + service + ": " + strerror(err) +
                               (err == EADDRINUSE ? " (another process uses the port; pick "
                                                    "another with --listen HOST:PORT, or 0 for "
                                                    "any free port)"
                                                  : ""));
    }
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    char buf[INET6_ADDRSTRLEN] = {0};
    uint16_t bound = 0;
    boundAddr_ = addr;
    boundLen_ = len;
    if (addr.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
      bound = ntohs(a->sin6_port);
      address_ = "[" + std::string(buf) + "]:" + std::to_string(bound);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
      bound = ntohs(a->sin_port);
      address_ = std::string(buf) + ":" + std::to_string(bound);
    }
    return fd;
  }

  // A listening socket of its own for a loop other than the first, on the same
  // address.
  UniqueFd reuseportListener() {
    UniqueFd fd(::socket(boundAddr_.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd || !listenOn(fd.get(), reinterpret_cast<const sockaddr*>(&boundAddr_), boundLen_)) {
      // Fall back to sharing the first socket: slower spreading, same service.
      return UniqueFd(::dup(listenFd_.get()));
    }
    return fd;
  }

  void runLoop(Loop& l) {
    tlsLoop = &l;
    l.reader = model_.reader();
    l.evloop.reset(h2o_evloop_create());
    l.ctx = makeContext(l.evloop.get(), config_.get());
    l.accept.ctx = l.ctx.get();
    l.accept.hosts = config_.get()->hosts;
    l.queue = std::make_unique<MessageQueue>(l.evloop.get(), &Server::onMessages);
    // Loop 0 uses the socket bound at construction; the others bind their own.
    UniqueFd fd = l.index == 0 ? UniqueFd(::dup(listenFd_.get())) : reuseportListener();
    fcntl(fd.get(), F_SETFL, O_NONBLOCK);
    l.listener.reset(
        h2o_evloop_socket_create(l.evloop.get(), fd.release(), H2O_SOCKET_FLAG_DONT_READ));
    l.listener->data = &l;
    h2o_socket_read_start(l.listener.get(), &Server::onAccept);

    using Clock = std::chrono::steady_clock;
    Clock::time_point drainedAt{};
    bool draining = false;
    while (true) {
      h2o_evloop_run(l.evloop.get(), 50);
      resumeAcceptingIfDue(l);
      // At most 50 ms idle with a snapshot older than the newest commit: an idle loop
      // must not stop LMDB from reusing freed pages (see ReadModelReader::release).
      l.reader->releaseIfStale();
      if (!draining && stopping_) {
        draining = true;
        api_.setShuttingDown();
        h2o_socket_read_stop(l.listener.get());
        l.listener.reset();
        h2o_context_request_shutdown(l.ctx.get());
      }
      if (draining) {
        if (l.pending > 0) {
          drainedAt = Clock::time_point{};
        } else if (drainedAt == Clock::time_point{}) {
          drainedAt = Clock::now();
        } else if (Clock::now() - drainedAt > std::chrono::milliseconds(200)) {
          break;  // answered everything; give writes a moment to flush, then leave
        }
      }
    }
    bool closed = closeConnections(l);
    l.queue.reset();  // nothing pending: no command will send to it
    if (!closed) {
      // h2o_context_dispose would abort on a connection (and the loop cannot be
      // destroyed before its context): leave both undestroyed, as the process is about
      // to exit.
      logger_("HTTP loop " + std::to_string(l.index) + ": " + std::to_string(l.connections.size()) +
              " connections did not close; leaving the loop undestroyed");
      (void)l.ctx.release();
      (void)l.evloop.release();
    }
    l.ctx.reset();
    l.evloop.reset();
    l.reader.reset();
  }

  // Closes the loop's connections after draining. libh2o 2.2.5 keeps an idle
  // keep-alive connection open until its request timeout, even after
  // h2o_context_request_shutdown, and h2o_context_dispose asserts that none is left.
  // Shutting each socket down makes libh2o close it as it would one the client
  // closed. Waits for any command that a request read meanwhile started, as draining
  // does; true once no connection is left (within a second).
  static bool closeConnections(Loop& l) {
    for (const auto& c : l.connections) ::shutdown(h2o_socket_get_fd(c.sock), SHUT_RDWR);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (l.pending > 0 || (!l.connections.empty() && std::chrono::steady_clock::now() < deadline))
      h2o_evloop_run(l.evloop.get(), 10);
    return l.connections.empty();
  }

  static void onAccept(h2o_socket_t* listener, const char* err) {
    if (err != nullptr) return;
    auto* l = static_cast<Loop*>(listener->data);
    for (int i = 0; i < 16; ++i) {
      h2o_socket_t* sock = h2o_evloop_socket_accept(listener);
      if (sock != nullptr) {
        l->server->admit(*l, sock);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return;
      } else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        l->server->pauseAccepting(*l, errno);
        return;
      }  // else the client left before accept() (ECONNABORTED...): next one
    }
  }

  // Serves `sock`, or refuses it when --max-connections are open.
  void admit(Loop& l, h2o_socket_t* sock) {
    if (connections_.fetch_add(1) >= maxConnections_) {
      connections_.fetch_sub(1);
      refuse(sock);
      return;
    }
    l.connections.push_back(OpenConnection{&l, sock, {}});
    l.connections.back().self = std::prev(l.connections.end());
    sock->on_close.cb = &Server::onConnectionClosed;  // unused by libh2o's HTTP/1 server
    sock->on_close.data = &l.connections.back();
    h2o_accept(&l.accept, sock);
  }

  static void onConnectionClosed(void* connection) {
    auto* c = static_cast<OpenConnection*>(connection);
    Loop& l = *c->loop;
    l.server->connections_.fetch_sub(1);
    l.connections.erase(c->self);
  }

  // Answers 503 and closes at once: cheaper for both sides than leaving the client
  // queued in the kernel, and it learns why.
  void refuse(h2o_socket_t* sock) {
    int fd = h2o_socket_get_fd(sock);
    // A request already received but unread would turn the close into a reset, which
    // can destroy the response before the client reads it.
    char discard[4096];
    (void)::recv(fd, discard, sizeof discard, MSG_DONTWAIT);
    (void)::send(fd, refusal_.data(), refusal_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    h2o_socket_close(sock);
    uint64_t held = 0;
    if (refusedLog_.allow(held))
      logger_(
          "refused a connection: " + std::to_string(maxConnections_) +
          " are open (--max-connections)" +
          (held > 0 ? "; " + std::to_string(held) + " more refused since the last report" : "") +
          ". If clients need more, raise --max-connections (and the open-files limit)");
  }

  std::string refusalResponse() const {
    HttpResponse r = errorResponse("too_many_connections",
                                   "the server has as many connections open as it allows "
                                   "(--max-connections); retry later, or reuse a connection");
    return "HTTP/1.1 " + std::to_string(r.status) + " " + reasonPhrase(r.status) +
           "\r\nContent-Type: application/json\r\n"
           "Cache-Control: no-store\r\nConnection: close\r\nContent-Length: " +
           std::to_string(r.body.size()) + "\r\n\r\n" + r.body;
  }

  // accept() found no descriptor (or memory) for a new connection. The listener stays
  // readable, so retrying at once would spin: rest it for kAcceptPause instead.
  void pauseAccepting(Loop& l, int err) {
    h2o_socket_read_stop(l.listener.get());
    l.acceptResumesAt = std::chrono::steady_clock::now() + kAcceptPause;
    uint64_t held = 0;
    if (acceptErrorLog_.allow(held))
      logger_(std::string("cannot accept connections: ") + strerror(err) + " with " +
              std::to_string(connections_.load()) + " open; pausing accepts for " +
              std::to_string(kAcceptPause.count()) + " ms at a time" +
              (held > 0 ? " (" + std::to_string(held) + " times since the last report)" : "") +
              ". Raise the open-files limit (ulimit -n, systemd LimitNOFILE=) or lower "
              "--max-connections");
  }

  static void resumeAcceptingIfDue(Loop& l) {
    if (!l.acceptResumesAt || l.listener == nullptr) return;
    if (std::chrono::steady_clock::now() < *l.acceptResumesAt) return;
    l.acceptResumesAt.reset();
    h2o_socket_read_start(l.listener.get(), &Server::onAccept);
  }

  static void onGuardDisposed(void* p) {
    auto* g = static_cast<Guard*>(p);
    if (g->job != nullptr) g->job->req = nullptr;
  }

  static std::string_view header(h2o_req_t* req, const h2o_token_t* token) {
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    if (i < 0) return {};
    const auto& v = req->headers.entries[i].value;
    return std::string_view(v.base, v.len);
  }

  // A response for a request whose framing is ambiguous or cannot be checked, else
  // nothing. Only a request with a body carries framing headers.
  std::optional<HttpResponse> checkFraming(h2o_req_t* req) {
    if (req->entity.base == nullptr) return std::nullopt;
    std::optional<std::string_view> head = rawHead(req);
    if (!head) {
      logger_("cannot check a request's framing: its head is not where libh2o 2.2.5 keeps it");
      return errorResponse("internal_error",
                           "the server could not check the request's framing; see its log");
    }
    if (auto problem = framingProblem(scanFraming(*head)))
      return errorResponse("invalid_framing", *problem);
    return std::nullopt;
  }

  static int onRequest(h2o_handler_t*, h2o_req_t* req) {
    Loop& l = *tlsLoop;
    Server& s = *l.server;
    if (auto refused = s.checkFraming(req)) {
      // "Connection: close", then libh2o closes the connection after the response,
      // leaving whatever followed this request unread.
      req->http1_is_persistent = 0;
      s.send(l, req, *refused);
      return 0;
    }
    HttpRequest r;
    r.method = std::string_view(req->method.base, req->method.len);
    std::string_view full(req->path.base, req->path.len);
    if (req->query_at != SIZE_MAX) {
      r.path = full.substr(0, req->query_at);
      r.query = full.substr(req->query_at + 1);
    } else {
      r.path = full;
    }
    r.authorization = header(req, H2O_TOKEN_AUTHORIZATION);
    r.contentType = header(req, H2O_TOKEN_CONTENT_TYPE);
    if (ssize_t i =
            h2o_find_header_by_str(&req->headers, H2O_STRLIT("tokenledger-min-position"), -1);
        i >= 0)
      r.minPosition =
          std::string_view(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    if (ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("idempotency-key"), -1);
        i >= 0)
      r.idempotencyKey =
          std::string_view(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    r.hasBody = req->entity.base != nullptr;
    if (r.hasBody) r.body = std::string_view(req->entity.base, req->entity.len);
    if (r.method == "POST")
      r.requestId =
          s.runId_ + "-" + std::to_string(l.index) + "-" + std::to_string(++l.requestCounter);

    Routed routed = [&]() -> Routed {
      try {
        return s.api_.handle(r, *l.reader);
      } catch (const std::exception& e) {
        s.logger_(std::string("request failed: ") + e.what());
        return errorResponse("unavailable",
                             "the service could not read its read model; retry, and see the "
                             "service log if it persists");
      }
    }();
    if (auto* resp = std::get_if<HttpResponse>(&routed)) {
      s.send(l, req, *resp);
      return 0;
    }
    auto job = std::make_unique<PendingJob>();
    job->loop = &l;
    job->req = req;
    auto* guard =
        static_cast<Guard*>(h2o_mem_alloc_shared(&req->pool, sizeof(Guard), &onGuardDisposed));
    guard->job = job.get();
    job->guard = guard;
    l.pending++;
    // The hand-off: the job now belongs to the command, which gives it back with
    // sendBack, exactly once, from whichever thread finishes it.
    PendingJob* inFlight = job.release();
    if (auto* started = std::get_if<Started>(&routed)) {
      // No command thread: the command replies from whichever thread finishes it.
      (*started)([inFlight](Finish finish) {
        inFlight->finish = std::move(finish);
        sendBack(inFlight);
      });
      return 0;
    }
    s.executor_.post(
        [inFlight, deferred = std::move(std::get<Deferred>(routed)), &s](TokenService& svc) {
          try {
            inFlight->response = deferred(svc);
          } catch (const std::exception& e) {
            s.logger_(std::string("command failed: ") + e.what());
            inFlight->response =
                errorResponse("unavailable",
                              "the command could not complete; check the token's state before "
                              "retrying, and see the service log");
          }
          sendBack(inFlight);
        });
    return 0;
  }

  // A command's end of the hand-off (any thread): the job travels to its loop as the
  // message, and onMessages takes it back.
  static void sendBack(PendingJob* job) {
    h2o_multithread_send_message(job->loop->queue->receiver(), &job->message);
  }

  static void onMessages(h2o_multithread_receiver_t*, h2o_linklist_t* messages) {
    while (!h2o_linklist_is_empty(messages)) {
      // The loop's end of the hand-off: the job is owned here again.
      std::unique_ptr<PendingJob> job(PendingJob::of(messages->next));
      h2o_linklist_unlink(&job->message.link);
      Loop& l = *job->loop;
      if (job->req != nullptr) {
        job->guard->job = nullptr;
        if (job->finish) job->response = l.server->finish(l, job->finish);
        l.server->send(l, job->req, job->response);
      }
      l.pending--;
    }
  }

  HttpResponse finish(Loop& l, const Finish& f) {
    try {
      return f(*l.reader);
    } catch (const std::exception& e) {
      logger_(std::string("command failed: ") + e.what());
      return errorResponse("unavailable",
                           "the command could not complete; check the token's state before "
                           "retrying, and see the service log");
    }
  }

  void send(Loop& l, h2o_req_t* req, const HttpResponse& resp) {
    req->res.status = resp.status;
    req->res.reason = reasonPhrase(resp.status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, nullptr,
                   resp.contentType.data(), resp.contentType.size());
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, nullptr,
                   H2O_STRLIT("no-store"));
    uint64_t v = projector_.appliedVersion();
    if (v != l.headerGeneration || l.appliedHeader.empty()) {
      l.appliedHeader = projector_.applied().toString();
      l.headerGeneration = v;
    }
    h2o_iovec_t applied = h2o_strdup(&req->pool, l.appliedHeader.data(), l.appliedHeader.size());
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("tokenledger-applied-position"),
                          0, nullptr, applied.base, applied.len);
    if (!resp.allow.empty()) {
      h2o_iovec_t allow = h2o_strdup(&req->pool, resp.allow.data(), resp.allow.size());
      h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, nullptr, allow.base,
                     allow.len);
    }
    if (resp.wwwAuthenticate)
      h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, nullptr,
                     H2O_STRLIT("Basic realm=\"tokenledger\""));
    if (!resp.verifiedOwner.empty()) {
      // A valid verify: owner and kind as headers too, for a gateway (docs/gateway.md).
      // Both are from the read model's checked alphabets (events/rules.h).
      h2o_iovec_t owner =
          h2o_strdup(&req->pool, resp.verifiedOwner.data(), resp.verifiedOwner.size());
      h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("tokenledger-owner"), 0,
                            nullptr, owner.base, owner.len);
      h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("tokenledger-kind"), 0,
                            nullptr, resp.verifiedKind.data(), resp.verifiedKind.size());
      if (!resp.verifiedDestinationId.empty()) {
        h2o_iovec_t dest = h2o_strdup(&req->pool, resp.verifiedDestinationId.data(),
                                      resp.verifiedDestinationId.size());
        h2o_add_header_by_str(&req->pool, &req->res.headers,
                              H2O_STRLIT("tokenledger-destination-id"), 0, nullptr, dest.base,
                              dest.len);
      }
    }
    if (resp.page) {
      // The page talks only to this origin and runs only its own script.
      static constexpr std::string_view kCsp =
          "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
          "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
      h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0,
                            nullptr, kCsp.data(), kCsp.size());
      h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0,
                            nullptr, H2O_STRLIT("nosniff"));
      h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0,
                            nullptr, H2O_STRLIT("no-referrer"));
    }
    req->res.content_length = resp.body.size();
    h2o_send_inline(req, resp.body.data(), resp.body.size());
  }

  Api& api_;
  ReadModel& model_;
  Projector& projector_;
  CommandExecutor& executor_;
  Logger logger_;
  std::string runId_;
  size_t maxConnections_;
  std::string refusal_;  // the whole 503 response for a connection past the limit
  std::atomic<size_t> connections_{0};
  Throttle refusedLog_;
  Throttle acceptErrorLog_;
  sockaddr_storage boundAddr_{};
  socklen_t boundLen_ = 0;
  std::string address_;
  UniqueFd listenFd_;    // after boundAddr_ and address_, which bindListener sets
  GlobalConfig config_;  // destroyed after the loops' contexts
  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<bool> stopping_{false};
};

}  // namespace

std::unique_ptr<HttpServer> createHttpServer(const HttpServerOptions& options, Api& api,
                                             ReadModel& model, Projector& projector,
                                             CommandExecutor& executor, Logger logger) {
  return std::make_unique<Server>(options, api, model, projector, executor, std::move(logger));
}

}  // namespace tokenledger
