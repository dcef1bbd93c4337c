#include "transport/inproc_channel.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <utility>

namespace cleave::net {
namespace {

template <class Message>
class MessageQueue {
 public:
  void push(Message message) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      messages_.push_back(std::move(message));
    }
    ready_.notify_one();
  }

  std::optional<Message> pop(Millis timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!ready_.wait_for(lock, std::max(timeout, Millis(0)), [&] { return !messages_.empty(); }))
      return std::nullopt;
    Message message = std::move(messages_.front());
    messages_.pop_front();
    return message;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Message> messages_;
};

using ClientInbox = MessageQueue<Bytes>;

// What one bound name shares between its server and its clients.
struct Server {
  explicit Server(std::string bound_name) : name(std::move(bound_name)) {}

  const std::string name;
  MessageQueue<Envelope> inbox;
  std::mutex mutex;                                          // guards open and peers
  bool open = true;
  std::map<PeerId, std::shared_ptr<ClientInbox>> peers;
};

void check_size(const Bytes& payload, int64_t max_message_bytes, const std::string& where) {
  if (static_cast<int64_t>(payload.size()) > max_message_bytes)
    throw TransportError("message of " + std::to_string(payload.size()) + " bytes to " + where +
                         " exceeds max_message_bytes " + std::to_string(max_message_bytes) +
                         ": split it or raise ChannelOptions.max_message_bytes");
}

}  // namespace

struct InprocNetwork::State {
  explicit State(ChannelOptions channel_options) : options(channel_options) {}

  std::shared_ptr<Server> find(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = servers.find(name);
    if (it == servers.end())
      throw TransportError("no in-process server is bound to '" + name + "': bind it before connecting");
    return it->second;
  }

  PeerId next_peer_id(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex);
    return "inproc:" + name + "#" + std::to_string(++peers_created);
  }

  const ChannelOptions options;
  std::mutex mutex;                                          // guards servers and peers_created
  std::map<std::string, std::shared_ptr<Server>> servers;
  uint64_t peers_created = 0;
};

namespace {

class InprocServer final : public ServerChannel {
 public:
  InprocServer(std::shared_ptr<InprocNetwork::State> network, std::shared_ptr<Server> server)
      : network_(std::move(network)), server_(std::move(server)) {}

  ~InprocServer() override {
    {
      std::lock_guard<std::mutex> lock(network_->mutex);
      network_->servers.erase(server_->name);
    }
    std::lock_guard<std::mutex> lock(server_->mutex);
    server_->open = false;
    server_->peers.clear();
  }

  void send(const PeerId& peer, Bytes payload) override {
    check_size(payload, network_->options.max_message_bytes, "peer " + peer);
    std::lock_guard<std::mutex> lock(server_->mutex);
    auto it = server_->peers.find(peer);
    if (it == server_->peers.end())
      throw PeerUnreachable("peer " + peer + " is not connected to inproc:" + server_->name +
                            " (it left or reconnected under a new id)");
    it->second->push(std::move(payload));
  }

  std::optional<Envelope> recv(Millis timeout) override { return server_->inbox.pop(timeout); }

  std::string endpoint() const override { return "inproc:" + server_->name; }

 private:
  std::shared_ptr<InprocNetwork::State> network_;
  std::shared_ptr<Server> server_;
};

class InprocClient final : public ClientChannel {
 public:
  InprocClient(std::shared_ptr<InprocNetwork::State> network, std::string name)
      : network_(std::move(network)), name_(std::move(name)) {
    attach();
  }

  ~InprocClient() override { detach(); }

  void send(Bytes payload) override {
    check_size(payload, network_->options.max_message_bytes, describe());
    // Pushing under the server's lock: a message is either delivered to an
    // open server or the send throws, never silently lost to a closing one.
    std::lock_guard<std::mutex> lock(server_->mutex);
    if (!server_->open)
      throw TransportError("in-process server '" + name_ + "' is gone: reconnect once it is bound again");
    server_->inbox.push(Envelope{peer_id_, std::move(payload)});
  }

  std::optional<Bytes> recv(Millis timeout) override { return inbox_->pop(timeout); }

  void reconnect() override {
    detach();
    attach();
  }

  std::string describe() const override { return "inproc:" + name_; }

 private:
  void attach() {
    server_ = network_->find(name_);
    peer_id_ = network_->next_peer_id(name_);
    inbox_ = std::make_shared<ClientInbox>();
    std::lock_guard<std::mutex> lock(server_->mutex);
    if (!server_->open)
      throw TransportError("in-process server '" + name_ + "' closed while connecting: retry");
    server_->peers.emplace(peer_id_, inbox_);
  }

  void detach() {
    if (!server_) return;
    std::lock_guard<std::mutex> lock(server_->mutex);
    server_->peers.erase(peer_id_);
  }

  std::shared_ptr<InprocNetwork::State> network_;
  const std::string name_;
  std::shared_ptr<Server> server_;
  PeerId peer_id_;
  std::shared_ptr<ClientInbox> inbox_;
};

}  // namespace

InprocNetwork::InprocNetwork(ChannelOptions options) {
  options.validate();
  state_ = std::make_shared<State>(options);
}

std::unique_ptr<ServerChannel> InprocNetwork::bind(const std::string& name) {
  auto server = std::make_shared<Server>(name);
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (!state_->servers.emplace(name, server).second)
      throw TransportError("in-process name '" + name + "' is already bound: pick another name");
  }
  return std::make_unique<InprocServer>(state_, std::move(server));
}

std::unique_ptr<ClientChannel> InprocNetwork::connect(const std::string& name) {
  return std::make_unique<InprocClient>(state_, name);
}

}  // namespace cleave::net
