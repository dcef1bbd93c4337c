#include "transport/serve_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "transport/inproc_channel.h"

namespace cleave::net {
namespace {

constexpr Millis kWait{10000};

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }
std::string text(const Bytes& b) { return std::string(b.begin(), b.end()); }

TEST(ServeLoop, AnswersEachRequestUntilTheServiceSaysItIsDone) {
  InprocNetwork network;
  auto server = network.bind("service");
  auto client = network.connect("service");
  for (const char* request : {"one", "two", "stop"}) client->send(text(request));

  std::vector<std::string> seen;
  ServeLoop loop;
  loop.handle = [&](const PeerId&, const Bytes& request) {
    seen.push_back(text(request));
    return text("re: " + text(request));
  };
  loop.after_each = [&] { return !seen.empty() && seen.back() == "stop"; };
  loop.log = [](const std::string& line) { ADD_FAILURE() << line; };
  std::atomic<bool> stop{false};
  serve(*server, stop, loop);

  EXPECT_EQ(seen, (std::vector<std::string>{"one", "two", "stop"}));
  for (const char* reply : {"re: one", "re: two", "re: stop"}) {
    auto got = client->recv(kWait);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(text(*got), reply);
  }
}

TEST(ServeLoop, AReplyThatCannotBeDeliveredIsLoggedAndServingGoesOn) {
  InprocNetwork network;
  auto server = network.bind("service");
  auto gone = network.connect("service");
  auto staying = network.connect("service");
  gone->send(text("then I leave"));
  std::vector<std::string> log;
  int handled = 0;
  ServeLoop loop;
  loop.handle = [&](const PeerId&, const Bytes& request) {
    if (++handled == 1) {
      gone.reset();                 // the peer leaves before its reply
      staying->send(text("ping"));
    }
    return request;
  };
  loop.after_each = [&] { return handled == 2; };
  loop.log = [&](const std::string& line) { log.push_back(line); };
  std::atomic<bool> stop{false};
  serve(*server, stop, loop);

  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("could not reply"), std::string::npos) << log[0];
  auto reply = staying->recv(kWait);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(text(*reply), "ping");
}

TEST(ServeLoop, TheStopFlagEndsAnIdleLoopWithinAPoll) {
  InprocNetwork network;
  auto server = network.bind("service");
  std::atomic<bool> stop{false};
  ServeLoop loop;
  loop.handle = [](const PeerId&, const Bytes& request) { return request; };
  loop.log = [](const std::string&) {};
  loop.poll_ms = 20;
  std::atomic<bool> returned{false};
  std::thread service([&] {
    serve(*server, stop, loop);
    returned = true;
  });
  stop = true;
  const auto asked = std::chrono::steady_clock::now();
  service.join();
  EXPECT_TRUE(returned);
  EXPECT_LT(std::chrono::steady_clock::now() - asked, std::chrono::seconds(1));
}

TEST(ServeLoop, RefusesALoopWithoutAHandler) {
  InprocNetwork network;
  auto server = network.bind("service");
  std::atomic<bool> stop{false};
  EXPECT_THROW(serve(*server, stop, ServeLoop{}), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::net
