// weft/process/serialize.hpp — values that cross a process boundary, encoded with msgpack (msgpack-cxx).
//
// Only data crosses between processes. pack(v) turns a value into bytes, unpack<T>(bytes) turns them back;
// Pipe, Queue, Process arguments and ProcessPool tasks and results all use these two.
//
// Which types can travel (Serializable<T>): arithmetic types, enums, bool, std::string, std::vector,
// std::array, std::deque, std::list, std::map, std::unordered_map, std::set, std::pair, std::tuple,
// std::optional, std::chrono::duration/time_point, of serializable types; classes with MSGPACK_DEFINE(...)
// (msgpack's intrusive adaptor); and any type for which the program specialises
// weft::process::serializable<T> as std::true_type after writing msgpack adaptors for it
// (msgpack::adaptor::pack/convert). Anything else — raw pointers, std::function, lambdas — is refused at
// compile time by a static_assert naming the concept.
//
// Bad input is an error, never a crash: unpack() checks that the bytes are one well-formed msgpack value of
// the expected shape with nothing left over, and caps every announced container length by the size of the
// buffer (a corrupt length cannot make it allocate more than the message could hold).
// One leniency is msgpack's own: a MSGPACK_DEFINE class decodes from an array with fewer fields than it has
// (the missing ones keep their default values), so a reader can add fields that older senders lack.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST 1
#endif
#include <msgpack.hpp>

#include "weft/process/errors.hpp"

namespace weft::process {

/// Specialise as std::true_type for a type that has msgpack adaptors (pack and convert) written for it.
template <class T>
struct serializable : std::false_type {};

namespace detail {

/// The stream msgpack's packer writes to: appends to a std::string.
struct StringWriter {
  std::string* out;
  void write(const char* data, std::size_t n) { out->append(data, n); }
};

template <class T>
concept HasMsgpackDefine = requires(const T& t, T& m, msgpack::packer<StringWriter>& p, const msgpack::object& o) {
  t.msgpack_pack(p);
  m.msgpack_unpack(o);
};

template <class T>
struct is_serializable : std::bool_constant<std::is_arithmetic_v<T> || std::is_enum_v<T> || HasMsgpackDefine<T> ||
                                            serializable<T>::value> {};
template <>
struct is_serializable<std::string> : std::true_type {};
template <>
struct is_serializable<msgpack::type::nil_t> : std::true_type {};
template <class T, class A>
struct is_serializable<std::vector<T, A>> : is_serializable<T> {};
template <class T, std::size_t N>
struct is_serializable<std::array<T, N>> : is_serializable<T> {};
template <class T, class A>
struct is_serializable<std::deque<T, A>> : is_serializable<T> {};
template <class T, class A>
struct is_serializable<std::list<T, A>> : is_serializable<T> {};
template <class T, class C, class A>
struct is_serializable<std::set<T, C, A>> : is_serializable<T> {};
template <class K, class V, class C, class A>
struct is_serializable<std::map<K, V, C, A>> : std::bool_constant<is_serializable<K>::value && is_serializable<V>::value> {};
template <class K, class V, class H, class E, class A>
struct is_serializable<std::unordered_map<K, V, H, E, A>>
    : std::bool_constant<is_serializable<K>::value && is_serializable<V>::value> {};
template <class A, class B>
struct is_serializable<std::pair<A, B>> : std::bool_constant<is_serializable<A>::value && is_serializable<B>::value> {};
template <class... Ts>
struct is_serializable<std::tuple<Ts...>> : std::bool_constant<(is_serializable<std::remove_cvref_t<Ts>>::value && ...)> {};
template <class T>
struct is_serializable<std::optional<T>> : is_serializable<T> {};
template <class R, class P>
struct is_serializable<std::chrono::duration<R, P>> : std::is_arithmetic<R> {};
template <class C, class D>
struct is_serializable<std::chrono::time_point<C, D>> : is_serializable<D> {};

/// The demangled name of T, for error messages.
std::string type_name(const std::type_info& t);
/// `mangled` demangled, or itself when it is not a mangled C++ name.
std::string demangle(const char* mangled);

/// Parses `data` as exactly one msgpack value (limits scaled to the buffer) and returns its handle.
/// Throws SerializationError for malformed input or trailing bytes.
msgpack::object_handle parse(std::string_view data);

}  // namespace detail

/// True for the types that can cross a process boundary (see the top of this file).
template <class T>
concept Serializable = detail::is_serializable<std::remove_cvref_t<T>>::value;

/// Appends the encoding of `v` to `out`. Throws std::bad_alloc; SerializationError from a user adaptor.
template <class T>
void pack_into(std::string& out, const T& v) {
  static_assert(Serializable<T>,
                "weft: this type cannot cross a process boundary; see weft/process/serialize.hpp "
                "(MSGPACK_DEFINE, or specialise weft::process::serializable<T>)");
  detail::StringWriter w{&out};
  msgpack::pack(w, v);
}

/// The encoding of `v`. Thread-safe (pure). Throws as pack_into.
template <class T>
std::string pack(const T& v) {
  std::string out;
  pack_into(out, v);
  return out;
}

/// Decodes a `T` from `data`, which must hold exactly one encoded value.
/// Throws SerializationError (naming T) when the bytes are malformed, of another shape, or have trailing data.
template <class T>
T unpack(std::string_view data) {
  static_assert(Serializable<T>, "weft: this type cannot cross a process boundary; see weft/process/serialize.hpp");
  msgpack::object_handle h = detail::parse(data);
  try {
    return h.get().as<T>();
  } catch (const msgpack::type_error&) {
    throw SerializationError("weft: cannot decode a " + detail::type_name(typeid(T)) +
                             " from this message: the value has another type or shape");
  } catch (const std::exception& e) {  // container or adaptor errors (e.g. std::array size mismatch)
    throw SerializationError("weft: cannot decode a " + detail::type_name(typeid(T)) + ": " + e.what());
  }
}

}  // namespace weft::process
