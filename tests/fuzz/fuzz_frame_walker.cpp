// libFuzzer target: FrameWalker (frame_walker.h) over a fake process memory image
// (fuzz_image.h) whose roots are thread frames, with the generated layout of the
// image's version. Seeds: tests/fuzz/corpus/frame_walker, saved by make_corpus from
// tests/targets/threads_target.py under several interpreters.
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
    pyspy::CodeCache codes(64);
    volatile std::size_t sink = 0;
    for (auto root : image.roots) sink = sink + pyspy::fuzz::exerciseFrames(memory, reader, codes, root);
    return 0;
}
