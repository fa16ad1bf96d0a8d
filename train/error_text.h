// error_text.h — how vit_train and vit_torch_train print a failure: one line
// "<program>: error: ..." per problem. A ConfigError has one problem per line
// of its message (a config file's problems all at once); anything else is one
// line. With a rank (>= 0: world size > 1) each line names it.
#pragma once

#include <algorithm>
#include <exception>
#include <string>

#include "train/train_config.h"

namespace vitscale::train {

inline std::string error_text(const std::string& program, const std::exception& e, int rank = -1) {
  const bool config = dynamic_cast<const ConfigError*>(&e) != nullptr;
  const std::string message = e.what();
  const std::string prefix = rank >= 0 ? "rank " + std::to_string(rank) + ": " : "";
  std::string out;
  std::size_t begin = 0;
  do {
    std::size_t end = config ? std::min(message.find('\n', begin), message.size()) : message.size();
    std::string line = message.substr(begin, end - begin);
    for (char& c : line)
      if (c == '\n' || c == '\r') c = ' ';
    // Messages from parallel/ already start with "rank R: ".
    const bool named = !prefix.empty() && line.rfind(prefix, 0) == 0;
    out += program + ": error: " + (named ? "" : prefix) + line + "\n";
    begin = end + 1;
  } while (begin < message.size());
  return out;
}

}  // namespace vitscale::train
