// Owns TensorBoard event files (scalars and text): Event/Summary protobufs (proto/tensorboard_event.proto, Debian's
// libprotobuf) in TFRecord framing (length, masked CRC-32C of the length, data, masked CRC-32C of the data).
#pragma once
#include <cstdint>
#include <fstream>
#include <string>

namespace llama2 {

class TensorBoardWriter {
 public:
  // Creates <dir>/events.out.tfevents.<unix time>.<host> starting with the file_version event.
  explicit TensorBoardWriter(const std::string& dir);
  void scalar(const std::string& tag, int64_t step, double value);
  void text(const std::string& tag, int64_t step, const std::string& text);  // the text plugin's string tensor
  void flush();

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::ofstream out_;
};

// TFRecord's masked CRC-32C: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t size);

}  // namespace llama2
