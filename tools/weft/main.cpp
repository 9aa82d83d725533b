// tools/weft/main.cpp — the weft command: parses the command line and runs one subcommand.
//
// Subcommands register themselves through one function each (see command.hpp); to add one, write
// <name>.hpp/.cpp with add_<name>_command() and list it in kCommands below.
#include <array>
#include <exception>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "command.hpp"
#include "demo.hpp"
#include "tasks_cmd.hpp"

#ifndef WEFT_VERSION
#error "WEFT_VERSION must be defined by the build (the project version)"
#endif

namespace {

using Registration = weft::cli::Command (*)(CLI::App&);

constexpr std::array<Registration, 8> kCommands{
    &weft::cli::add_demo_command,    &weft::cli::add_worker_command, &weft::cli::add_beat_command,
    &weft::cli::add_call_command,    &weft::cli::add_result_command, &weft::cli::add_inspect_command,
    &weft::cli::add_purge_command,   &weft::cli::add_revoke_command,
};

std::string command_names(const std::vector<weft::cli::Command>& commands) {
  std::string names;
  for (const auto& c : commands) names += (names.empty() ? "" : ", ") + c.app->get_name();
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("weft: concurrent, parallel and distributed work in C++", "weft");
  app.set_version_flag("--version", "weft " WEFT_VERSION, "Print the version and exit");
  app.require_subcommand(1);

  std::vector<weft::cli::Command> commands;
  for (Registration add : kCommands) commands.push_back(add(app));
  app.footer("Run 'weft <command> --help' for the options of a command.");  // after: not inherited

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // With no subcommand recognised, a stray first word is what the user meant as one.
    if (app.get_subcommands().empty() && argc > 1 && argv[1][0] != '-' && e.get_exit_code() != 0) {
      fmt::print(stderr, "weft: unknown command '{}' (commands: {}; see 'weft --help')\n", argv[1],
                 command_names(commands));
      return 2;
    }
    return app.exit(e);
  }

  for (const auto& command : commands) {
    if (!command.app->parsed()) continue;
    try {
      return command.run();
    } catch (const std::exception& e) {
      fmt::print(stderr, "weft {}: error: {}\n", command.app->get_name(), e.what());
      return 1;
    }
  }
  return 0;  // not reached: require_subcommand(1) makes parse() fail without one
}
