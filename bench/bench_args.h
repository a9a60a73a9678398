// Command-line walking shared by the bench helpers: `--name value` options. A
// missing value, or a number std::sto* cannot read, calls the tool's usage(2)
// instead of ending in an uncaught exception.
#pragma once

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace tlbench {

class Args {
 public:
  using Usage = void (*)(int code);  // the tool's usage(): prints and exits
  Args(int argc, char** argv, Usage usage) : argc_(argc), argv_(argv), usage_(usage) {}

  bool more() const { return i_ + 1 < argc_; }
  // The next option's name (call while more()).
  std::string_view next() { return argv_[++i_]; }

  // The current option's value.
  std::string text() {
    if (i_ + 1 >= argc_) fail();
    return argv_[++i_];
  }

  // The current option's value as a number (int, long, size_t or double).
  template <typename T>
  T number() {
    std::string v = text();
    try {
      if constexpr (std::is_same_v<T, double>)
        return std::stod(v);
      else if constexpr (std::is_same_v<T, long>)
        return std::stol(v);
      else if constexpr (std::is_same_v<T, size_t>)
        return std::stoul(v);
      else
        return std::stoi(v);
    } catch (const std::logic_error&) {  // invalid_argument, out_of_range
      fail();
    }
  }

  [[noreturn]] void fail() {
    usage_(2);
    std::exit(2);  // usage() exits; this only tells the compiler
  }

 private:
  int argc_;
  char** argv_;
  Usage usage_;
  int i_ = 0;
};

}  // namespace tlbench
