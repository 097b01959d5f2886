// Owns the checksums of files the program writes and reads: CRC32C (shards, checkpoints, TFRecord
// framing) and SHA-256 (identity of a tokenizer model).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace llama2 {

// CRC-32C (Castagnoli), continuing from `crc` (0 to start): by SSE4.2's crc32 instruction where the CPU has it,
// else by crc32c_tables (slice-by-8 tables), the same function of the bytes.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
uint32_t crc32c_tables(const void* data, size_t size, uint32_t crc = 0);

// Hex SHA-256 of a byte range, and of a whole file (BadInput if unreadable).
std::string sha256_hex(const void* data, size_t size);
std::string sha256_file(const std::string& path);

}  // namespace llama2
