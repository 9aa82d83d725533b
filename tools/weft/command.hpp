// tools/weft/command.hpp — how a subcommand plugs into the weft command.
//
// Each subcommand lives in its own file and exposes one registration function,
//   Command add_<name>_command(CLI::App& app);
// which adds a CLI11 subcommand with its options and returns it together with the function that runs it.
// main.cpp lists the registration functions; adding a subcommand is one file plus one line there.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace weft::cli {

struct Command {
  CLI::App* app = nullptr;   ///< the subcommand, owned by the parent app
  std::function<int()> run;  ///< runs it with the parsed options; returns the process exit code
};

}  // namespace weft::cli
