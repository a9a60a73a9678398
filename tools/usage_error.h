// The one error type of the command-line tools for what their user can fix: a
// wrong command line, or something it names that cannot be read or reached.
// Helpers throw it and never exit(); only main() catches it, prints the message
// and exits 2, so every tool leaves the same way and cleans up on the way out.
#pragma once

#include <stdexcept>
#include <string>

namespace tokenledger::tools {

class UsageError : public std::runtime_error {
 public:
  // seeHelp: the command line is at fault, so main() points to --help after the
  // message. none: the flags were right but what they name is not (a file, a log,
  // a broker, the service), and --help would not help.
  enum class Hint { seeHelp, none };

  explicit UsageError(const std::string& message, Hint hint = Hint::seeHelp)
      : std::runtime_error(message), hint_(hint) {}

  bool seeHelp() const { return hint_ == Hint::seeHelp; }

 private:
  Hint hint_;
};

}  // namespace tokenledger::tools
