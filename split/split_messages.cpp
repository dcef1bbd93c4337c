#include "split/split_messages.h"

namespace cleave::split {

const char* message_name(MessageType type) {
  switch (type) {
    case MessageType::hello: return "hello";
    case MessageType::hello_reply: return "hello_reply";
    case MessageType::forward: return "forward";
    case MessageType::forward_reply: return "forward_reply";
    case MessageType::backward: return "backward";
    case MessageType::backward_reply: return "backward_reply";
    case MessageType::end_round: return "end_round";
    case MessageType::end_round_reply: return "end_round_reply";
    case MessageType::sync_round: return "sync_round";
    case MessageType::sync_round_reply: return "sync_round_reply";
    case MessageType::generate_open: return "generate_open";
    case MessageType::generate_open_reply: return "generate_open_reply";
    case MessageType::generate_prefill: return "generate_prefill";
    case MessageType::generate_step: return "generate_step";
    case MessageType::generate_reply: return "generate_reply";
    case MessageType::generate_close: return "generate_close";
    case MessageType::generate_close_reply: return "generate_close_reply";
    case MessageType::error: return "error";
  }
  return "unknown";
}

}  // namespace cleave::split
