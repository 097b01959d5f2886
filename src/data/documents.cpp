// Documents of .txt and .jsonl inputs, UTF-8 checked.
#include "llama2/data/documents.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"

namespace llama2 {
namespace fs = std::filesystem;

size_t invalid_utf8_offset(const std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > n) return i;
    uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    const bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  const auto usable = [](const fs::path& p) { return p.extension() == ".txt" || p.extension() == ".jsonl"; };
  for (const std::string& input : inputs) {
    std::error_code ec;
    if (fs::is_directory(input, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(input))
        if (entry.is_regular_file() && usable(entry.path())) found.push_back(entry.path().string());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(input, ec)) {
      if (!usable(input)) throw BadInput("--input = " + input + ": unsupported file type; expected .txt or .jsonl");
      files.push_back(input);
    } else {
      throw BadInput("--input = " + input + ": no such file or directory");
    }
  }
  return files;
}

std::vector<Document> read_documents(const std::string& path) {
  const std::string bytes = read_file(path);
  std::vector<Document> docs;
  if (fs::path(path).extension() == ".txt") {
    const size_t bad = invalid_utf8_offset(bytes);
    if (bad != std::string::npos) throw BadInput(fmt::format("{}: invalid UTF-8 at byte offset {}", path, bad));
    if (!bytes.empty()) docs.push_back({bytes});
    return docs;
  }
  std::istringstream lines(bytes);
  std::string line;
  for (int64_t number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const size_t bad = invalid_utf8_offset(line);
    if (bad != std::string::npos)
      throw BadInput(fmt::format("{}: line {}: invalid UTF-8 at byte {} of the line", path, number, bad));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw BadInput(fmt::format("{}: line {}: malformed JSON ({})", path, number, e.what()));
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw BadInput(fmt::format("{}: line {}: no string field \"text\"; expected {{\"text\": \"...\"}}", path, number));
    std::string text = j["text"].get<std::string>();
    if (!text.empty()) docs.push_back({std::move(text)});
  }
  return docs;
}

}  // namespace llama2
