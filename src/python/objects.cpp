#include "pyspy/python/objects.h"

#include <algorithm>
#include <cstring>

namespace pyspy {

namespace {

// tp_flags subclass bits; the same bit positions in 2.7 and every 3.x.
constexpr std::uint64_t kIntSubclass27 = 1ull << 23;  // 2.7 int
constexpr std::uint64_t kLongSubclass = 1ull << 24;
constexpr std::uint64_t kBytesSubclass = 1ull << 27;  // bytes (3.x), str (2.7)
constexpr std::uint64_t kUnicodeSubclass = 1ull << 28;
constexpr std::uint64_t kDictSubclass = 1ull << 29;

constexpr std::size_t kMaxTypeName = 256;
// Fields the generated layouts do not have (yet); fixed in the versions that have them.
constexpr std::uint64_t kDictValuesValidOffset = 3;  // _dictvalues.valid (3.13)
constexpr std::int64_t kOldStyleInstanceDict = 24;   // PyInstanceObject.in_dict (2.7, 64-bit)

std::uint64_t at(std::uint64_t base, std::int64_t offset) { return base + static_cast<std::uint64_t>(offset); }

bool has(std::int64_t offset) { return offset != kAbsent; }

Status need(std::initializer_list<std::int64_t> offsets, const char* what) {
    for (auto offset : offsets) {
        if (offset == kAbsent) return Err{ReadError{ReadErrorKind::Unsupported, 0, what}};
    }
    return {};
}

void appendUtf8(std::string& out, std::uint32_t cp) {
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;  // not a scalar value
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

// Builds a UTF-8 string of at most `maxBytes` bytes from code points, cutting at a
// character boundary and marking a cut with "...".
class Utf8Builder {
  public:
    explicit Utf8Builder(std::size_t maxBytes) : maxBytes_(maxBytes) {}

    // False once the bound is reached: the caller stops feeding code points.
    bool add(std::uint32_t cp) {
        if (cut_) return false;
        const std::size_t before = out_.size();
        appendUtf8(out_, cp);
        if (out_.size() > maxBytes_) {
            out_.resize(before);
            cut_ = true;
            return false;
        }
        return true;
    }
    void markCut() { cut_ = true; }
    std::string finish() && {
        if (cut_) out_ += "...";
        return std::move(out_);
    }

  private:
    std::size_t maxBytes_;
    std::string out_;
    bool cut_ = false;
};

// Bytes that should be UTF-8 (2.7 str): valid sequences are kept, each invalid byte
// becomes U+FFFD.
void decodeUtf8Lossy(std::span<const std::uint8_t> bytes, Utf8Builder& out) {
    std::size_t i = 0;
    while (i < bytes.size()) {
        const std::uint8_t lead = bytes[i];
        std::uint32_t cp = 0xfffd;
        std::size_t length = 1;
        if (lead < 0x80) {
            cp = lead;
        } else {
            std::size_t extra = 0;
            std::uint32_t min = 0;
            if ((lead & 0xe0) == 0xc0) {
                extra = 1, min = 0x80, cp = lead & 0x1f;
            } else if ((lead & 0xf0) == 0xe0) {
                extra = 2, min = 0x800, cp = lead & 0x0f;
            } else if ((lead & 0xf8) == 0xf0) {
                extra = 3, min = 0x10000, cp = lead & 0x07;
            }
            bool valid = extra > 0 && bytes.size() - i > extra;
            for (std::size_t k = 1; valid && k <= extra; ++k) {
                if ((bytes[i + k] & 0xc0) != 0x80) valid = false;
                cp = (cp << 6) | (bytes[i + k] & 0x3f);
            }
            if (valid && cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
                length = extra + 1;
            } else {
                cp = 0xfffd;
            }
        }
        if (!out.add(cp)) return;
        i += length;
    }
}

}  // namespace

ObjectReader::ObjectReader(const ProcessMemory& memory, const PyLayout& layout, TypeAddresses types,
                           ObjectLimits limits)
    : memory_(memory), layout_(layout), types_(types), limits_(limits) {}

Result<std::uint64_t> ObjectReader::typeOf(std::uint64_t object) const {
    if (object == 0) return Err{invalid("null object")};
    PYSPY_CHECK(need({layout_.object_type}, "no ob_type offset"));
    PYSPY_TRY(auto type, readPointer(memory_, at(object, layout_.object_type)));
    if (type == 0) return Err{invalid("object without a type", object)};
    return type;
}

Result<std::string> ObjectReader::typeName(std::uint64_t object) const {
    PYSPY_TRY(auto type, typeOf(object));
    PYSPY_CHECK(need({layout_.type_name}, "no tp_name offset"));
    PYSPY_TRY(auto name, readPointer(memory_, at(type, layout_.type_name)));
    return readCString(memory_, name, kMaxTypeName);
}

Result<bool> ObjectReader::typeIs(std::uint64_t type, std::uint64_t known, std::uint64_t flag) const {
    if (known != 0 && type == known) return true;
    if (!has(layout_.type_flags)) return known == 0;  // nothing to check against
    PYSPY_TRY(auto flags, readValue<std::uint64_t>(memory_, at(type, layout_.type_flags)));
    return (flags & flag) != 0;
}

// ---------------------------------------------------------------------------------
// str

Result<std::string> ObjectReader::readString(std::uint64_t object) const {
    PYSPY_TRY(auto type, typeOf(object));
    if (layout_.major == 2) {
        PYSPY_TRY(bool isStr, typeIs(type, types_.str, kBytesSubclass));
        if (isStr) {
            PYSPY_TRY(auto bytes, readBytesObject(object));
            Utf8Builder out(limits_.maxStringBytes);
            decodeUtf8Lossy(bytes, out);
            return std::move(out).finish();
        }
        PYSPY_TRY(bool isUnicode, typeIs(type, types_.unicode, kUnicodeSubclass));
        if (!isUnicode) return Err{invalid("not a str or unicode object", object)};
        return readUnicode2(object);
    }
    PYSPY_TRY(bool isStr, typeIs(type, types_.str, kUnicodeSubclass));
    if (!isStr) return Err{invalid("not a str object", object)};
    return readUnicode3(object);
}

Result<std::string> ObjectReader::readUnicode3(std::uint64_t object) const {
    const PyLayout& l = layout_;
    PYSPY_CHECK(need({l.unicode_length, l.unicode_state, l.unicode_ascii_size, l.unicode_compact_size},
                     "no str layout"));
    if (l.unicode_kind_shift < 0 || l.unicode_compact_bit < 0 || l.unicode_ascii_bit < 0) {
        return Err{ReadError{ReadErrorKind::Unsupported, object, "no str state bits"}};
    }
    PYSPY_TRY(auto header, RemoteBlock::read(memory_, object, static_cast<std::size_t>(l.unicode_ascii_size)));
    PYSPY_TRY(auto length, header.field<std::int64_t>(l.unicode_length));
    PYSPY_TRY(auto state, header.field<std::uint32_t>(l.unicode_state));
    if (length < 0) return Err{invalid("negative str length", object)};
    const unsigned kind = (state >> l.unicode_kind_shift) & 7u;
    const bool compact = ((state >> l.unicode_compact_bit) & 1u) != 0;
    const bool ascii = ((state >> l.unicode_ascii_bit) & 1u) != 0;
    if (kind != 1 && kind != 2 && kind != 4) {
        // 0 is the wchar_t form of a legacy string not yet made ready (3.3 - 3.11).
        return Err{invalid("str of an unknown kind", object)};
    }
    std::uint64_t data = 0;
    if (compact) {
        data = object + static_cast<std::uint64_t>(ascii ? l.unicode_ascii_size : l.unicode_compact_size);
    } else {
        PYSPY_CHECK(need({l.unicode_data}, "no legacy str data offset"));
        PYSPY_TRY(data, readPointer(memory_, at(object, l.unicode_data)));
        if (data == 0) return Err{invalid("legacy str without data", object)};
    }

    // Every code point takes at least one UTF-8 byte: more than maxStringBytes code
    // points cannot fit, so no more are read.
    const std::size_t count = static_cast<std::size_t>(
        std::min<std::uint64_t>(static_cast<std::uint64_t>(length), limits_.maxStringBytes));
    PYSPY_TRY(auto raw, readBytes(memory_, data, count * kind));
    Utf8Builder out(limits_.maxStringBytes);
    for (std::size_t i = 0; i < count; ++i) {
        std::uint32_t cp = 0;
        if (kind == 1) {
            cp = raw[i];
        } else if (kind == 2) {
            std::uint16_t unit;
            std::memcpy(&unit, raw.data() + i * 2, 2);
            cp = unit;
        } else {
            std::memcpy(&cp, raw.data() + i * 4, 4);
        }
        if (ascii && cp >= 0x80) cp = 0xfffd;
        if (!out.add(cp)) break;
    }
    if (count < static_cast<std::uint64_t>(length)) out.markCut();
    return std::move(out).finish();
}

Result<std::string> ObjectReader::readUnicode2(std::uint64_t object) const {
    const PyLayout& l = layout_;
    PYSPY_CHECK(need({l.unicode2_length, l.unicode2_str}, "no 2.7 unicode layout"));
    const int unit = l.unicode2_char_size;
    if (unit != 2 && unit != 4) return Err{ReadError{ReadErrorKind::Unsupported, object, "no Py_UNICODE size"}};
    PYSPY_TRY(auto length, readValue<std::int64_t>(memory_, at(object, l.unicode2_length)));
    PYSPY_TRY(auto data, readPointer(memory_, at(object, l.unicode2_str)));
    if (length < 0) return Err{invalid("negative unicode length", object)};
    if (length > 0 && data == 0) return Err{invalid("unicode without data", object)};
    // One spare unit so a surrogate pair cut by the bound can still be joined.
    const std::size_t count = static_cast<std::size_t>(
        std::min<std::uint64_t>(static_cast<std::uint64_t>(length), limits_.maxStringBytes + 1));
    PYSPY_TRY(auto raw, readBytes(memory_, data, count * static_cast<std::size_t>(unit)));
    Utf8Builder out(limits_.maxStringBytes);
    for (std::size_t i = 0; i < count; ++i) {
        std::uint32_t cp = 0;
        if (unit == 4) {
            std::memcpy(&cp, raw.data() + i * 4, 4);
        } else {
            std::uint16_t u;
            std::memcpy(&u, raw.data() + i * 2, 2);
            cp = u;
            if (u >= 0xd800 && u <= 0xdbff && i + 1 < count) {  // UCS2 build: join a surrogate pair
                std::uint16_t low;
                std::memcpy(&low, raw.data() + (i + 1) * 2, 2);
                if (low >= 0xdc00 && low <= 0xdfff) {
                    cp = 0x10000 + ((std::uint32_t{u} - 0xd800) << 10) + (low - 0xdc00u);
                    ++i;
                }
            }
        }
        if (!out.add(cp)) break;
    }
    if (count < static_cast<std::uint64_t>(length)) out.markCut();
    return std::move(out).finish();
}

// ---------------------------------------------------------------------------------
// bytes

Result<std::vector<std::uint8_t>> ObjectReader::readBytesObject(std::uint64_t object) const {
    PYSPY_CHECK(need({layout_.bytes_size, layout_.bytes_sval}, "no bytes layout"));
    PYSPY_TRY(auto type, typeOf(object));
    PYSPY_TRY(bool isBytes, typeIs(type, types_.bytes, kBytesSubclass));
    if (!isBytes) return Err{invalid("not a bytes object", object)};
    PYSPY_TRY(auto size, readValue<std::int64_t>(memory_, at(object, layout_.bytes_size)));
    if (size < 0) return Err{invalid("negative bytes size", object)};
    if (static_cast<std::uint64_t>(size) > limits_.maxBytesObject) return Err{invalid("bytes too large", object)};
    return readBytes(memory_, at(object, layout_.bytes_sval), static_cast<std::size_t>(size));
}

// ---------------------------------------------------------------------------------
// int

Result<std::int64_t> ObjectReader::readInt(std::uint64_t object) const {
    PYSPY_TRY(auto type, typeOf(object));
    if (layout_.major == 2) {
        PYSPY_TRY(bool isInt, typeIs(type, types_.integer, kIntSubclass27));
        if (isInt) {
            PYSPY_CHECK(need({layout_.int2_ival}, "no 2.7 int layout"));
            return readValue<std::int64_t>(memory_, at(object, layout_.int2_ival));
        }
        PYSPY_TRY(bool isLong, typeIs(type, types_.long2, kLongSubclass));
        if (!isLong) return Err{invalid("not an int or long object", object)};
        return readLongDigits(object);
    }
    PYSPY_TRY(bool isInt, typeIs(type, types_.integer, kLongSubclass));
    if (!isInt) return Err{invalid("not an int object", object)};
    return readLongDigits(object);
}

Result<std::string> ObjectReader::readIntDecimal(std::uint64_t object, std::size_t maxDigits) const {
    auto small = readInt(object);
    if (small.ok()) return std::to_string(small.value());
    // Too big for 64 bits (or not an int at all): only a long has digits to convert.
    PYSPY_TRY(auto type, typeOf(object));
    PYSPY_TRY(bool isLong, layout_.major == 2 ? typeIs(type, types_.long2, kLongSubclass)
                                              : typeIs(type, types_.integer, kLongSubclass));
    if (!isLong) return small.err();
    bool negative = false;
    PYSPY_TRY(auto digits, longDigits(object, maxDigits, negative));
    // Schoolbook conversion to base 10^9: repeatedly divide the digit array by 10^9.
    constexpr std::uint32_t kChunk = 1000000000;
    const int bits = layout_.long_digit_bits;
    std::vector<std::uint32_t> chunks;  // least significant first
    while (!digits.empty()) {
        std::uint64_t remainder = 0;
        for (std::size_t i = digits.size(); i-- > 0;) {
            const std::uint64_t current = (remainder << bits) | digits[i];
            digits[i] = static_cast<std::uint32_t>(current / kChunk);
            remainder = current % kChunk;
        }
        chunks.push_back(static_cast<std::uint32_t>(remainder));
        while (!digits.empty() && digits.back() == 0) digits.pop_back();
    }
    std::string out = negative ? "-" : "";
    if (chunks.empty()) return std::string("0");
    out += std::to_string(chunks.back());
    for (std::size_t i = chunks.size() - 1; i-- > 0;) {
        const std::string part = std::to_string(chunks[i]);
        out.append(9 - part.size(), '0');
        out += part;
    }
    return out;
}

Result<std::vector<std::uint32_t>> ObjectReader::longDigits(std::uint64_t object, std::size_t maxDigits,
                                                            bool& negative) const {
    const PyLayout& l = layout_;
    PYSPY_CHECK(need({l.long_digit}, "no int layout"));
    const int bits = l.long_digit_bits;
    const int digitSize = l.long_digit_size;
    if (bits <= 0 || bits > 32 || (digitSize != 2 && digitSize != 4)) {
        return Err{ReadError{ReadErrorKind::Unsupported, object, "no int digit size"}};
    }
    negative = false;
    std::uint64_t ndigits = 0;
    if (has(l.long_lv_tag)) {  // 3.12+: lv_tag = ndigits << 3 | sign (0 positive, 1 zero, 2 negative)
        PYSPY_TRY(auto tag, readValue<std::uint64_t>(memory_, at(object, l.long_lv_tag)));
        const unsigned sign = tag & 3u;
        if (sign == 3) return Err{invalid("bad int sign", object)};
        if (sign == 1) return std::vector<std::uint32_t>{};
        negative = sign == 2;
        ndigits = tag >> 3;
    } else {  // ob_size: the number of digits, negative for a negative value
        PYSPY_CHECK(need({l.long_size}, "no int layout"));
        PYSPY_TRY(auto size, readValue<std::int64_t>(memory_, at(object, l.long_size)));
        negative = size < 0;
        ndigits = negative ? 0 - static_cast<std::uint64_t>(size) : static_cast<std::uint64_t>(size);
    }
    if (ndigits > maxDigits) return Err{invalid("int too big", object)};
    PYSPY_TRY(auto raw, readBytes(memory_, at(object, l.long_digit), ndigits * static_cast<std::size_t>(digitSize)));
    std::vector<std::uint32_t> digits(ndigits);  // least significant first, as in memory
    for (std::size_t i = 0; i < ndigits; ++i) {
        if (digitSize == 2) {
            std::uint16_t d;
            std::memcpy(&d, raw.data() + i * 2, 2);
            digits[i] = d;
        } else {
            std::memcpy(&digits[i], raw.data() + i * 4, 4);
        }
        if (bits < 32 && (digits[i] >> bits) != 0) return Err{invalid("bad int digit", object)};
    }
    return digits;
}

Result<std::int64_t> ObjectReader::readLongDigits(std::uint64_t object) const {
    const int bits = layout_.long_digit_bits;
    const std::size_t maxDigits = bits > 0 ? static_cast<std::size_t>((64 + bits - 1) / bits) : 0;
    bool negative = false;
    PYSPY_TRY(auto digits, longDigits(object, maxDigits, negative));
    std::uint64_t magnitude = 0;
    for (std::size_t i = digits.size(); i-- > 0;) {  // most significant digit last in memory
        if ((magnitude >> (64 - bits)) != 0) return Err{invalid("int does not fit in 64 bits", object)};
        magnitude = (magnitude << bits) | digits[i];
    }
    constexpr std::uint64_t kMinMagnitude = std::uint64_t{1} << 63;
    if (negative) {
        if (magnitude > kMinMagnitude) return Err{invalid("int does not fit in 64 bits", object)};
        return static_cast<std::int64_t>(0 - magnitude);
    }
    if (magnitude >= kMinMagnitude) return Err{invalid("int does not fit in 64 bits", object)};
    return static_cast<std::int64_t>(magnitude);
}

// ---------------------------------------------------------------------------------
// dict

Result<ObjectReader::Items> ObjectReader::dictItems(std::uint64_t dict) const {
    PYSPY_TRY(auto type, typeOf(dict));
    PYSPY_TRY(bool isDict, typeIs(type, types_.dict, kDictSubclass));
    if (!isDict) return Err{invalid("not a dict", dict)};
    if (layout_.major == 2) return dictItems27(dict);
    PYSPY_CHECK(need({layout_.dict_keys, layout_.dict_values}, "no dict layout"));
    PYSPY_TRY(auto keys, readPointer(memory_, at(dict, layout_.dict_keys)));
    PYSPY_TRY(auto values, readPointer(memory_, at(dict, layout_.dict_values)));
    if (keys == 0) return Err{invalid("dict without keys", dict)};
    if (values != 0) values = at(values, std::max<std::int64_t>(layout_.dictvalues_values, 0));
    return keysItems(keys, values);
}

Result<ObjectReader::Items> ObjectReader::dictItems27(std::uint64_t dict) const {
    const PyLayout& l = layout_;
    PYSPY_CHECK(need({l.dict2_mask, l.dict2_table, l.dict2_entry_size}, "no 2.7 dict layout"));
    PYSPY_TRY(auto mask, readValue<std::int64_t>(memory_, at(dict, l.dict2_mask)));
    PYSPY_TRY(auto table, readPointer(memory_, at(dict, l.dict2_table)));
    const std::uint64_t slots = static_cast<std::uint64_t>(mask) + 1;
    // A table is a power of two, at most about four slots per entry.
    if (mask < 0 || (slots & (slots - 1)) != 0 || slots > 8 * std::uint64_t{limits_.maxDictEntries} + 8) {
        return Err{invalid("bad dict table size", dict)};
    }
    const auto entrySize = static_cast<std::size_t>(l.dict2_entry_size);
    if (entrySize < 24) return Err{invalid("bad dict entry size", dict)};
    PYSPY_TRY(auto raw, readBytes(memory_, table, static_cast<std::size_t>(slots) * entrySize));
    Items items;
    for (std::size_t i = 0; i < slots && items.size() < limits_.maxDictEntries; ++i) {
        std::uint64_t key;
        std::uint64_t value;  // a deleted slot keeps a dummy key and has no value
        std::memcpy(&key, raw.data() + i * entrySize + 8, 8);
        std::memcpy(&value, raw.data() + i * entrySize + 16, 8);
        if (key != 0 && value != 0) items.emplace_back(key, value);
    }
    return items;
}

Result<ObjectReader::Items> ObjectReader::keysItems(std::uint64_t keys, std::uint64_t values) const {
    const PyLayout& l = layout_;
    PYSPY_CHECK(need({l.dictkeys_nentries, l.dictkeys_indices, l.dictkeyentry_size}, "no dict keys layout"));
    const auto headerSize = static_cast<std::size_t>(
        std::max({l.dictkeys_nentries, l.dictkeys_size, l.dictkeys_log2_size, l.dictkeys_kind, l.dictkeys_indices}) +
        8);
    PYSPY_TRY(auto header, RemoteBlock::read(memory_, keys, headerSize));
    PYSPY_TRY(auto nentries, header.field<std::int64_t>(l.dictkeys_nentries));

    std::uint64_t size = 0;        // slots of the index table
    std::uint64_t indexBytes = 0;  // bytes of the index table
    bool unicodeEntries = false;   // {key, value} entries (3.11+ str-only keys), else {hash, key, value}
    if (has(l.dictkeys_log2_size)) {  // 3.11+
        PYSPY_CHECK(need({l.dictkeys_log2_index_bytes, l.dictkeys_kind, l.dictkeys_kind_general,
                          l.dictunicodeentry_size},
                         "no 3.11 dict keys layout"));
        PYSPY_TRY(auto log2Size, header.field<std::uint8_t>(l.dictkeys_log2_size));
        PYSPY_TRY(auto log2IndexBytes, header.field<std::uint8_t>(l.dictkeys_log2_index_bytes));
        PYSPY_TRY(auto kind, header.field<std::uint8_t>(l.dictkeys_kind));
        if (log2Size > 40 || log2IndexBytes > 43 || log2IndexBytes < log2Size) {
            return Err{invalid("bad dict keys size", keys)};
        }
        size = std::uint64_t{1} << log2Size;
        indexBytes = std::uint64_t{1} << log2IndexBytes;
        unicodeEntries = kind != static_cast<std::uint8_t>(l.dictkeys_kind_general);
    } else {  // 3.6 - 3.10: the index width follows from dk_size
        PYSPY_CHECK(need({l.dictkeys_size}, "no dict keys size"));
        PYSPY_TRY(auto dkSize, header.field<std::int64_t>(l.dictkeys_size));
        size = static_cast<std::uint64_t>(dkSize);
        if (dkSize <= 0 || (size & (size - 1)) != 0 || size > (std::uint64_t{1} << 40)) {
            return Err{invalid("bad dict keys size", keys)};
        }
        const std::uint64_t width = size <= 0xff ? 1 : size <= 0xffff ? 2 : size <= 0xffffffff ? 4 : 8;
        indexBytes = size * width;
    }
    if (nentries < 0 || static_cast<std::uint64_t>(nentries) > size) return Err{invalid("bad dict entry count", keys)};

    const std::size_t count = std::min(static_cast<std::size_t>(nentries), limits_.maxDictEntries);
    const auto entrySize = static_cast<std::size_t>(unicodeEntries ? l.dictunicodeentry_size : l.dictkeyentry_size);
    const std::size_t keyOffset = unicodeEntries ? 0 : 8;
    if (entrySize < keyOffset + 16) return Err{invalid("bad dict entry size", keys)};
    const std::uint64_t entries = at(keys, l.dictkeys_indices) + indexBytes;
    PYSPY_TRY(auto raw, readBytes(memory_, entries, count * entrySize));
    std::vector<std::uint8_t> rawValues;
    if (values != 0) {
        PYSPY_TRY(rawValues, readBytes(memory_, values, count * 8));
    }

    Items items;
    items.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        std::uint64_t key;
        std::uint64_t value;
        std::memcpy(&key, raw.data() + i * entrySize + keyOffset, 8);
        if (values != 0) {  // split table: the keys are shared, the values live with the dict/instance
            std::memcpy(&value, rawValues.data() + i * 8, 8);
        } else {
            std::memcpy(&value, raw.data() + i * entrySize + keyOffset + 8, 8);
        }
        if (key != 0 && value != 0) items.emplace_back(key, value);  // deleted entries have neither
    }
    return items;
}

bool ObjectReader::keyEquals(std::uint64_t key, std::string_view text) const {
    const bool asciiText = std::all_of(text.begin(), text.end(), [](char c) { return (c & 0x80) == 0; });
    const PyLayout& l = layout_;
    // Fast path for the usual ASCII name: one read of header and text, then compare.
    // The length field sits at the same place in every str (and 2.7 unicode), so a
    // different length rules the key out without knowing its type.
    if (asciiText && l.major == 3 && l.unicode_kind_shift >= 0 && l.unicode_compact_bit >= 0 &&
        l.unicode_ascii_bit >= 0 && has(l.unicode_length) && has(l.unicode_state) && has(l.unicode_ascii_size)) {
        const auto headerSize = static_cast<std::size_t>(l.unicode_ascii_size);
        auto block = RemoteBlock::read(memory_, key, headerSize + text.size());
        if (block.ok()) {
            const auto length = block->field<std::int64_t>(l.unicode_length);
            const auto state = block->field<std::uint32_t>(l.unicode_state);
            if (!length.ok() || !state.ok() || length.value() != static_cast<std::int64_t>(text.size())) return false;
            const bool compactAscii = ((state.value() >> l.unicode_compact_bit) & 1u) != 0 &&
                                      ((state.value() >> l.unicode_ascii_bit) & 1u) != 0;
            if (compactAscii) {
                if (std::memcmp(block->bytes().data() + headerSize, text.data(), text.size()) != 0) return false;
                auto type = block->pointer(l.object_type);
                if (!type.ok()) return false;
                auto isStr = typeIs(type.value(), types_.str, kUnicodeSubclass);
                return isStr.ok() && isStr.value();
            }
        }
    } else if (asciiText && l.major == 2 && has(l.bytes_size) && has(l.bytes_sval)) {
        const auto headerSize = static_cast<std::size_t>(l.bytes_sval);
        auto block = RemoteBlock::read(memory_, key, headerSize + text.size());
        if (block.ok()) {
            const auto length = block->field<std::int64_t>(l.bytes_size);
            if (!length.ok() || length.value() != static_cast<std::int64_t>(text.size())) return false;
            auto type = block->pointer(l.object_type);
            if (!type.ok()) return false;
            auto isStr = typeIs(type.value(), types_.str, kBytesSubclass);
            if (!isStr.ok()) return false;
            if (isStr.value()) return std::memcmp(block->bytes().data() + headerSize, text.data(), text.size()) == 0;
            // a 2.7 unicode key: the general path below
        }
    }
    auto decoded = readString(key);
    return decoded.ok() && decoded.value() == text;
}

Result<std::uint64_t> ObjectReader::findString(const Items& items, std::string_view key) const {
    for (const auto& [k, v] : items) {
        if (keyEquals(k, key)) return v;
    }
    return std::uint64_t{0};
}

Result<std::uint64_t> ObjectReader::dictGetString(std::uint64_t dict, std::string_view key) const {
    PYSPY_TRY(auto items, dictItems(dict));
    return findString(items, key);
}

// ---------------------------------------------------------------------------------
// instances and modules

Result<std::uint64_t> ObjectReader::instanceAttribute(std::uint64_t object, std::string_view name) const {
    const PyLayout& l = layout_;
    PYSPY_TRY(auto type, typeOf(object));
    PYSPY_CHECK(need({l.type_flags, l.type_dictoffset, l.type_basicsize}, "no type layout"));
    const auto typeBlockSize =
        static_cast<std::size_t>(std::max({l.type_flags, l.type_dictoffset, l.type_basicsize}) + 8);
    PYSPY_TRY(auto typeBlock, RemoteBlock::read(memory_, type, typeBlockSize));
    PYSPY_TRY(auto flags, typeBlock.field<std::uint64_t>(l.type_flags));

    // The values of an instance whose dict is not materialized, under the type's shared keys.
    auto fromValues = [&](std::uint64_t valuesStruct) -> Result<std::uint64_t> {
        PYSPY_CHECK(need({l.heaptype_cached_keys}, "no ht_cached_keys offset"));
        PYSPY_TRY(auto keys, readPointer(memory_, at(type, l.heaptype_cached_keys)));
        if (keys == 0) return Err{invalid("inline values without cached keys", object)};
        PYSPY_TRY(auto items, keysItems(keys, at(valuesStruct, std::max<std::int64_t>(l.dictvalues_values, 0))));
        return findString(items, name);
    };
    auto fromDict = [&](std::uint64_t dict) -> Result<std::uint64_t> {
        if (dict == 0) return std::uint64_t{0};  // no attributes yet
        return dictGetString(dict, name);
    };

    const bool managed = l.tpflags_managed_dict != 0 && (flags & l.tpflags_managed_dict) != 0;
    if (managed) {
        PYSPY_CHECK(need({l.managed_dict_offset}, "no managed dict offset"));
        if (l.minor >= 13) {
            if (l.tpflags_inline_values != 0 && (flags & l.tpflags_inline_values) != 0) {
                // Values inline right after the object header, valid until a dict takes them over.
                PYSPY_TRY(auto basicsize, typeBlock.field<std::int64_t>(l.type_basicsize));
                if (basicsize <= 0 || basicsize > 4096) return Err{invalid("bad tp_basicsize", type)};
                const std::uint64_t values = object + static_cast<std::uint64_t>(basicsize);
                PYSPY_TRY(auto valid, readValue<std::uint8_t>(memory_, values + kDictValuesValidOffset));
                if (valid != 0) return fromValues(values);
            }
            PYSPY_TRY(auto dict, readPointer(memory_, at(object, l.managed_dict_offset)));
            return fromDict(dict);
        }
        if (l.minor == 12) {  // a dict pointer, or values pointer - 1 (low bit set)
            PYSPY_TRY(auto dictOrValues, readPointer(memory_, at(object, l.managed_dict_offset)));
            if ((dictOrValues & 1) != 0) return fromValues(dictOrValues + 1);
            return fromDict(dictOrValues);
        }
        // 3.11: a values pointer and a dict pointer, side by side before the object.
        PYSPY_CHECK(need({l.managed_values_offset}, "no managed values offset"));
        PYSPY_TRY(auto values, readPointer(memory_, at(object, l.managed_values_offset)));
        if (values != 0) return fromValues(values);
        PYSPY_TRY(auto dict, readPointer(memory_, at(object, l.managed_dict_offset)));
        return fromDict(dict);
    }

    PYSPY_TRY(auto dictOffset, typeBlock.field<std::int64_t>(l.type_dictoffset));
    if (dictOffset == 0 && l.major == 2) {
        // An old-style instance: PyInstance_Type has no tp_dictoffset; PyInstanceObject
        // is {PyObject_HEAD; in_class; in_dict; ...} (the layout has no field for it).
        PYSPY_TRY(auto name, typeName(object));
        if (name == "instance") dictOffset = kOldStyleInstanceDict;
    }
    if (dictOffset == 0) return Err{invalid("the object has no instance dict", object)};
    if (dictOffset < 0 || dictOffset > 4096) {
        // Negative: counted from the end of a variable-size object; needs tp_itemsize.
        return Err{ReadError{ReadErrorKind::Unsupported, object, "instance dict at a variable offset"}};
    }
    PYSPY_TRY(auto dict, readPointer(memory_, object + static_cast<std::uint64_t>(dictOffset)));
    return fromDict(dict);
}

Result<std::uint64_t> ObjectReader::moduleDict(std::uint64_t module) const {
    PYSPY_CHECK(need({layout_.module_dict}, "no module layout"));
    PYSPY_TRY(auto type, typeOf(module));
    if (types_.module != 0 && type != types_.module) return Err{invalid("not a module", module)};
    PYSPY_TRY(auto dict, readPointer(memory_, at(module, layout_.module_dict)));
    if (dict == 0) return Err{invalid("module without a dict", module)};
    return dict;
}

}  // namespace pyspy
