// tools/weft/progress.hpp — a progress display for long work in the weft command.
//
// The display is driven by the work itself: the caller calls advance() each time a piece finishes (for
// instance as futures complete), never from a timer. On a terminal it redraws one bar line in place (at
// most every 50 ms); on a pipe or a file — a CI log — it writes a plain line at each quarter, so logs stay
// short; with Style::none it writes nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace weft::cli {

class Progress {
 public:
  enum class Style {
    bar,    ///< a bar redrawn in place (for terminals)
    lines,  ///< a line at 25, 50, 75 and 100 % (for logs)
    none,   ///< nothing
  };

  /// The style for `out`: none when `quiet`, bar when `out` is a terminal, lines otherwise.
  static Style style_for(std::FILE* out, bool quiet);

  /// Shows progress of `label` towards `total` pieces on `out` (which must outlive this object).
  Progress(std::FILE* out, Style style, std::string label, std::uint64_t total);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  /// Calls finish().
  ~Progress();

  /// Records `n` more finished pieces and redraws if due. Not thread-safe: call from one thread (or
  /// serialise the calls).
  void advance(std::uint64_t n = 1);

  /// Draws the final state and ends the bar's line. Idempotent.
  void finish();

 private:
  void draw();
  double elapsed_s() const;

  std::FILE* out_;
  Style style_;
  std::string label_;
  std::uint64_t total_;
  std::uint64_t done_ = 0;
  unsigned quarters_shown_ = 0;  // lines style: quarters already written
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace weft::cli
