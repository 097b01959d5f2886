// TensorBoard scalars: one Event per value, TFRecord-framed.
#include "llama2/metrics/tensorboard.h"

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "llama2/util/checksum.h"
#include "llama2/util/errors.h"
#include "llama2/util/host_name.h"
#include "tensorboard_event.pb.h"

namespace llama2 {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  path_ = fmt::format("{}/events.out.tfevents.{}.{}", dir, static_cast<int64_t>(now_s()), host_name());
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw RuntimeFailure("cannot create TensorBoard file " + path_);
  tensorboard::Event event;
  event.set_wall_time(now_s());
  event.set_file_version("brain.Event:2");
  write_record(event.SerializeAsString());
}

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value) {
  tensorboard::Event event;
  event.set_wall_time(now_s());
  event.set_step(step);
  tensorboard::SummaryValue* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  write_record(event.SerializeAsString());
}

void TensorBoardWriter::text(const std::string& tag, int64_t step, const std::string& text) {
  constexpr int kDtString = 7;
  tensorboard::Event event;
  event.set_wall_time(now_s());
  event.set_step(step);
  tensorboard::SummaryValue* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  tensorboard::TensorProto* t = v->mutable_tensor();
  t->set_dtype(kDtString);
  t->mutable_tensor_shape();
  t->add_string_val(text);
  write_record(event.SerializeAsString());
}

void TensorBoardWriter::write_record(const std::string& data) {
  const uint64_t length = data.size();
  const uint32_t length_crc = masked_crc32c(&length, sizeof(length));
  const uint32_t data_crc = masked_crc32c(data.data(), data.size());
  out_.write(reinterpret_cast<const char*>(&length), sizeof(length));
  out_.write(reinterpret_cast<const char*>(&length_crc), sizeof(length_crc));
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  out_.write(reinterpret_cast<const char*>(&data_crc), sizeof(data_crc));
}

void TensorBoardWriter::flush() {
  out_.flush();
  if (!out_) throw RuntimeFailure("cannot write TensorBoard file " + path_ + " (" + std::strerror(errno) + ")");
}

}  // namespace llama2
