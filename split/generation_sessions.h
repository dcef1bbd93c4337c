// The split server's generation sessions (split inference): per session the
// KV cache of the blocks it serves for one site and a snapshot of the
// adapters it generates with. What sessions may hold is bounded in count
// and in KV cache bytes; a session idle for longer than the idle timeout is
// dropped, and one the site closes is freed at once.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

#include "lora/adapter_set.h"
#include "model/kv_cache.h"
#include "split/split_messages.h"
#include "util/clock.h"
#include "util/log.h"

namespace cleave {
class LlamaModel;
}

namespace cleave::split {

class NextHop;

// split_server.generation_sessions, generation_kv_bytes, generation_idle_ms.
struct GenerationLimits {
  int64_t max_sessions = 16;                    // open at once, every site together
  int64_t max_kv_bytes = int64_t{1} << 30;      // their KV caches together (reserved at open)
  int64_t idle_timeout_ms = 120000;             // a session unused this long is dropped

  void validate() const;   // throws std::invalid_argument naming the key
};

// A request for a session that does not exist or is another site's (the
// reply says the same in both cases): ErrorCode::unknown_session.
class UnknownSession : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class GenerationSessions {
 public:
  // `clock` tells idle time (a ManualClock in tests); null: the steady clock.
  GenerationSessions(std::shared_ptr<const LlamaModel> model, GenerationLimits limits,
                     std::shared_ptr<const Clock> clock, Log log);
  ~GenerationSessions();

  // Opens a session for `request` (already checked against the base model
  // and the served blocks) that generates with `adapters` (a snapshot of the
  // server's adapters for the session's blocks). Throws
  // std::invalid_argument when a limit refuses it, naming the limit's key.
  GenerateOpenReply open(const GenerateOpen& request, lora::AdapterSet adapters, uint32_t round);
  // generate_prefill (position 0, restarts the session's cache) or
  // generate_step (the next position; a repeat of the last step is answered
  // again without recomputing). Throws UnknownSession or std::invalid_argument.
  GenerateOutput feed(const GenerateInput& input, bool prefill);
  GenerateCloseReply close(const GenerateClose& request);
  // Multi-hop: sessions run the blocks up to the next hop's cut and open a
  // session of their own there, which every feed and close reaches.
  void set_next_hop(NextHop* next) { next_ = next; }
  // Drops the sessions idle for longer than the idle timeout; returns how many.
  size_t expire_idle();

  size_t count() const { return sessions_.size(); }
  int64_t kv_bytes() const { return kv_bytes_; }   // reserved by the open sessions

 private:
  struct Session;
  Session& find(const std::string& client_id, uint64_t session);

  std::shared_ptr<const LlamaModel> model_;
  GenerationLimits limits_;
  std::shared_ptr<const Clock> clock_;
  Log log_;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  int64_t kv_bytes_ = 0;
  std::mt19937_64 ids_;   // session ids: not guessable from the ones a site saw
  NextHop* next_ = nullptr;
};

}  // namespace cleave::split
