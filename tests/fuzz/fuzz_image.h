// The memory-image format shared by the fuzz targets that read a fake process
// (fuzz_objects, fuzz_frame_walker) and by make_corpus, which saves such images from
// live targets. Little-endian, no alignment:
//   u8 major, u8 minor, u16 root count
//   9 x u64  TypeAddresses (str, unicode, bytes, integer, long2, dict, code, module, frame)
//   roots x u64  addresses to start from (objects, or thread frames)
//   then segments until the end: u64 address, u32 length, length bytes
// Parsing never fails: a truncated image keeps what it has, so every mutation of a
// seed is a valid input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "pyspy/process/memory.h"
#include "pyspy/python/objects.h"

namespace pyspy::fuzz {

constexpr std::size_t kMaxRoots = 64;
constexpr std::size_t kMaxSegments = 4096;

struct Image {
    int major = 0;
    int minor = 0;
    TypeAddresses types;
    std::vector<std::uint64_t> roots;
    std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> segments;
};

class Reader {
  public:
    Reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    template <typename T>
    bool get(T& out) {
        if (size_ - pos_ < sizeof(T)) return false;
        std::memcpy(&out, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return true;
    }
    std::size_t remaining() const { return size_ - pos_; }
    const std::uint8_t* here() const { return data_ + pos_; }
    void skip(std::size_t n) { pos_ += n; }

  private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

inline Image parseImage(const std::uint8_t* data, std::size_t size) {
    Image image;
    Reader in(data, size);
    std::uint8_t major = 0, minor = 0;
    std::uint16_t roots = 0;
    in.get(major);
    in.get(minor);
    in.get(roots);
    image.major = major;
    image.minor = minor;
    std::uint64_t* types[] = {&image.types.str,  &image.types.unicode, &image.types.bytes,
                              &image.types.integer, &image.types.long2, &image.types.dict,
                              &image.types.code, &image.types.module, &image.types.frame};
    for (auto* t : types) in.get(*t);
    for (std::size_t i = 0; i < roots && i < kMaxRoots; ++i) {
        std::uint64_t root = 0;
        if (!in.get(root)) break;
        image.roots.push_back(root);
    }
    while (image.segments.size() < kMaxSegments) {
        std::uint64_t address = 0;
        std::uint32_t length = 0;
        if (!in.get(address) || !in.get(length)) break;
        const std::size_t n = std::min<std::size_t>(length, in.remaining());
        image.segments.emplace_back(address, std::vector<std::uint8_t>(in.here(), in.here() + n));
        in.skip(n);
    }
    return image;
}

inline void mapImage(const Image& image, BufferMemory& memory) {
    for (const auto& [address, bytes] : image.segments) memory.map(address, bytes);
}

// Serializes an image (make_corpus).
inline std::string writeImage(const Image& image) {
    std::string out;
    auto put = [&out](const auto& value) { out.append(reinterpret_cast<const char*>(&value), sizeof(value)); };
    put(static_cast<std::uint8_t>(image.major));
    put(static_cast<std::uint8_t>(image.minor));
    put(static_cast<std::uint16_t>(image.roots.size()));
    const std::uint64_t types[] = {image.types.str,  image.types.unicode, image.types.bytes,
                                   image.types.integer, image.types.long2, image.types.dict,
                                   image.types.code, image.types.module, image.types.frame};
    for (auto t : types) put(t);
    for (auto r : image.roots) put(r);
    for (const auto& [address, bytes] : image.segments) {
        put(address);
        put(static_cast<std::uint32_t>(bytes.size()));
        out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    return out;
}

}  // namespace pyspy::fuzz
