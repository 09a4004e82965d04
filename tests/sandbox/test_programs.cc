#include "test_programs.h"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>

namespace zerofarm::sandbox_test {
namespace {

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

bool HaveGcc() {
  static const bool have = std::system("gcc --version > /dev/null 2>&1") == 0;
  return have;
}

std::optional<std::filesystem::path> Compile(const TempDir& dir, const std::string& name,
                                             const std::string& source, const std::string& flags,
                                             std::string* log) {
  const std::filesystem::path src = dir.path() / name;
  const std::filesystem::path out = dir.path() / std::filesystem::path(name).stem();
  const std::filesystem::path log_path = dir.path() / (name + ".log");
  std::ofstream(src) << source;
  const std::string command = "gcc " + flags + " -o " + Quote(out.string()) + " " +
                              Quote(src.string()) + " > " + Quote(log_path.string()) + " 2>&1";
  const int rc = std::system(command.c_str());
  std::ifstream in(log_path);
  *log = command + "\n" + std::string(std::istreambuf_iterator<char>(in), {});
  if (rc != 0) return std::nullopt;
  return out;
}

bool Strip(const std::filesystem::path& program, std::string* log) {
  const std::filesystem::path log_path = program.string() + ".strip.log";
  const std::string command =
      "strip " + Quote(program.string()) + " > " + Quote(log_path.string()) + " 2>&1";
  const int rc = std::system(command.c_str());
  std::ifstream in(log_path);
  *log = command + "\n" + std::string(std::istreambuf_iterator<char>(in), {});
  return rc == 0;
}

std::vector<std::byte> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  for (size_t i = 0; i < chars.size(); ++i) bytes[i] = static_cast<std::byte>(chars[i]);
  return bytes;
}

void WriteFile(const std::filesystem::path& path, const std::vector<std::byte>& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

}  // namespace zerofarm::sandbox_test
