// weft/weft.hpp — the umbrella header: every public part of weft.
#pragma once

#include "weft/core/errors.hpp"
#include "weft/core/executor.hpp"
#include "weft/core/function.hpp"
#include "weft/core/future.hpp"
#include "weft/core/when.hpp"
#include "weft/io.hpp"
#include "weft/parallel.hpp"
#include "weft/process.hpp"
#include "weft/sync/channel.hpp"
#include "weft/tasks.hpp"
#include "weft/sync/event_count.hpp"
#include "weft/thread/thread.hpp"
#include "weft/thread/thread_pool.hpp"
#include "weft/trace/trace.hpp"
