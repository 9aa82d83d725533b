// The part every libuv server of bench/net shares: the listener on 127.0.0.1, SIGINT/SIGTERM handling and the
// protocol of common.hpp; each server brings its own connection callback.
#pragma once

#include <uv.h>

#include <string>

#include "common.hpp"

namespace weft::bench::net {

/// Runs a one-thread libuv server until SIGINT/SIGTERM, calling `on_connection` for every new connection.
inline int run_libuv_server(int argc, char** argv, uv_connection_cb on_connection) {
  Args args(argc, argv, {{"port", 0}});
  raise_open_file_limit();
  uv_loop_t* loop = uv_default_loop();
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  sockaddr_in address{};
  uv_ip4_addr("127.0.0.1", static_cast<int>(args["port"]), &address);
  int error = uv_tcp_bind(&server, reinterpret_cast<const sockaddr*>(&address), 0);
  if (error == 0) error = uv_listen(reinterpret_cast<uv_stream_t*>(&server), kBacklog, on_connection);
  if (error != 0) die(args.program(), std::string("listen: ") + uv_strerror(error));
  uv_signal_t signals[2];
  for (int i = 0; i < 2; ++i) {
    uv_signal_init(loop, &signals[i]);
    uv_signal_start(&signals[i], [](uv_signal_t* handle, int) { uv_stop(handle->loop); }, i == 0 ? SIGTERM : SIGINT);
  }
  sockaddr_in bound{};
  int length = sizeof bound;
  uv_tcp_getsockname(&server, reinterpret_cast<sockaddr*>(&bound), &length);
  announce_port(ntohs(bound.sin_port));
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}

}  // namespace weft::bench::net
