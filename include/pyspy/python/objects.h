// ObjectReader: decodes CPython objects in the target's memory (str, bytes, int,
// dict, module, instance attributes) for one interpreter layout. Every length,
// count and probe is bounded; a value that does not look like what was asked for
// is an Invalid error, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pyspy/common/result.h"
#include "pyspy/process/memory.h"
#include "pyspy/python/layout.h"

namespace pyspy {

// Runtime addresses of the interpreter's type objects (from ELF symbols), used to
// check an object's type before decoding it. 0 = unknown: that check is skipped.
struct TypeAddresses {
    std::uint64_t str = 0;      // PyUnicode_Type (3.x), PyString_Type (2.7)
    std::uint64_t unicode = 0;  // PyUnicode_Type (2.7 only)
    std::uint64_t bytes = 0;    // PyBytes_Type (3.x), PyString_Type (2.7)
    std::uint64_t integer = 0;  // PyLong_Type (3.x), PyInt_Type (2.7)
    std::uint64_t long2 = 0;    // PyLong_Type (2.7 only)
    std::uint64_t dict = 0;     // PyDict_Type
    std::uint64_t code = 0;     // PyCode_Type
    std::uint64_t module = 0;   // PyModule_Type
    std::uint64_t frame = 0;    // PyFrame_Type
};

struct ObjectLimits {
    std::size_t maxStringBytes = 4096;                   // longer strings are cut at a character and marked with "..."
    std::size_t maxBytesObject = std::size_t{16} << 20;  // longer bytes objects (line tables) are an error
    std::size_t maxDictEntries = 100000;                 // bigger dicts yield their first entries only
};

class ObjectReader {
  public:
    ObjectReader(const ProcessMemory& memory, const PyLayout& layout, TypeAddresses types, ObjectLimits limits = {});

    const PyLayout& layout() const { return layout_; }
    const TypeAddresses& types() const { return types_; }
    const ProcessMemory& memory() const { return memory_; }
    const ObjectLimits& limits() const { return limits_; }

    Result<std::uint64_t> typeOf(std::uint64_t object) const;  // ob_type
    Result<std::string> typeName(std::uint64_t object) const;  // tp_name of ob_type

    // A str (3.x) or a str/unicode (2.7), decoded to UTF-8. Invalid code points are
    // replaced with U+FFFD. Cut at limits.maxStringBytes.
    Result<std::string> readString(std::uint64_t object) const;
    Result<std::vector<std::uint8_t>> readBytesObject(std::uint64_t object) const;  // bytes (3.x) / str (2.7)

    // An int (any size that fits in 64 bits signed); bigger values are an Invalid error.
    Result<std::int64_t> readInt(std::uint64_t object) const;
    // An int of any size in decimal, if it has at most `maxDigits` internal digits
    // (30 or 15 bits each); bigger ones are an Invalid error.
    Result<std::string> readIntDecimal(std::uint64_t object, std::size_t maxDigits) const;

    // The (key, value) object pointers of a dict, in storage order, at most maxDictEntries.
    Result<std::vector<std::pair<std::uint64_t, std::uint64_t>>> dictItems(std::uint64_t dict) const;
    // The value for a str key, or 0 when absent.
    Result<std::uint64_t> dictGetString(std::uint64_t dict, std::string_view key) const;

    // An instance attribute stored in the instance's dict (tp_dictoffset, managed dict,
    // or inline values depending on the version); 0 when absent.
    Result<std::uint64_t> instanceAttribute(std::uint64_t object, std::string_view name) const;

    // A module's __dict__.
    Result<std::uint64_t> moduleDict(std::uint64_t module) const;

  private:
    using Items = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

    // Whether `type` is `known` (when non-zero) or has the tp_flags subclass bit `flag`.
    Result<bool> typeIs(std::uint64_t type, std::uint64_t known, std::uint64_t flag) const;
    Result<std::string> readUnicode3(std::uint64_t object) const;
    Result<std::string> readUnicode2(std::uint64_t object) const;
    Result<std::int64_t> readLongDigits(std::uint64_t object) const;
    // The digits of a long, least significant first, and its sign; at most maxDigits.
    Result<std::vector<std::uint32_t>> longDigits(std::uint64_t object, std::size_t maxDigits, bool& negative) const;
    // 3.6+: the (key, value) pairs of a keys object; `values` is the split values array or 0.
    Result<Items> keysItems(std::uint64_t keys, std::uint64_t values) const;
    Result<Items> dictItems27(std::uint64_t dict) const;
    // Whether the object `key` is a str equal to `text`; a key that is not a str is unequal.
    bool keyEquals(std::uint64_t key, std::string_view text) const;
    Result<std::uint64_t> findString(const Items& items, std::string_view key) const;

    const ProcessMemory& memory_;
    PyLayout layout_;
    TypeAddresses types_;
    ObjectLimits limits_;
};

}  // namespace pyspy
