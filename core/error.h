// One error type for everything a user can get wrong: the CLI prints what() on one line, exit 2.
#pragma once
#include <stdexcept>
#include <string>

namespace gqa {

// Names the file (or source), the field inside it, and what was expected instead.
class InputError : public std::runtime_error {
 public:
  InputError(const std::string& file, const std::string& field, const std::string& problem)
      : std::runtime_error(format(file, field, problem)), file_(file), field_(field) {}
  const std::string& file() const { return file_; }
  const std::string& field() const { return field_; }

 private:
  static std::string format(const std::string& file, const std::string& field, const std::string& problem) {
    std::string s = file;
    if (!field.empty()) s += (s.empty() ? "" : ": ") + field;
    return s + (s.empty() ? "" : ": ") + problem;
  }
  std::string file_, field_;
};

}  // namespace gqa
