# GNU grep and SQLite's sqlite3 shell, static and stripped, built from Debian's source packages
# by scripts/build-static-tools.sh (cached under ~/.cache/zerofarm/static-tools; a first build
# takes about three minutes): ordinary third-party programs that run in zerofarm's sandbox.
# They are copied to share/zerofarm/programs/ of the build tree; ZEROFARM_PROGRAMS_DIR names
# that directory (the sandbox tests find the programs through it).
option(ZEROFARM_STATIC_TOOLS
  "Build static grep and sqlite3 from Debian's source packages for the sandbox" ON)
set(ZEROFARM_PROGRAMS_DIR "")
if(ZEROFARM_STATIC_TOOLS)
  message(STATUS "Static tools: scripts/build-static-tools.sh (builds unless cached)")
  execute_process(COMMAND "${PROJECT_SOURCE_DIR}/scripts/build-static-tools.sh"
    OUTPUT_VARIABLE static_tools_bin OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE static_tools_result)
  if(NOT static_tools_result EQUAL 0)
    message(FATAL_ERROR "scripts/build-static-tools.sh failed (${static_tools_result})")
  endif()
  set(ZEROFARM_PROGRAMS_DIR "${CMAKE_BINARY_DIR}/share/zerofarm/programs")
  foreach(program grep sqlite3)
    if(NOT EXISTS "${static_tools_bin}/${program}")
      message(FATAL_ERROR "ZEROFARM_STATIC_TOOLS: ${static_tools_bin}/${program} does not exist")
    endif()
    configure_file("${static_tools_bin}/${program}" "${ZEROFARM_PROGRAMS_DIR}/${program}"
      COPYONLY)
  endforeach()
  message(STATUS "Static tools: ${ZEROFARM_PROGRAMS_DIR}")
endif()
