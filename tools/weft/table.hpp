// tools/weft/table.hpp — plain-text tables for the weft command's reports.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace weft::cli {

/// A table of text cells printed with aligned columns: the first column left-aligned, the others
/// right-aligned (they hold numbers), a rule under the header.
class Table {
 public:
  explicit Table(std::vector<std::string> header);

  /// Appends a row. Throws std::invalid_argument when it has a different number of cells than the header.
  void add_row(std::vector<std::string> cells);

  /// The table, each line indented by `indent` spaces and ended by '\n'.
  std::string str(std::size_t indent = 0) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace weft::cli
