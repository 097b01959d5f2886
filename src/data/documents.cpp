// Documents of .txt and .jsonl inputs, UTF-8 checked.
#include "llama2/data/documents.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
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

namespace {

// Bytes [begin, end) of a file; BadInput naming it if it cannot be read.
std::string read_range(const std::string& path, int64_t begin, int64_t end) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes(static_cast<size_t>(end - begin), '\0');
  if (!in.seekg(begin) || !in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
    throw BadInput(fmt::format("--input = {}: cannot read bytes {}..{}", path, begin, end));
  return bytes;
}

// The line number of byte `offset` of a file (1-based): only for error messages, so the prefix is read then.
int64_t line_at(const std::string& path, int64_t offset) {
  const std::string prefix = read_range(path, 0, offset);
  return 1 + static_cast<int64_t>(std::count(prefix.begin(), prefix.end(), '\n'));
}

}  // namespace

std::vector<InputPiece> input_pieces(const std::vector<std::string>& files, int64_t piece_bytes) {
  std::vector<InputPiece> pieces;
  for (const std::string& file : files) {
    const int64_t size = static_cast<int64_t>(fs::file_size(file));
    if (fs::path(file).extension() != ".jsonl") {
      pieces.push_back({file, 0, size});
      continue;
    }
    std::ifstream in(file, std::ios::binary);
    int64_t begin = 0;
    for (int64_t target = piece_bytes; target < size && begin < size; target += piece_bytes) {
      if (target <= begin) continue;
      in.seekg(target);
      std::string rest;
      std::getline(in, rest);  // to just after the next newline
      const int64_t cut = in ? static_cast<int64_t>(in.tellg()) : size;
      in.clear();
      if (cut >= size) break;
      pieces.push_back({file, begin, cut});
      begin = cut;
    }
    pieces.push_back({file, begin, size});
  }
  return pieces;
}

std::vector<Document> read_documents(const InputPiece& piece) {
  const std::string& path = piece.file;
  const std::string bytes = read_range(path, piece.begin, piece.end);
  std::vector<Document> docs;
  if (fs::path(path).extension() == ".txt") {
    const size_t bad = invalid_utf8_offset(bytes);
    if (bad != std::string::npos) throw BadInput(fmt::format("{}: invalid UTF-8 at byte offset {}", path, bad));
    if (!bytes.empty()) docs.push_back({bytes});
    return docs;
  }
  std::istringstream lines(bytes);
  std::string line;
  for (int64_t local = 0; std::getline(lines, line); ++local) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto number = [&] { return line_at(path, piece.begin) + local; };
    const size_t bad = invalid_utf8_offset(line);
    if (bad != std::string::npos)
      throw BadInput(fmt::format("{}: line {}: invalid UTF-8 at byte {} of the line", path, number(), bad));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw BadInput(fmt::format("{}: line {}: malformed JSON ({})", path, number(), e.what()));
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw BadInput(fmt::format("{}: line {}: no string field \"text\"; expected {{\"text\": \"...\"}}", path,
                                 number()));
    std::string text = j["text"].get<std::string>();
    if (!text.empty()) docs.push_back({std::move(text)});
  }
  return docs;
}

}  // namespace llama2
