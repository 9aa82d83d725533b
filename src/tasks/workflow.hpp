// What a worker does after a task ended, for the canvas (chain, group, chord, link / link_error): internal.
#pragma once

#include "weft/tasks/app.hpp"
#include "weft/tasks/backend.hpp"
#include "weft/tasks/message.hpp"

namespace weft::tasks::detail {

/// Called by a worker once it has stored the final state of the task of `m` (SUCCESS with `result`, FAILURE
/// with the {"exc_type", "exc_message", ...} object in `result`; also for ignore_result tasks, whose state is
/// not stored). Sends what the message's embed asks for: on SUCCESS its callbacks (link), the next task of
/// its chain, and — when it is the last part of a chord's header to finish — the chord's body; on FAILURE
/// its errbacks (link_error) and a FAILURE for the chord body. Throws what sending throws (the worker
/// records it and keeps running).
void after_task(App& app, const TaskMessage& m, State state, const Json& result);

}  // namespace weft::tasks::detail
