// tools/weft/tasks_cmd.hpp — the task queue's subcommands: worker, beat, call, result, inspect, purge,
// revoke.
//
// Every one connects to a broker and a result backend by URL: --broker (else $WEFT_BROKER, else
// sqlite://weft-tasks.db in the current directory) and --backend (else $WEFT_BACKEND, else the broker's URL).
// Task modules (shared libraries defining WEFT_TASK_MODULE, see weft/tasks/worker.hpp) are loaded with
// --load by `weft worker`; the other subcommands address tasks by name and need no module.
#pragma once

#include <CLI/CLI.hpp>

#include "command.hpp"

namespace weft::cli {

Command add_worker_command(CLI::App& app);
Command add_call_command(CLI::App& app);
Command add_result_command(CLI::App& app);
Command add_inspect_command(CLI::App& app);
Command add_purge_command(CLI::App& app);
Command add_revoke_command(CLI::App& app);
Command add_beat_command(CLI::App& app);

}  // namespace weft::cli
