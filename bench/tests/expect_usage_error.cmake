# cmake -DBENCH=<lightning-bench> -DARGS="a|b|c" -P expect_usage_error.cmake
# Passes when the tool exits non-zero and prints exactly one non-empty line on stderr.
string(REPLACE "|" ";" args "${ARGS}")
execute_process(COMMAND ${BENCH} ${args}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(STRIP "${err}" err)
if(rc EQUAL 0)
  message(FATAL_ERROR "expected a non-zero exit for '${args}', got 0; stderr: ${err}")
endif()
if(err STREQUAL "")
  message(FATAL_ERROR "expected one line on stderr for '${args}', got none (exit ${rc})")
endif()
string(FIND "${err}" "\n" newline)
if(NOT newline EQUAL -1)
  message(FATAL_ERROR "expected one line on stderr for '${args}', got:\n${err}")
endif()
message(STATUS "exit ${rc}: ${err}")
