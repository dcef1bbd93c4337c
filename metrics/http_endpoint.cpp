#include "metrics/http_endpoint.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <sys/socket.h>

#include <httplib.h>

namespace cleave::metrics {

ListenAddress parse_listen(const std::string& text, const std::string& key) {
  ListenAddress address;
  std::string port = text;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find("]:");
    if (close == std::string::npos) throw std::invalid_argument(key + ": expected [IPV6]:PORT, got '" + text + "'");
    address.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (const size_t colon = text.rfind(':'); colon != std::string::npos) {
    if (colon > 0) address.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  const bool digits = !port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoi(port) > 65535) {
    throw std::invalid_argument(key + ": expected HOST:PORT, :PORT or PORT (port 0..65535; 0: any free port), got '" +
                                text + "'");
  }
  address.port = std::stoi(port);
  return address;
}

struct HttpEndpoint::Impl {
  httplib::Server server;
  std::thread thread;
  std::string host;
  int port = 0;
  std::mutex mutex;
  std::optional<std::string> not_ready = std::string("starting");
};

HttpEndpoint::HttpEndpoint(const Registry& registry, const std::string& listen, const std::string& key)
    : impl_(std::make_unique<Impl>()) {
  ListenAddress address;
  try {
    address = parse_listen(listen, key);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(e.what());
  }
  Impl& impl = *impl_;
  impl.host = address.host;
  // Scrapes are small and rare: two threads, and short timeouts so a peer
  // that connects and says nothing holds one for at most a few seconds.
  impl.server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  impl.server.set_read_timeout(5, 0);
  impl.server.set_write_timeout(5, 0);
  impl.server.set_keep_alive_max_count(10);
  impl.server.set_payload_max_length(4096);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a
  // second process binds the same port silently and takes half the scrapes.
  impl.server.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  impl.server.Get("/metrics", [&registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry.render(), kTextContentType);
  });
  impl.server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  impl.server.Get("/readyz", [&impl](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(impl.mutex);
    if (impl.not_ready) {
      res.status = 503;
      res.set_content("not ready: " + *impl.not_ready + "\n", "text/plain");
    } else {
      res.set_content("ready\n", "text/plain");
    }
  });
  impl.server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404) res.set_content("not found: try /metrics, /healthz or /readyz\n", "text/plain");
  });
  errno = 0;
  if (address.port == 0) {
    impl.port = impl.server.bind_to_any_port(address.host);
  } else {
    impl.port = impl.server.bind_to_port(address.host, address.port) ? address.port : -1;
  }
  if (impl.port <= 0) {
    const std::string why = errno != 0 ? std::string(": ") + std::strerror(errno) : std::string();
    throw std::runtime_error(key + ": cannot listen on " + address.host + ":" + std::to_string(address.port) + why +
                             " (another process on the port, or not an address of this machine?)");
  }
  impl.thread = std::thread([&impl] { impl.server.listen_after_bind(); });
  // Server::stop() does nothing before the accept loop runs, so a stop right
  // after construction would leave the thread running: wait for it (it
  // starts at once; the deadline only guards against a wedged thread).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!impl.server.is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

HttpEndpoint::~HttpEndpoint() { stop(); }

void HttpEndpoint::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

void HttpEndpoint::set_ready() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->not_ready.reset();
}

void HttpEndpoint::set_not_ready(const std::string& reason) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->not_ready = reason;
}

const std::string& HttpEndpoint::host() const { return impl_->host; }
int HttpEndpoint::port() const { return impl_->port; }

std::string HttpEndpoint::url() const {
  const bool v6 = impl_->host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + impl_->host + "]" : impl_->host) + ":" + std::to_string(impl_->port);
}

}  // namespace cleave::metrics
