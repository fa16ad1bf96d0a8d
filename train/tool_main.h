// tool_main.h — the main() of vit_eval and vit_predict: parse with CLI11
// (exit 2 on a bad command line, as CLI11 reports it), run, and turn any
// exception into one line "<program>: error: ..." and exit status 1.
#pragma once

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <string>

namespace vitscale::train {

template <typename Run>
int tool_main(CLI::App& app, int argc, char** argv, Run&& run) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run();
  } catch (const std::exception& e) {
    std::cout.flush();
    std::string line = e.what();
    for (char& c : line)
      if (c == '\n' || c == '\r') c = ' ';
    std::cerr << app.get_name() << ": error: " << line << "\n";
    return 1;
  }
}

}  // namespace vitscale::train
