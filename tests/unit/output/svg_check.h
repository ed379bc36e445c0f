// Parses an SVG flame graph with python3's xml.dom.minidom (a real XML parser: the
// test fails when the document is not well-formed) and returns what the tests look at:
// the frames (title, geometry, data-* attributes, visible label), the texts with an id,
// the notes under the graph and the number of <script> elements.
#pragma once

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace pyspy_test {

constexpr const char* kPython = "/usr/bin/python3";

// Parses an SVG file and prints what the tests look at, as ASCII JSON.
constexpr const char* kChecker = R"PY(
import sys, json, xml.dom.minidom
doc = xml.dom.minidom.parse(sys.argv[1])
def text(node):
    return "".join(c.data for c in node.childNodes if c.nodeType in (c.TEXT_NODE, c.CDATA_SECTION_NODE))
frames = []
for g in doc.getElementsByTagName("g"):
    if not g.hasAttribute("data-s"):
        continue
    rect = g.getElementsByTagName("rect")[0]
    labels = g.getElementsByTagName("text")
    frames.append({"title": text(g.getElementsByTagName("title")[0]),
                   "x": float(rect.getAttribute("x")), "y": float(rect.getAttribute("y")),
                   "width": float(rect.getAttribute("width")),
                   "s": int(g.getAttribute("data-s")), "n": int(g.getAttribute("data-n")),
                   "text": text(labels[0]) if labels else None,
                   "data": {k[5:]: v for k, v in g.attributes.items() if k.startswith("data-")}})
ids = {}
for t in doc.getElementsByTagName("text"):
    if t.hasAttribute("id"):
        ids[t.getAttribute("id")] = text(t)
notes = [text(t) for t in doc.getElementsByTagName("text") if t.getAttribute("class") == "note"]
print(json.dumps({"root": doc.documentElement.tagName, "notes": notes,
                  "scripts": len(doc.getElementsByTagName("script")),
                  "frames": frames, "ids": ids}))
)PY";

inline std::string tempPath(const std::string& suffix) {
    std::string pattern = (std::filesystem::temp_directory_path() / "pyspy-flame-XXXXXX").string() + suffix;
    const int fd = ::mkstemps(pattern.data(), static_cast<int>(suffix.size()));
    REQUIRE(fd >= 0);
    ::close(fd);
    return pattern;
}

struct TempFile {
    std::string path;
    explicit TempFile(const std::string& suffix, const std::string& content) : path(tempPath(suffix)) {
        std::ofstream(path, std::ios::binary) << content;
    }
    ~TempFile() { std::filesystem::remove(path); }
};

// The parsed document (see kChecker); fails the test when python cannot parse it.
inline nlohmann::json parseSvg(const std::string& svg) {
    REQUIRE(::access(kPython, X_OK) == 0);  // installed by scripts/install-deps
    TempFile script(".py", kChecker);
    TempFile file(".svg", svg);
    const std::string command = std::string(kPython) + " " + script.path + " " + file.path + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string output;
    char chunk[4096];
    while (const std::size_t n = std::fread(chunk, 1, sizeof chunk, pipe)) output.append(chunk, n);
    const int status = ::pclose(pipe);
    INFO(output);
    REQUIRE(status == 0);
    return nlohmann::json::parse(output);
}

}  // namespace pyspy_test
