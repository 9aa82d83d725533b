#pragma once
// weft::tasks — the task queue: typed tasks sent through a broker (memory://, sqlite:///path) to workers, their
// results kept in a result backend, in Celery's message format.
#include "weft/tasks/app.hpp"
#include "weft/tasks/backend.hpp"
#include "weft/tasks/beat.hpp"
#include "weft/tasks/broker.hpp"
#include "weft/tasks/canvas.hpp"
#include "weft/tasks/cluster.hpp"
#include "weft/tasks/message.hpp"
#include "weft/tasks/worker.hpp"
