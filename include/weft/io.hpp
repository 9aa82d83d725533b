#pragma once
// weft::io — single-threaded asynchronous I/O on C++20 coroutines: the event loop (io_uring or epoll), tasks and
// structured task groups, timers, sockets, signals, async primitives, bridges to weft's executors and HTTP/1.1.
#include "weft/io/buffer.hpp"
#include "weft/io/future.hpp"
#include "weft/io/group.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/signal.hpp"
#include "weft/io/socket.hpp"
#include "weft/io/task.hpp"
#include "weft/io/time.hpp"
#if __has_include("weft/io/sync.hpp")
#include "weft/io/sync.hpp"
#endif
#if __has_include("weft/io/http/server.hpp")
#include "weft/io/http/client.hpp"
#include "weft/io/http/server.hpp"
#endif
