#include "pyspy/python/locals.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <unordered_map>

#include <fmt/format.h>

namespace pyspy {

namespace {

constexpr std::size_t kMaxLocals = 4096;                 // slots read per frame
constexpr std::int64_t kMaxContainerLength = 1LL << 40;  // a bigger ob_size is garbage
constexpr std::size_t kMaxSetSlotsScanned = 4096;        // table slots looked at for the first elements

std::uint64_t at(std::uint64_t base, std::int64_t offset) {
    return base + static_cast<std::uint64_t>(offset);
}

std::string unreadable(const ReadError& error) {
    return fmt::format("<unreadable: {}>", error.describe());
}

// Cuts a repr to `maxChars` bytes at a UTF-8 character boundary, marking the cut.
std::string bounded(std::string text, std::size_t maxChars) {
    if (text.size() <= maxChars) return text;
    std::size_t end = maxChars;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) --end;
    text.resize(end);
    return text + "...";
}

// Python's quoting of a str or bytes repr: single quotes unless the text has a single
// quote and no double quote; backslash, the quote and control characters escaped.
// `bytesEscapes`: every byte >= 0x80 as \xNN (bytes); otherwise UTF-8 is kept (str).
std::string quoted(std::string_view text, std::string_view prefix, bool bytesEscapes, bool cut) {
    const bool useDouble = text.find('\'') != std::string_view::npos && text.find('"') == std::string_view::npos;
    const char quote = useDouble ? '"' : '\'';
    std::string out(prefix);
    out += quote;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '\\' || c == static_cast<unsigned char>(quote)) {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f || (bytesEscapes && c >= 0x80)) {
            out += fmt::format("\\x{:02x}", c);
        } else if (!bytesEscapes && c == 0xc2 && i + 1 < text.size() &&
                   static_cast<unsigned char>(text[i + 1]) <= 0x9f) {  // C1 control U+0080-U+009F
            out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[++i]));
        } else {
            out += static_cast<char>(c);
        }
    }
    if (cut) out += "...";
    out += quote;
    return out;
}

// Python's repr of a float: the shortest string that reads back, with ".0" on integers.
std::string floatRepr(double value) {
    std::string text = fmt::format("{}", value);
    if (text.find_first_not_of("-0123456789") == std::string::npos) text += ".0";
    return text;
}

class ValueFormatter {
  public:
    ValueFormatter(const ObjectReader& reader, const ReprLimits& limits)
        : reader_(reader.memory(), reader.layout(), reader.types(), boundedLimits(reader, limits)), limits_(limits) {}

    std::string format(std::uint64_t object, int depth) const {
        if (object == 0) return "<NULL>";
        auto repr = tryFormat(object, depth);
        return repr.ok() ? bounded(std::move(repr.value()), limits_.maxChars) : unreadable(repr.error());
    }

  private:
    static ObjectLimits boundedLimits(const ObjectReader& reader, const ReprLimits& limits) {
        ObjectLimits objects = reader.limits();
        objects.maxStringBytes = limits.maxChars;
        objects.maxDictEntries = limits.maxItems;
        return objects;
    }

    Result<std::string> tryFormat(std::uint64_t object, int depth) const {
        const PyLayout& l = reader_.layout();
        PYSPY_TRY(auto type, reader_.typeOf(object));
        PYSPY_TRY(auto name, reader_.typeName(object));
        bool builtin = true;
        if (l.type_flags != kAbsent && l.tpflags_heaptype != 0) {
            PYSPY_TRY(auto flags, readValue<std::uint64_t>(reader_.memory(), at(type, l.type_flags)));
            builtin = (flags & l.tpflags_heaptype) == 0;
        }
        if (!builtin) return other(name, object);
        const bool py2 = l.major == 2;
        if (name == "NoneType") return std::string("None");
        if (name == "bool") {
            PYSPY_TRY(auto value, py2 ? readValue<std::int64_t>(reader_.memory(), at(object, l.int2_ival))
                                      : reader_.readInt(object));
            return std::string(value != 0 ? "True" : "False");
        }
        if (name == "int" || name == "long") {
            PYSPY_TRY(auto digits, reader_.readIntDecimal(object, limits_.maxIntDigits));
            if (py2 && name == "long") digits += 'L';
            return digits;
        }
        if (name == "float") {
            PYSPY_TRY(auto value, readValue<double>(reader_.memory(), at(object, l.float_fval)));
            return floatRepr(value);
        }
        if (name == "str" && !py2) {
            PYSPY_TRY(auto text, reader_.readString(object));
            return quoted(text, "", false, false);
        }
        if (name == "unicode") {
            PYSPY_TRY(auto text, reader_.readString(object));
            return quoted(text, "u", false, false);
        }
        if (name == "bytes" || (name == "str" && py2)) return bytesRepr(object, py2 ? "" : "b");
        if (name == "tuple" || name == "list") return sequence(object, name == "tuple", depth);
        if (name == "dict") return dict(object, depth);
        if (name == "set" || name == "frozenset") return set(object, name, depth);
        return other(name, object);
    }

    static Result<std::string> other(const std::string& name, std::uint64_t object) {
        return fmt::format("<{} object at {:#x}>", name, object);
    }

    Result<std::int64_t> length(std::uint64_t object, std::int64_t offset) const {
        PYSPY_TRY(auto size, readValue<std::int64_t>(reader_.memory(), at(object, offset)));
        if (size < 0 || size > kMaxContainerLength) return Err{invalid("bad length", object)};
        return size;
    }

    Result<std::string> bytesRepr(std::uint64_t object, std::string_view prefix) const {
        const PyLayout& l = reader_.layout();
        PYSPY_TRY(auto size, length(object, l.bytes_size));
        const auto shown = std::min<std::size_t>(static_cast<std::size_t>(size), limits_.maxChars);
        PYSPY_TRY(auto raw, readBytes(reader_.memory(), at(object, l.bytes_sval), shown));
        const std::string_view text(reinterpret_cast<const char*>(raw.data()), raw.size());
        return quoted(text, prefix, true, shown < static_cast<std::size_t>(size));
    }

    // "[1, 2, ...] (len 10)" once cut; the full Python form when every element is shown.
    static std::string container(std::string_view open, std::string_view close, const std::vector<std::string>& items,
                                 std::int64_t total, bool oneTuple) {
        std::string out(open);
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (i > 0) out += ", ";
            out += items[i];
        }
        const bool cut = static_cast<std::int64_t>(items.size()) < total;
        if (cut) out += items.empty() ? "..." : ", ...";
        if (oneTuple && total == 1) out += ',';
        out += close;
        if (cut) out += fmt::format(" (len {})", total);
        return out;
    }

    std::string summary(std::string_view name, std::int64_t total) const {
        return fmt::format("<{} of len {}>", name, total);
    }

    Result<std::string> sequence(std::uint64_t object, bool tuple, int depth) const {
        const PyLayout& l = reader_.layout();
        PYSPY_TRY(auto total, length(object, l.varobject_size));
        if (depth >= limits_.maxDepth && total > 0) return summary(tuple ? "tuple" : "list", total);
        const auto shown = std::min<std::size_t>(static_cast<std::size_t>(total), limits_.maxItems);
        std::uint64_t items = at(object, l.tuple_item);
        if (!tuple) {
            PYSPY_TRY(items, readPointer(reader_.memory(), at(object, l.list_item)));
        }
        std::vector<std::string> reprs;
        if (shown > 0) {
            if (items == 0) return Err{invalid("list without items", object)};
            PYSPY_TRY(auto raw, readBytes(reader_.memory(), items, shown * 8));
            for (std::size_t i = 0; i < shown; ++i) {
                std::uint64_t item = 0;
                std::memcpy(&item, raw.data() + i * 8, 8);
                reprs.push_back(format(item, depth + 1));
            }
        }
        return tuple ? container("(", ")", reprs, total, true) : container("[", "]", reprs, total, false);
    }

    Result<std::string> dict(std::uint64_t object, int depth) const {
        const PyLayout& l = reader_.layout();
        PYSPY_TRY(auto total, length(object, l.dict_used));
        if (depth >= limits_.maxDepth && total > 0) return summary("dict", total);
        PYSPY_TRY(auto items, reader_.dictItems(object));  // at most maxItems (ObjectLimits::maxDictEntries)
        std::vector<std::string> reprs;
        for (const auto& [key, value] : items)
            reprs.push_back(format(key, depth + 1) + ": " + format(value, depth + 1));
        return container("{", "}", reprs, total, false);
    }

    Result<std::string> set(std::uint64_t object, const std::string& name, int depth) const {
        const PyLayout& l = reader_.layout();
        if (l.set_used == kAbsent || l.setentry_size <= 0) return other(name, object);
        PYSPY_TRY(auto total, length(object, l.set_used));
        const bool py2 = l.major == 2;  // 2.7 writes set([1, 2]); 3.x {1, 2} and set() when empty
        if (total == 0) return name + (py2 ? "([])" : "()");
        if (depth >= limits_.maxDepth) return summary(name, total);
        PYSPY_TRY(auto mask, readValue<std::int64_t>(reader_.memory(), at(object, l.set_mask)));
        PYSPY_TRY(auto table, readPointer(reader_.memory(), at(object, l.set_table)));
        if (mask < 0 || mask > kMaxContainerLength || table == 0) return Err{invalid("bad set table", object)};
        const auto entrySize = static_cast<std::size_t>(l.setentry_size);
        const auto slots = std::min<std::size_t>(static_cast<std::size_t>(mask) + 1, kMaxSetSlotsScanned);
        PYSPY_TRY(auto raw, readBytes(reader_.memory(), table, slots * entrySize));
        std::vector<std::string> reprs;
        for (std::size_t i = 0; i < slots && reprs.size() < limits_.maxItems; ++i) {
            std::uint64_t key = 0;
            std::int64_t hash = 0;
            std::memcpy(&key, raw.data() + i * entrySize + static_cast<std::size_t>(l.setentry_key), 8);
            std::memcpy(&hash, raw.data() + i * entrySize + static_cast<std::size_t>(l.setentry_hash), 8);
            if (key == 0 || hash == -1) continue;  // empty, or the dummy left by a deletion
            reprs.push_back(format(key, depth + 1));
        }
        if (py2) return container(name + "([", "])", reprs, total, false);
        const bool frozen = name == "frozenset";
        return container(frozen ? "frozenset({" : "{", frozen ? "})" : "}", reprs, total, false);
    }

    ObjectReader reader_;
    ReprLimits limits_;
};

Result<std::vector<std::uint64_t>> tupleItems(const ObjectReader& reader, std::uint64_t tuple, std::size_t max) {
    const PyLayout& l = reader.layout();
    PYSPY_TRY(auto size, readValue<std::int64_t>(reader.memory(), at(tuple, l.varobject_size)));
    if (size < 0 || size > kMaxContainerLength) return Err{invalid("bad tuple length", tuple)};
    const auto count = std::min<std::size_t>(static_cast<std::size_t>(size), max);
    std::vector<std::uint64_t> items(count);
    if (count > 0) PYSPY_CHECK(reader.memory().read(at(tuple, l.tuple_item), items.data(), count * 8));
    return items;
}

// One variable of a 2.7-3.10 frame before its value is formatted.
struct Variable {
    std::string name;
    bool named = false;              // `name` was read (not an <unreadable: ...> placeholder)
    std::uint64_t value = 0;         // 0: not bound
    std::optional<ReadError> error;  // its cell could not be read
};

// The content of the cell in a 2.7-3.10 cell or free slot (0: an empty cell).
Result<std::uint64_t> cellContent(const ObjectReader& reader, std::uint64_t cell) {
    const PyLayout& l = reader.layout();
    if (l.cell_ref == kAbsent) return Err{ReadError{ReadErrorKind::Unsupported, cell, "no cell layout"}};
    auto typeName = reader.typeName(cell);
    if (!typeName.ok()) return Err{typeName.error()};
    if (typeName.value() != "cell") return Err{invalid("not a cell", cell)};
    return readPointer(reader.memory(), at(cell, l.cell_ref));
}

// 2.7-3.10: f_localsplus holds co_nlocals local slots (co_varnames), then one cell per
// co_cellvars name, then one per co_freevars name (the function's closure). An argument
// captured by an inner function is in co_varnames and co_cellvars: the cell is the
// variable (3.x clears the argument's slot when it makes the cell; 2.7 leaves the value
// the call passed there, stale once the cell is rebound), so its cell's value is shown
// at the argument's place and the name once.
Result<std::vector<LocalVariable>> readLocalsBefore311(const ObjectReader& reader, std::uint64_t frame,
                                                       std::uint64_t code, const ReprLimits& limits) {
    const PyLayout& l = reader.layout();
    const ProcessMemory& memory = reader.memory();
    PYSPY_TRY(auto nlocals, readValue<std::int32_t>(memory, at(code, l.code_nlocals)));
    if (nlocals < 0) return Err{invalid("bad co_nlocals", code)};
    PYSPY_TRY(auto varnamesTuple, readPointer(memory, at(code, l.code_varnames)));
    PYSPY_TRY(auto varnames, tupleItems(reader, varnamesTuple, kMaxLocals));
    varnames.resize(std::min(varnames.size(), static_cast<std::size_t>(nlocals)));
    // Slot i of f_localsplus is named by names[i]; the cells start at co_nlocals.
    std::vector<std::uint64_t> names = varnames;
    const auto firstCell = static_cast<std::size_t>(nlocals);
    if (l.code_cellvars != kAbsent && l.code_freevars != kAbsent && firstCell < kMaxLocals) {
        PYSPY_TRY(auto cellsTuple, readPointer(memory, at(code, l.code_cellvars)));
        PYSPY_TRY(auto cells, tupleItems(reader, cellsTuple, kMaxLocals - firstCell));
        PYSPY_TRY(auto freesTuple, readPointer(memory, at(code, l.code_freevars)));
        PYSPY_TRY(auto frees, tupleItems(reader, freesTuple, kMaxLocals - firstCell - cells.size()));
        names.resize(firstCell, 0);  // a co_varnames shorter than co_nlocals: unnamed slots
        names.insert(names.end(), cells.begin(), cells.end());
        names.insert(names.end(), frees.begin(), frees.end());
    }
    std::vector<std::uint64_t> values(names.size());
    if (!values.empty()) PYSPY_CHECK(memory.read(at(frame, l.frame_localsplus), values.data(), values.size() * 8));

    std::vector<Variable> variables;
    std::unordered_map<std::string, std::size_t> byName;  // the first variable of each name read
    for (std::size_t i = 0; i < names.size(); ++i) {
        const bool local = i < firstCell;
        if (local && i >= varnames.size()) continue;  // no name for this slot
        Variable variable;
        auto name = reader.readString(names[i]);
        variable.named = name.ok();
        variable.name = name.ok() ? name.value() : unreadable(name.error());
        variable.value = values[i];
        if (!local && values[i] != 0) {
            auto content = cellContent(reader, values[i]);
            variable.value = content.ok() ? content.value() : 0;
            if (!content.ok()) variable.error = content.error();
        }
        auto same = variable.named ? byName.find(variable.name) : byName.end();
        if (!local && same != byName.end()) {
            Variable& argument = variables[same->second];  // the cell is the variable: its value, at its place
            argument.value = variable.value;
            argument.error = std::move(variable.error);
            continue;
        }
        if (variable.named) byName.emplace(variable.name, variables.size());
        variables.push_back(std::move(variable));
    }

    const ValueFormatter formatter(reader, limits);
    std::vector<LocalVariable> locals;
    for (const auto& variable : variables) {
        if (variable.error) {
            locals.push_back({variable.name, unreadable(*variable.error)});
        } else if (variable.value != 0) {  // 0: not bound (yet), or an empty cell
            locals.push_back({variable.name, formatter.format(variable.value, 0)});
        }
    }
    return locals;
}

}  // namespace

ReprLimits ReprLimits::forLevel(int level) {
    ReprLimits limits;
    if (level >= 2) {
        limits.maxChars = 1000;
        limits.maxItems = 32;
        limits.maxDepth = 4;
        limits.maxIntDigits = 128;
    }
    return limits;
}

std::string formatValue(const ObjectReader& reader, std::uint64_t object, const ReprLimits& limits) {
    return ValueFormatter(reader, limits).format(object, 0);
}

Result<std::vector<LocalVariable>> readFrameLocals(const ObjectReader& reader, std::uint64_t frame, std::uint64_t code,
                                                   const ReprLimits& limits) {
    const PyLayout& l = reader.layout();
    const bool localsPlus = l.code_localsplusnames != kAbsent;
    if (l.frame_localsplus == kAbsent || (!localsPlus && (l.code_varnames == kAbsent || l.code_nlocals == kAbsent))) {
        return Err{ReadError{ReadErrorKind::Unsupported, frame, "no locals layout"}};
    }
    if (!localsPlus) return readLocalsBefore311(reader, frame, code, limits);
    const ProcessMemory& memory = reader.memory();
    PYSPY_TRY(auto namesTuple, readPointer(memory, at(code, l.code_localsplusnames)));
    PYSPY_TRY(auto names, tupleItems(reader, namesTuple, kMaxLocals));
    PYSPY_TRY(auto kindsBytes, readPointer(memory, at(code, l.code_localspluskinds)));
    PYSPY_TRY(auto kinds, reader.readBytesObject(kindsBytes));
    if (kinds.size() < names.size()) return Err{invalid("fewer local kinds than names", code)};
    std::vector<std::uint64_t> values(names.size());
    if (!values.empty()) PYSPY_CHECK(memory.read(at(frame, l.frame_localsplus), values.data(), values.size() * 8));

    const ValueFormatter formatter(reader, limits);
    const auto cellOrFree = static_cast<std::uint8_t>((l.co_fast_cell > 0 ? l.co_fast_cell : 0) |
                                                      (l.co_fast_free > 0 ? l.co_fast_free : 0));
    std::vector<LocalVariable> locals;
    for (std::size_t i = 0; i < names.size(); ++i) {
        std::uint64_t value = values[i];
        // 3.14+: the slots are _PyStackRefs; their NULL is a tag alone.
        if (l.stackref_tag_bits != kAbsent) value &= ~static_cast<std::uint64_t>(l.stackref_tag_bits);
        if (value == 0) continue;  // not bound (yet)
        if ((kinds[i] & cellOrFree) != 0 && l.cell_ref != kAbsent) {
            // A cell variable holds a cell once MAKE_CELL ran (before, the plain argument).
            auto typeName = reader.typeName(value);
            if (typeName.ok() && typeName.value() == "cell") {
                auto content = readPointer(memory, at(value, l.cell_ref));
                if (!content.ok()) {
                    locals.push_back({"?", unreadable(content.error())});
                    continue;
                }
                value = content.value();
                if (value == 0) continue;  // an empty cell: not bound
            }
        }
        auto name = reader.readString(names[i]);
        locals.push_back({name.ok() ? name.value() : unreadable(name.error()), formatter.format(value, 0)});
    }
    return locals;
}

}  // namespace pyspy
