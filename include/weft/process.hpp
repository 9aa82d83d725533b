#pragma once
// weft::process — multiprocessing: child processes from a fork server, pipes, queues and shared memory between
// processes, and a pool of worker processes whose failures stay with the tasks that caused them.
#include "weft/process/errors.hpp"
#include "weft/process/fifo.hpp"
#include "weft/process/message_queue.hpp"
#include "weft/process/pipe.hpp"
#include "weft/process/pool.hpp"
#include "weft/process/process.hpp"
#include "weft/process/queue.hpp"
#include "weft/process/robust_mutex.hpp"
#include "weft/process/serialize.hpp"
#include "weft/process/shared_memory.hpp"
#include "weft/process/value.hpp"
