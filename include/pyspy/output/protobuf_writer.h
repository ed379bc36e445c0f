// A minimal protocol-buffers encoder (wire format only, no schema): what the pprof
// exporter needs to write profile.proto without a protobuf library dependency.
//
// Wire format: every field is a tag varint (field_number << 3 | wire type) then its
// payload. Varints are little-endian base-128 (7 bits a byte, high bit = more).
// Wire type 0 is a varint, 2 is length-delimited (a varint length then the bytes:
// strings, nested messages, packed repeated varints).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pyspy::protobuf {

enum class WireType : std::uint8_t { Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5 };

// Appends `value` as a varint to `out`.
inline void appendVarint(std::string& out, std::uint64_t value) {
    while (value >= 0x80) {
        out.push_back(static_cast<char>((value & 0x7f) | 0x80));
        value >>= 7;
    }
    out.push_back(static_cast<char>(value));
}

inline std::string encodeVarint(std::uint64_t value) {
    std::string out;
    appendVarint(out, value);
    return out;
}

class Writer {
  public:
    // int64/uint64/bool/enum fields. Negative int64 values are their two's complement
    // (ten bytes), as protobuf encodes int64 (not sint64).
    void varint(std::uint32_t field, std::uint64_t value) {
        tag(field, WireType::Varint);
        appendVarint(buffer_, value);
    }
    void int64(std::uint32_t field, std::int64_t value) { varint(field, static_cast<std::uint64_t>(value)); }

    // string/bytes fields (written as given: callers make strings valid UTF-8).
    void bytes(std::uint32_t field, std::string_view value) {
        tag(field, WireType::LengthDelimited);
        appendVarint(buffer_, value.size());
        buffer_.append(value);
    }

    // An embedded message, encoded by `message`.
    void message(std::uint32_t field, const Writer& message) { bytes(field, message.data()); }

    // A packed repeated varint field (nothing at all when `values` is empty, as
    // protobuf writes an empty repeated field).
    template <typename T>
    void packed(std::uint32_t field, std::span<const T> values) {
        if (values.empty()) return;
        std::string payload;
        for (const T v : values) appendVarint(payload, static_cast<std::uint64_t>(v));
        bytes(field, payload);
    }

    const std::string& data() const { return buffer_; }
    std::size_t size() const { return buffer_.size(); }
    void clear() { buffer_.clear(); }

  private:
    void tag(std::uint32_t field, WireType type) {
        appendVarint(buffer_, (std::uint64_t{field} << 3) | static_cast<std::uint8_t>(type));
    }
    std::string buffer_;
};

}  // namespace pyspy::protobuf
