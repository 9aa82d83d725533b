#include "weft/process/serialize.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace weft::process::detail {

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

std::string type_name(const std::type_info& t) { return demangle(t.name()); }

msgpack::object_handle parse(std::string_view data) {
  // Every element of a container takes at least one byte, so no honest message announces more elements
  // (or string bytes) than it has bytes: capping by the size turns a corrupt length into an error instead of
  // a huge allocation.
  const std::size_t n = data.size();
  msgpack::unpack_limit limit(n, n, n, n, n, 64);
  std::size_t offset = 0;
  msgpack::object_handle h;
  try {
    h = msgpack::unpack(data.data(), n, offset, nullptr, nullptr, limit);
  } catch (const msgpack::insufficient_bytes&) {
    throw SerializationError("weft: truncated message: the encoded value ends after " + std::to_string(n) +
                             " bytes");
  } catch (const msgpack::depth_size_overflow&) {
    throw SerializationError("weft: message nests values deeper than 64 levels");
  } catch (const msgpack::size_overflow&) {
    throw SerializationError("weft: corrupt message: a length exceeds the " + std::to_string(n) +
                             "-byte message");
  } catch (const msgpack::unpack_error& e) {
    throw SerializationError(std::string("weft: corrupt message: ") + e.what());
  }
  if (offset != n) {
    throw SerializationError("weft: corrupt message: " + std::to_string(n - offset) +
                             " bytes follow the encoded value");
  }
  return h;
}

}  // namespace weft::process::detail
