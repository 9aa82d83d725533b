// Name resolution off the loop: getaddrinfo blocks, so it runs on a small shared ThreadPool and the task awaits
// its future (the loop keeps serving other tasks meanwhile).
#include <netdb.h>

#include <cstring>
#include <memory>

#include "weft/io/future.hpp"
#include "weft/io/socket.hpp"
#include "weft/thread/thread_pool.hpp"

namespace weft::io {
namespace {

ThreadPool& resolver_pool() {
  // Two threads, 256 queued lookups; beyond that submit throws QueueFull (Overflow::reject) rather than letting a
  // flood of lookups queue without bound. Lives for the program (lookups may still run at exit).
  static ThreadPool* pool = new ThreadPool(ThreadPoolOptions{
      .threads = 2, .max_threads = 2, .capacity = 256, .overflow = Overflow::reject, .name = "weft-resolve"});
  return *pool;
}

std::vector<Address> lookup(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    int err = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
    throw IoError(err, "weft::io::resolve('" + host + "'): " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, ::freeaddrinfo);
  std::vector<Address> out;
  for (addrinfo* p = res; p != nullptr; p = p->ai_next) out.push_back(Address::from_native(p->ai_addr, p->ai_addrlen));
  return out;
}

}  // namespace

Task<std::vector<Address>> resolve(std::string host, std::uint16_t port) {
  // Numeric literals need no lookup.
  if (std::optional<Address> literal = Address::try_ip(host, port)) co_return std::vector<Address>{*literal};
  auto job = [host, port] { return lookup(host, port); };  // named: see the g++ 12 hazard in task.hpp
  Future<std::vector<Address>> found = resolver_pool().submit(std::move(job));
  co_return co_await std::move(found);
}

}  // namespace weft::io
