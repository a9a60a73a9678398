// Test support: runs the real tokenledgerd binary as a child process and talks to
// it over real sockets with a minimal HTTP/1.1 client.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace tltest {

inline std::string tempDir(const std::string& name) {
  std::string tmpl = "/tmp/tl-" + name + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return buf.data();
}

inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body); }
};

// One TCP connection to 127.0.0.1:port.
class Connection {
 public:
  explicit Connection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
      throw std::runtime_error("connect failed: " + std::string(strerror(errno)));
    }
  }
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void sendRaw(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      off += static_cast<size_t>(n);
    }
  }

  // Reads one response (Content-Length framed). Throws on timeout or close.
  Response readResponse(int timeoutMs = 15000) {
    while (true) {
      auto end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        Response r;
        std::istringstream head(buffer_.substr(0, end));
        std::string line;
        std::getline(head, line);
        r.status = std::stoi(line.substr(9, 3));
        size_t length = 0;
        while (std::getline(head, line)) {
          if (!line.empty() && line.back() == '\r') line.pop_back();
          auto colon = line.find(':');
          if (colon == std::string::npos) continue;
          std::string name = line.substr(0, colon);
          for (auto& c : name) c = static_cast<char>(tolower(c));
          std::string value = line.substr(colon + 1);
          while (!value.empty() && value.front() == ' ') value.erase(0, 1);
          r.headers[name] = value;
          if (name == "content-length") length = std::stoul(value);
        }
        if (buffer_.size() >= end + 4 + length) {
          r.body = buffer_.substr(end + 4, length);
          buffer_.erase(0, end + 4 + length);
          return r;
        }
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeoutMs) <= 0)
        throw std::runtime_error("timed out waiting for a response");
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) throw std::runtime_error("connection closed before a full response");
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  Response request(const std::string& method, const std::string& path, const std::string& body,
                   const std::vector<std::string>& headers) {
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& h : headers) req += h + "\r\n";
    if (!body.empty() || method == "POST")
      req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n" + body;
    sendRaw(req);
    return readResponse();
  }

  // Reads without blocking; true once the peer has closed (EOF or reset). What
  // arrived stays buffered for readResponse().
  bool peerClosed() {
    while (!closed_) {
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        buffer_.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        closed_ = true;
      } else {
        break;
      }
    }
    return closed_;
  }

  // Waits up to `timeoutMs` for the peer to close; true if it did. Whatever came
  // before the close (a response nobody asked for) is in unread().
  bool waitPeerClosed(int timeoutMs) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    while (!peerClosed()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    }
    return true;
  }

  const std::string& unread() const { return buffer_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  bool closed_ = false;
  std::string buffer_;
};

// The child's RLIMIT_NOFILE (set between fork and exec).
struct OpenFilesLimit {
  rlim_t soft = 0;
  rlim_t hard = 0;
};

// A small disk for the child: a tmpfs of `size` (e.g. "8m") mounted at `path` in a
// mount namespace of its own (with a user namespace when not root, where the kernel
// allows unprivileged ones), so nothing outside the child sees it. Its files stay
// readable from outside at /proc/PID/root/PATH.
struct SmallDisk {
  std::string path;
  std::string size;
};

// In the forked child: enters the namespaces and mounts the disk; false on failure.
inline bool mountSmallDisk(const SmallDisk& disk) {
  uid_t uid = getuid();
  gid_t gid = getgid();
  if (unshare(CLONE_NEWNS) != 0) {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return false;
    auto write = [](const std::string& path, const std::string& text) {
      int fd = ::open(path.c_str(), O_WRONLY);
      bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == ssize_t(text.size());
      if (fd >= 0) ::close(fd);
      return ok;
    };
    if (!write("/proc/self/setgroups", "deny") ||
        !write("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
        !write("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
      return false;
  }
  // Private: the mount must not propagate back to the parent's namespace.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
  return mount("tokenledger-small-disk", disk.path.c_str(), "tmpfs", 0,
               ("size=" + disk.size).c_str()) == 0;
}

// Raises this process's soft RLIMIT_NOFILE to at least `need` (tests that open
// thousands of connections). Throws if the hard limit is lower.
inline void needOpenFiles(rlim_t need) {
  rlimit l{};
  getrlimit(RLIMIT_NOFILE, &l);
  if (l.rlim_cur >= need) return;
  if (l.rlim_max < need)
    throw std::runtime_error("this test opens " + std::to_string(need) +
                             " sockets but the hard open-files limit is " +
                             std::to_string(l.rlim_max) + "; raise it (ulimit -Hn)");
  l.rlim_cur = need;
  if (setrlimit(RLIMIT_NOFILE, &l) != 0) throw std::runtime_error("setrlimit failed");
}

// CPU seconds (user + system) process `pid` has used so far, from /proc/PID/stat.
inline double cpuSeconds(pid_t pid) {
  std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // after "(comm) "
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // field 3 is the state
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

inline std::string base64(const std::string& in) {
  std::string out(sodium_base64_ENCODED_LEN(in.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(in.data()),
                    in.size(), sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();  // the terminating NUL
  return out;
}

// tokenledgerd as a child process. stdout/stderr go to files in `logDir`.
class Daemon {
 public:
  Daemon(const std::string& binary, const std::string& dataDir, const std::string& logDir,
         const std::string& operatorSecret = "", std::vector<std::string> extraArgs = {},
         std::optional<OpenFilesLimit> openFiles = std::nullopt,
         std::optional<SmallDisk> smallDisk = std::nullopt)
      : binary_(binary), dataDir_(dataDir), logDir_(logDir) {
    static int counter = 0;
    stdoutPath_ = logDir + "/stdout-" + std::to_string(++counter) + ".log";
    stderrPath_ = logDir + "/stderr-" + std::to_string(counter) + ".log";
    pid_ = fork();
    if (pid_ == 0) {
      int out = ::open(stdoutPath_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err = ::open(stderrPath_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(out, 1);
      dup2(err, 2);
      if (!operatorSecret.empty()) {
        setenv("TOKENLEDGER_OPERATOR_SECRET", operatorSecret.c_str(), 1);
      } else {
        unsetenv("TOKENLEDGER_OPERATOR_SECRET");
      }
      if (openFiles) {
        rlimit l{openFiles->soft, openFiles->hard};
        if (setrlimit(RLIMIT_NOFILE, &l) != 0) _exit(126);
      }
      if (smallDisk && !mountSmallDisk(*smallDisk)) {
        dprintf(2, "cannot mount a small disk at %s: %s\n", smallDisk->path.c_str(),
                strerror(errno));
        _exit(125);
      }
      std::vector<std::string> args{binary, "--data-dir", dataDir, "--listen", "127.0.0.1:0"};
      for (auto& a : extraArgs) args.push_back(a);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      std::string out = readFile(stdoutPath_);
      auto at = out.find("listening on 127.0.0.1:");
      if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
        port_ = std::stoi(out.substr(at + strlen("listening on 127.0.0.1:")));
        return;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("tokenledgerd exited at start: " + readFile(stderrPath_));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill9();
    throw std::runtime_error("tokenledgerd did not print 'listening on' within 20 s");
  }

  ~Daemon() {
    if (pid_ > 0) kill9();
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string stdoutText() const { return readFile(stdoutPath_); }
  std::string stderrText() const { return readFile(stderrPath_); }

  // SIGTERM, then wait; returns the exit status (or -1 when killed by a signal).
  int terminate(int timeoutMs = 15000) {
    ::kill(pid_, SIGTERM);
    return waitExit(timeoutMs);
  }

  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  int waitExit(int timeoutMs) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill9();
    return -2;  // did not exit in time
  }

  Response call(const std::string& method, const std::string& path, const std::string& body = "",
                std::vector<std::string> headers = {}) {
    Connection c(port_);
    return c.request(method, path, body, headers);
  }

 private:
  std::string binary_, dataDir_, logDir_, stdoutPath_, stderrPath_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace tltest
