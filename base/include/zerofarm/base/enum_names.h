// Names of a closed set (an enum class) both ways, from one table of {value, name} pairs, so a
// set's wire names are written once. Header-only; pure.
#pragma once

#include <optional>
#include <string_view>

namespace zerofarm {

// The name of `value` in `table`, or `fallback` when the table lacks it.
template <class Table, class E>
std::string_view NameIn(const Table& table, E value, std::string_view fallback) {
  for (const auto& [v, name] : table)
    if (v == value) return name;
  return fallback;
}

// The value named `name` in `table`; nullopt for any other text.
template <class E, class Table>
std::optional<E> ValueIn(const Table& table, std::string_view name) {
  for (const auto& [v, n] : table)
    if (n == name) return v;
  return std::nullopt;
}

}  // namespace zerofarm
