# cmake -DBINARY=pyspy-cpp -DWHAT=man|bash|zsh|fish -DOUTPUT=FILE -P generate_completion.cmake
# Writes `BINARY completions WHAT` to OUTPUT (the build's man page and completion
# scripts, CMakeLists.txt); fails, leaving no OUTPUT, if the command fails.
get_filename_component(_dir "${OUTPUT}" DIRECTORY)
file(MAKE_DIRECTORY "${_dir}")
execute_process(COMMAND "${BINARY}" completions "${WHAT}"
                OUTPUT_VARIABLE _text
                RESULT_VARIABLE _result)
if(NOT _result EQUAL 0 OR _text STREQUAL "")
  message(FATAL_ERROR "${BINARY} completions ${WHAT} failed (${_result})")
endif()
file(WRITE "${OUTPUT}" "${_text}")
