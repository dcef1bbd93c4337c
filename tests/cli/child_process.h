// Running `cleave` services as child processes in integration tests: spawned
// with posix_spawn, stdout and stderr on one pipe that the test reads with
// timeouts (poll), so tests wait for what a service prints ("listening on
// tcp://127.0.0.1:43121") instead of sleeping. A ChildProcess that goes out of
// scope kills and reaps its child, whatever happened in the test.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace cleave::test {

class ChildProcess {
 public:
  using Millis = std::chrono::milliseconds;

  // Starts CLEAVE_CLI_BINARY with `args`; `env` entries ("OMP_NUM_THREADS=1")
  // are added to this process's environment.
  explicit ChildProcess(const std::string& name, const std::vector<std::string>& args,
                        const std::vector<std::string>& env = {"OMP_NUM_THREADS=1"})
      : name_(name) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    std::vector<std::string> argv_text = {CLEAVE_CLI_BINARY};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_text;
    for (char** e = environ; *e; ++e) env_text.emplace_back(*e);
    env_text.insert(env_text.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (std::string& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int rc = posix_spawn(&pid_, CLEAVE_CLI_BINARY, &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (rc != 0) {
      close(fds[0]);
      throw std::runtime_error(name + ": posix_spawn failed: " + std::strerror(rc));
    }
    fd_ = fds[0];
  }

  ~ChildProcess() {
    if (pid_ > 0 && !status_) {
      kill(pid_, SIGKILL);
      int raw = 0;
      waitpid(pid_, &raw, 0);
    }
    if (fd_ >= 0) close(fd_);
  }

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Reads output until a line (from where the last wait stopped) matches
  // `pattern`; returns the line's first capture group (or the whole line),
  // nullopt when the child ended or `timeout` passed first.
  std::optional<std::string> wait_for(const std::string& pattern, Millis timeout) {
    const std::regex re(pattern);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      size_t nl;
      while ((nl = output_.find('\n', scanned_)) != std::string::npos) {
        const std::string line = output_.substr(scanned_, nl - scanned_);
        scanned_ = nl + 1;
        std::smatch match;
        if (std::regex_search(line, match, re)) return match.size() > 1 ? match[1].str() : line;
      }
      if (!read_some(deadline)) return std::nullopt;
    }
  }

  // Reads to the end of the output and reaps the child: its exit status
  // (128 + signal when killed), or nullopt if it did not end within `timeout`.
  std::optional<int> wait_exit(Millis timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (read_some(deadline)) {
    }
    if (!eof_) return std::nullopt;
    if (!status_) {
      int raw = 0;
      waitpid(pid_, &raw, 0);
      status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    }
    return status_;
  }

  void signal(int sig) {
    if (!status_) kill(pid_, sig);
  }

  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }
  const std::string& name() const { return name_; }

 private:
  // One read; false at EOF or when the deadline passed.
  bool read_some(std::chrono::steady_clock::time_point deadline) {
    if (eof_) return false;
    const auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready <= 0) return ready < 0 && errno == EINTR;
    char buffer[4096];
    const ssize_t n = read(fd_, buffer, sizeof buffer);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    output_.append(buffer, static_cast<size_t>(n));
    return true;
  }

  std::string name_;
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string output_;
  size_t scanned_ = 0;
  bool eof_ = false;
  std::optional<int> status_;
};

}  // namespace cleave::test
