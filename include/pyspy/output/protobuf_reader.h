// A minimal protocol-buffers decoder (wire format only, no schema), the counterpart of
// protobuf_writer.h: what `diff` needs to read back the pprof profiles `record` writes.
// The bytes are untrusted: every varint is at most 10 bytes, every length is checked
// against the bytes left, and a malformed message stops the reader with an error
// instead of reading past its end. Groups (wire types 3 and 4) are refused.
#pragma once

#include <cstdint>
#include <string_view>

#include "pyspy/output/protobuf_writer.h"

namespace pyspy::protobuf {

// Reads a varint at data[pos], advancing pos; false when it is truncated or longer than
// 10 bytes.
inline bool readVarint(std::string_view data, std::size_t& pos, std::uint64_t& value) {
    value = 0;
    for (unsigned shift = 0; shift < 70 && pos < data.size(); shift += 7) {
        const auto byte = static_cast<unsigned char>(data[pos++]);
        value |= shift < 64 ? std::uint64_t{byte & 0x7fu} << shift : 0;
        if ((byte & 0x80) == 0) return true;
    }
    return false;
}

// The fields of one message, in order: `while (reader.next()) { ... }`, then check
// reader.failed().
class Reader {
  public:
    explicit Reader(std::string_view data) : data_(data) {}

    // Moves to the next field; false at the end of the message or on malformed bytes.
    bool next() {
        if (error_ != nullptr || pos_ >= data_.size()) return false;
        std::uint64_t tag = 0;
        if (!readVarint(data_, pos_, tag)) return fail("truncated field tag");
        field_ = tag >> 3;
        wire_ = static_cast<unsigned>(tag & 7);
        if (field_ == 0 || field_ > 0x1fffffff) return fail("invalid field number");
        switch (wire_) {
            case static_cast<unsigned>(WireType::Varint):
                if (!readVarint(data_, pos_, varint_)) return fail("truncated varint");
                return true;
            case static_cast<unsigned>(WireType::Fixed64):
                return skip(8);
            case static_cast<unsigned>(WireType::Fixed32):
                return skip(4);
            case static_cast<unsigned>(WireType::LengthDelimited): {
                std::uint64_t length = 0;
                if (!readVarint(data_, pos_, length)) return fail("truncated length");
                if (length > data_.size() - pos_) return fail("length past the end of the message");
                bytes_ = data_.substr(pos_, static_cast<std::size_t>(length));
                pos_ += static_cast<std::size_t>(length);
                return true;
            }
            default:
                return fail("unsupported wire type");
        }
    }

    std::uint64_t field() const { return field_; }
    bool isVarint() const { return wire_ == static_cast<unsigned>(WireType::Varint); }
    bool isBytes() const { return wire_ == static_cast<unsigned>(WireType::LengthDelimited); }
    std::uint64_t varint() const { return isVarint() ? varint_ : 0; }
    std::string_view bytes() const { return isBytes() ? bytes_ : std::string_view(); }

    bool failed() const { return error_ != nullptr; }
    const char* error() const { return error_ != nullptr ? error_ : ""; }

    // The values of a repeated varint field at the current field, packed (one
    // length-delimited field) or not (this one varint): f(value) for each. False, with
    // the reader failed, when the packed bytes are malformed.
    template <typename F>
    bool forEachVarint(F&& f) {
        if (isVarint()) {
            f(varint_);
            return true;
        }
        if (!isBytes()) return fail("a repeated varint field of another wire type");
        std::size_t pos = 0;
        std::uint64_t value = 0;
        while (pos < bytes_.size()) {
            if (!readVarint(bytes_, pos, value)) return fail("truncated packed varint");
            f(value);
        }
        return true;
    }

  private:
    bool skip(std::size_t n) {
        if (n > data_.size() - pos_) return fail("truncated fixed-size field");
        pos_ += n;
        return true;
    }
    bool fail(const char* error) {
        error_ = error;
        return false;
    }

    std::string_view data_;
    std::size_t pos_ = 0;
    std::uint64_t field_ = 0;
    unsigned wire_ = 0;
    std::uint64_t varint_ = 0;
    std::string_view bytes_;
    const char* error_ = nullptr;
};

}  // namespace pyspy::protobuf
