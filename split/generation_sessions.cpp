#include "split/generation_sessions.h"

#include <ATen/ATen.h>

#include "metrics/cpu_clock.h"
#include "model/llama_model.h"
#include "split/next_hop.h"
#include "split/tensor_wire.h"

namespace cleave::split {

void GenerationLimits::validate() const {
  if (max_sessions < 1) throw std::invalid_argument("split_server.generation_sessions must be >= 1");
  if (max_kv_bytes < 1) throw std::invalid_argument("split_server.generation_kv_bytes must be >= 1");
  if (idle_timeout_ms < 1) throw std::invalid_argument("split_server.generation_idle_ms must be >= 1");
}

struct GenerationSessions::Session {
  GenerateOpen opened;                // the site's request (mode, blocks, codec)
  lora::AdapterSet adapters;          // the server's adapters for these blocks, as at open
  KvCache cache;                      // [cut_layer, top_cut) or [cut_layer, L)
  int64_t kv_bytes = 0;
  int64_t last_used_ms = 0;
  bool has_last_step = false;         // last_step answers a repeated step
  GenerateOutput last_step;
  uint64_t next_session = 0;          // multi-hop: the session on the next hop
  double cpu_seconds = 0;             // the process's CPU over this session's feeds
  int64_t positions = 0;              // fed: the prompt's (each prefill) and one per step
  int64_t steps = 0;                  // generate_step requests: generated tokens fed back
};

GenerationSessions::GenerationSessions(std::shared_ptr<const LlamaModel> model, GenerationLimits limits,
                                       std::shared_ptr<const Clock> clock, Log log)
    : model_(std::move(model)), limits_(limits), clock_(std::move(clock)), log_(std::move(log)),
      ids_(std::random_device{}()) {
  limits_.validate();
  if (!clock_) clock_ = std::make_shared<SteadyClock>();
}

GenerationSessions::~GenerationSessions() = default;

GenerateOpenReply GenerationSessions::open(const GenerateOpen& request, lora::AdapterSet adapters, uint32_t round) {
  expire_idle();
  const LlamaConfig& config = model_->config();
  if (request.max_positions < 1 || request.max_positions > config.context_length) {
    throw std::invalid_argument("a generation session holds 1 to " + std::to_string(config.context_length) +
                                " positions (the model's context), not " + std::to_string(request.max_positions));
  }
  if (static_cast<int64_t>(sessions_.size()) >= limits_.max_sessions) {
    throw std::invalid_argument("the split server already holds " + std::to_string(sessions_.size()) +
                                " generation sessions, its limit (split_server.generation_sessions): close "
                                "finished sessions, wait for idle ones to expire, or raise the limit");
  }
  const int64_t end = next_ ? next_->cut_layer()
                            : request.mode == static_cast<uint8_t>(SplitMode::u_shaped) ? request.top_cut
                                                                                        : model_->n_layers();
  const int64_t needed = KvCache::bytes_for(config, end - request.cut_layer, request.max_positions,
                                            static_cast<int64_t>(c10::elementSize(model_->compute_dtype())));
  if (kv_bytes_ + needed > limits_.max_kv_bytes) {
    throw std::invalid_argument("a generation session of " + std::to_string(request.max_positions) +
                                " positions needs " + std::to_string(needed) + " bytes of KV cache; the open "
                                "sessions hold " + std::to_string(kv_bytes_) + " of the " +
                                std::to_string(limits_.max_kv_bytes) +
                                " allowed (split_server.generation_kv_bytes): ask for fewer positions, close "
                                "finished sessions, or raise the limit");
  }
  uint64_t id = 0;
  do {
    id = ids_();
  } while (id == 0 || sessions_.count(id));
  auto session = std::make_unique<Session>();
  if (next_) session->next_session = next_->open_generation(request);   // refused there: nothing held here
  session->opened = request;
  session->opened.expected_adapters.clear();
  session->adapters = std::move(adapters);
  session->adapters.set_training(false);
  session->cache = KvCache(config, request.cut_layer, end, request.max_positions);
  session->kv_bytes = needed;
  session->last_used_ms = clock_->now_ms();
  sessions_[id] = std::move(session);
  kv_bytes_ += needed;
  log_.info("generation session for " + request.client_id + ": blocks [" + std::to_string(request.cut_layer) + ", " +
            std::to_string(end) + "), " + std::to_string(request.max_positions) + " positions, " +
            std::to_string(needed) + " KV cache bytes (" + std::to_string(sessions_.size()) + " open)");
  return GenerateOpenReply{id, needed, round, {}};
}

GenerationSessions::Session& GenerationSessions::find(const std::string& client_id, uint64_t id) {
  auto it = sessions_.find(id);
  // Another site's session is answered like a missing one: ids reveal nothing.
  if (it == sessions_.end() || it->second->opened.client_id != client_id) {
    throw UnknownSession("no generation session " + std::to_string(id) + " of " + client_id +
                         " on this split server (closed, idle for more than " +
                         std::to_string(limits_.idle_timeout_ms) + " ms, or the server restarted): open a new one");
  }
  return *it->second;
}

GenerateOutput GenerationSessions::feed(const GenerateInput& input, bool prefill) {
  expire_idle();
  Session& s = find(input.client_id, input.session);
  s.last_used_ms = clock_->now_ms();
  if (!prefill && s.has_last_step && input.position == s.last_step.position) {
    return s.last_step;   // the site resent a step whose reply it missed
  }
  const int64_t dim = model_->config().dim;
  const at::Tensor hidden = from_wire(input.hidden, {1, -1, dim}, "activations at the cut");  // [1, T, dim]
  const int64_t T = hidden.size(1);
  if (prefill) {
    if (input.position != 0) throw std::invalid_argument("a prefill starts at position 0");
    if (T < 1 || T > s.cache.capacity()) {
      throw std::invalid_argument("a prefill of " + std::to_string(T) + " positions does not fit the session's " +
                                  std::to_string(s.cache.capacity()));
    }
    s.cache.clear();
    s.has_last_step = false;
  } else {
    if (T != 1) throw std::invalid_argument("a step feeds one position, not " + std::to_string(T));
    if (input.position != s.cache.length()) {
      throw std::invalid_argument("step at position " + std::to_string(input.position) + " but the session holds " +
                                  std::to_string(s.cache.length()) + " positions: send the next one");
    }
    if (s.cache.length() >= s.cache.capacity()) {
      throw std::invalid_argument("the session's " + std::to_string(s.cache.capacity()) +
                                  " positions are used up: prefill again (a shorter window) or open a larger one");
    }
  }
  at::NoGradGuard no_grad;
  const double cpu_start = metrics::process_cpu_seconds();
  const at::Tensor out = model_->run_blocks_cached(hidden, s.cache, &s.adapters);  // [1, T, dim]
  GenerateOutput reply;
  reply.session = input.session;
  reply.position = input.position;
  const auto codec = static_cast<wire::WireDType>(s.opened.activation_codec);
  if (next_) {
    at::Tensor rest;   // the last hop's activations at top_cut [1, T, dim], or logits [1, 1, vocab]
    try {
      rest = next_->feed(input.client_id, s.next_session, input.position, out, prefill);
    } catch (const SplitError& e) {
      throw UnknownSession(std::string("the chain's next split server lost this generation session (") + e.what() +
                           "): open a new one");
    }
    reply.tensor = to_wire(rest, codec);
  } else if (s.opened.mode == static_cast<uint8_t>(SplitMode::u_shaped)) {
    reply.tensor = to_wire(out, codec);
  } else {
    reply.tensor = to_wire(model_->head(out.narrow(1, T - 1, 1), &s.adapters), codec);  // [1, 1, vocab]
  }
  if (!prefill) {
    s.has_last_step = true;
    s.last_step = reply;
    ++s.steps;
  }
  s.positions += T;
  s.cpu_seconds += metrics::process_cpu_seconds() - cpu_start;
  return reply;
}

GenerateCloseReply GenerationSessions::close(const GenerateClose& request) {
  Session& s = find(request.client_id, request.session);
  GenerateCloseReply reply{request.session, static_cast<uint32_t>(s.cache.length())};
  // Generated tokens: the one the prefill's output gave, then one per step.
  const int64_t generated = s.positions > 0 ? s.steps + 1 : 0;
  log_.info("generation session of " + request.client_id + " closed: " + std::to_string(s.positions) +
            " positions served, " + std::to_string(generated) + " tokens generated; CPU " +
            std::to_string(s.cpu_seconds) + " s" +
            (generated > 0 ? " (" + std::to_string(static_cast<int64_t>(s.cpu_seconds * 1e6 / generated)) +
                                 " us per generated token)"
                           : std::string()));
  if (next_) {
    try {
      next_->close_generation(request.client_id, s.next_session);
    } catch (const SplitError& e) {
      log_.warning("closing the next hop's generation session: " + std::string(e.what()) +
                   " (it expires there when idle)");
    }
  }
  kv_bytes_ -= s.kv_bytes;
  sessions_.erase(request.session);
  return reply;
}

size_t GenerationSessions::expire_idle() {
  const int64_t now = clock_->now_ms();
  size_t expired = 0;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (now - it->second->last_used_ms > limits_.idle_timeout_ms) {
      log_.info("generation session of " + it->second->opened.client_id + " expired after " +
                std::to_string(limits_.idle_timeout_ms) + " ms idle");
      kv_bytes_ -= it->second->kv_bytes;
      it = sessions_.erase(it);
      ++expired;
    } else {
      ++it;
    }
  }
  return expired;
}

}  // namespace cleave::split
