// AtomicFile: an output file that is written completely or not at all. Bytes go to a
// temporary file next to the destination; commit() flushes, fsyncs and renames it
// over the destination. Destroyed without commit() (an exception, a failed write), the
// temporary file is removed and the destination is untouched.
#pragma once

#include <fstream>
#include <string>

namespace pyspy {

class AtomicFile {
  public:
    // Throws FatalError(Io) when the temporary file cannot be created.
    explicit AtomicFile(std::string path);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    std::ostream& stream() { return out_; }
    const std::string& path() const { return path_; }

    // Throws FatalError(Io) when writing, syncing or renaming fails.
    void commit();

    // Throws FatalError(Io) unless an AtomicFile for `path` can be created now (its
    // directory exists and takes new files): a record checks before it samples for
    // minutes, rather than fail at the end.
    static void checkCreatable(const std::string& path);

  private:
    std::string path_;
    std::string tempPath_;
    std::ofstream out_;
    bool committed_ = false;
};

}  // namespace pyspy
