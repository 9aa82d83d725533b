// tools/weft/table.cpp — plain-text tables.
#include "table.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace weft::cli {

Table::Table(std::vector<std::string> header) : header_(std::move(header)) {}

void Table::add_row(std::vector<std::string> cells) {
  if (cells.size() != header_.size()) throw std::invalid_argument("weft: table row has the wrong number of cells");
  rows_.push_back(std::move(cells));
}

std::string Table::str(std::size_t indent) const {
  std::vector<std::size_t> width(header_.size());
  for (std::size_t c = 0; c < header_.size(); ++c) {
    width[c] = header_[c].size();
    for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    out.append(indent, ' ');
    for (std::size_t c = 0; c < cells.size(); ++c) {
      if (c != 0) out += "  ";
      const std::string pad(width[c] - cells[c].size(), ' ');
      out += c == 0 ? cells[c] + pad : pad + cells[c];
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  };
  line(header_);
  std::size_t total = 0;
  for (std::size_t w : width) total += w;
  out.append(indent, ' ');
  out.append(total + 2 * (width.empty() ? 0 : width.size() - 1), '-');
  out += '\n';
  for (const auto& row : rows_) line(row);
  return out;
}

}  // namespace weft::cli
