// libFuzzer target: ObjectReader (objects.h) over a fake process memory image
// (fuzz_image.h) with the generated layout of the image's version; every reader is
// called on every root. Seeds: tests/fuzz/corpus/objects, saved by make_corpus from
// tests/unit/python/object_target.py under several interpreters.
#include <cstddef>
#include <cstdint>

#include "fuzz_image.h"
#include "fuzz_ops.h"
#include "pyspy/python/layout.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto image = pyspy::fuzz::parseImage(data, size);
    const pyspy::PyLayout* layout = pyspy::findGeneratedLayout(image.major, image.minor);
    if (layout == nullptr) return 0;
    pyspy::BufferMemory memory;
    pyspy::fuzz::mapImage(image, memory);
    pyspy::ObjectReader reader(memory, *layout, image.types);
    volatile std::size_t sink = 0;
    for (auto root : image.roots) sink = sink + pyspy::fuzz::exerciseObject(reader, root);
    return 0;
}
