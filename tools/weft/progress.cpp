// tools/weft/progress.cpp — the progress bar / progress lines of the weft command.
#include "progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include <fmt/core.h>

namespace weft::cli {
namespace {
constexpr int kBarWidth = 32;
constexpr auto kRedrawEvery = std::chrono::milliseconds(50);
}  // namespace

Progress::Style Progress::style_for(std::FILE* out, bool quiet) {
  if (quiet) return Style::none;
  return ::isatty(::fileno(out)) != 0 ? Style::bar : Style::lines;
}

Progress::Progress(std::FILE* out, Style style, std::string label, std::uint64_t total)
    : out_(out),
      style_(style),
      label_(std::move(label)),
      total_(total),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {
  if (style_ == Style::bar) draw();
}

Progress::~Progress() { finish(); }

void Progress::advance(std::uint64_t n) {
  done_ = std::min(total_, done_ + n);
  if (style_ == Style::bar) {
    const auto now = std::chrono::steady_clock::now();
    if (done_ == total_ || now - last_draw_ >= kRedrawEvery) {
      last_draw_ = now;
      draw();
    }
  } else if (style_ == Style::lines) {
    // Quarters reached so far (4 when done); write one line for each newly reached quarter, once.
    const auto quarters = total_ == 0 ? 4u : static_cast<unsigned>(done_ * 4 / total_);
    if (quarters > quarters_shown_) {
      quarters_shown_ = quarters;
      draw();
    }
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (style_ == Style::bar) {
    draw();
    std::fputc('\n', out_);
    std::fflush(out_);
  }
}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::draw() {
  const double fraction = total_ == 0 ? 1.0 : static_cast<double>(done_) / static_cast<double>(total_);
  const int percent = static_cast<int>(fraction * 100.0);
  if (style_ == Style::bar) {
    const int filled = static_cast<int>(fraction * kBarWidth);
    // "\r" returns to the start of the line; "\x1b[K" clears what a longer earlier line left behind.
    fmt::print(out_, "\r  {} [{:#<{}}{:-<{}}] {:3}%  {}/{}  {:.1f} s\x1b[K", label_, "", filled, "",
               kBarWidth - filled, percent, done_, total_, elapsed_s());
  } else if (style_ == Style::lines) {
    fmt::print(out_, "  {}: {:3}%  {}/{}  {:.1f} s\n", label_, percent, done_, total_, elapsed_s());
  }
  std::fflush(out_);
}

}  // namespace weft::cli
